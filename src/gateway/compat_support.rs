//! What the compatible surface needs from the front door besides a forwarded call: which
//! providers an app key reaches (for `GET /v1/models`).

use super::admit::locked;
use super::{Gateway, Head, Outgoing};
use crate::ledger::Surface;
use crate::providers::{self, Provider};

impl Gateway {
    /// The providers the app holding this bearer key has a binding for, or the refusal (in
    /// OpenAI's native shape) when the Hub is locked or the key is not an app's.
    pub async fn app_providers(
        &self,
        headers: &[(String, String)],
    ) -> Result<Vec<Provider>, Outgoing> {
        if self.hub().is_locked() {
            return Err(locked(Provider::OpenAi));
        }
        let head = Head {
            provider: Provider::OpenAi,
            method: "GET".into(),
            path: "/v1/models".into(),
            query: String::new(),
            headers: headers.to_vec(),
            content_length: None,
            surface: Surface::Compatible,
        };
        let app = self
            .authenticate(providers::api(Provider::OpenAi), &head)
            .await?;
        Ok(app.bindings.iter().map(|(p, _)| *p).collect())
    }
}
