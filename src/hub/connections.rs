//! Connections: the managed connector per provider and the user's own keys. Adding,
//! renaming, rotating, deleting, enabling, verifying, and where each one's calls go.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{Hub, HubError};
use crate::providers::{self, Provider, Trouble};
use crate::store::{ConnectionRow, Outcome};

const MAX_NAME_CHARS: usize = 64;
const MAX_KEY_CHARS: usize = 512;
const VERIFY_TIMEOUT: Duration = Duration::from_secs(20);
const VERIFY_MAX_PAGES: usize = 20;

/// How a connection reaches its provider, as the page explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backing {
    /// A managed connection with the platform key from Settings or the environment.
    PlatformKey,
    /// A managed connection with no platform key: answers come from the built-in emulator.
    Demo,
    /// The user's own key.
    OwnKey,
}

/// The last problem seen on a connection, with its fix in plain words.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub code: String,
    pub title: String,
    pub fix: String,
    pub detail: String,
    pub at: String,
}

/// A connection as the API and pages show it. Never a key: only its hint.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub id: String,
    pub provider: Provider,
    pub kind: &'static str,
    pub name: String,
    pub status: &'static str,
    pub key_hint: Option<String>,
    pub created_at: String,
    pub last_verified_at: Option<String>,
    pub last_error: Option<LastError>,
    pub backing: Backing,
    /// True when calls go to the built-in emulator (demo, or the Hub runs --offline).
    pub emulated: bool,
    /// Models the last verification listed.
    pub models: Option<Vec<String>>,
}

impl ConnectionView {
    pub fn is_managed(&self) -> bool {
        self.kind == "managed"
    }

    pub fn is_enabled(&self) -> bool {
        self.status == "active"
    }

    /// The one status a person sees, from the connection's real state.
    pub fn health(&self) -> Health {
        if !self.is_enabled() {
            Health::Off
        } else if let Some(e) = &self.last_error {
            Health::Failing(e.title.clone())
        } else if self.emulated {
            Health::Demo
        } else {
            Health::Active
        }
    }

    pub fn is_failing(&self) -> bool {
        matches!(self.health(), Health::Failing(_))
    }

    /// The badge text: "Active", "Failing: Invalid API key", "Off" or "Demo".
    pub fn health_label(&self) -> String {
        match self.health() {
            Health::Active => "Active".to_string(),
            Health::Failing(hint) => format!("Failing: {hint}"),
            Health::Off => "Off".to_string(),
            Health::Demo => "Demo".to_string(),
        }
    }

    /// A suffix for pickers that offer this connection: a warning when it is failing.
    pub fn picker_warning(&self) -> String {
        match self.health() {
            Health::Failing(hint) => format!(" ⚠ failing: {hint}"),
            _ => String::new(),
        }
    }
}

/// A connection's state as one word (and, when failing, the troubleshooting hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Active,
    Failing(String),
    Off,
    Demo,
}

impl Health {
    /// The badge's style class.
    pub fn class(&self) -> &'static str {
        match self {
            Health::Active => "badge-ok",
            Health::Failing(_) => "badge-error",
            Health::Off => "badge-off",
            Health::Demo => "badge-demo",
        }
    }
}

/// Where a connection's calls go and with which key.
pub struct Target {
    /// The root the provider path is appended to (no trailing slash).
    pub base: String,
    pub key: SecretString,
    pub emulated: bool,
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub models: Vec<String>,
    pub connection: ConnectionView,
}

/// The troubleshooting text for a stored error code.
pub fn describe_error(code: &str, detail: &str, at: &str) -> LastError {
    let (title, fix) = match Trouble::from_code(code) {
        Some(t) => (t.title().to_string(), t.fix().to_string()),
        None => (
            "Provider error".to_string(),
            "The provider answered with an error. Try again later; if it persists, check the \
             provider's status page."
                .to_string(),
        ),
    };
    LastError {
        code: code.to_string(),
        title,
        fix,
        detail: detail.to_string(),
        at: at.to_string(),
    }
}

impl Hub {
    fn view(&self, row: ConnectionRow) -> ConnectionView {
        let backing = self.backing(&row);
        let emulated = self.config().offline || backing == Backing::Demo;
        let last_error = row.last_error_code.as_deref().map(|code| {
            describe_error(
                code,
                row.last_error_detail.as_deref().unwrap_or(""),
                row.last_error_at.as_deref().unwrap_or(""),
            )
        });
        let key_hint = match backing {
            Backing::PlatformKey if !row.has_key => Some("from the environment".to_string()),
            _ => row.key_hint,
        };
        ConnectionView {
            id: row.id,
            provider: row.provider,
            kind: if row.managed { "managed" } else { "byok" },
            name: row.name,
            status: if row.enabled { "active" } else { "disabled" },
            key_hint,
            created_at: row.created_at,
            last_verified_at: row.last_verified_at,
            last_error,
            backing,
            emulated,
            models: row.verified_models,
        }
    }

    fn backing(&self, row: &ConnectionRow) -> Backing {
        if !row.managed {
            Backing::OwnKey
        } else if row.has_key || self.config().managed_keys.get(row.provider).is_some() {
            Backing::PlatformKey
        } else {
            Backing::Demo
        }
    }

    pub fn list_connections(&self) -> Result<Vec<ConnectionView>, HubError> {
        Ok(self
            .store()
            .connections()?
            .into_iter()
            .map(|r| self.view(r))
            .collect())
    }

    pub fn connection(&self, id: &str) -> Result<ConnectionView, HubError> {
        Ok(self.view(self.store().connection(id).map_err(not_found)?))
    }

    /// Adds a BYOK connection: name and key checked first, the key sealed in the vault.
    /// Nothing is stored when a check fails.
    pub fn add_connection(
        &self,
        provider: Provider,
        name: &str,
        api_key: &SecretString,
    ) -> Result<ConnectionView, HubError> {
        let vault = self.vault()?;
        let name = check_name(name)?;
        let key = check_key(provider, api_key)?;
        let id = format!("conn_{}", hex::encode(crate::vault::random_array::<8>()?));
        let sealed = vault.seal(&id, "api_key", key.expose_secret().as_bytes())?;
        let hint = providers::api(provider)
            .key_format()
            .hint(key.expose_secret());
        let row = self
            .store()
            .insert_connection(&id, provider, &name, &sealed, &hint)?;
        tracing::info!(connection = %id, provider = %provider, "connection added");
        self.bump_generation();
        Ok(self.view(row))
    }

    pub fn rename_connection(&self, id: &str, name: &str) -> Result<ConnectionView, HubError> {
        let row = self.store().connection(id).map_err(not_found)?;
        if row.managed {
            return Err(HubError::bad_input(
                "name",
                "Managed connections keep their provider's name.",
            ));
        }
        let name = check_name(name)?;
        self.store().rename_connection(id, row.provider, &name)?;
        self.connection(id)
    }

    /// Replaces a connection's key, keeping its id, name and app bindings. On a managed
    /// connection this sets the platform key.
    pub fn rotate_connection_key(
        &self,
        id: &str,
        api_key: &SecretString,
    ) -> Result<ConnectionView, HubError> {
        let vault = self.vault()?;
        let row = self.store().connection(id).map_err(not_found)?;
        let key = check_key(row.provider, api_key)?;
        let sealed = vault.seal(id, "api_key", key.expose_secret().as_bytes())?;
        let hint = providers::api(row.provider)
            .key_format()
            .hint(key.expose_secret());
        self.store()
            .replace_connection_key(id, Some(&sealed), Some(&hint))?;
        tracing::info!(connection = %id, "connection key replaced");
        self.bump_generation();
        self.connection(id)
    }

    /// Removes a managed connection's platform key: it goes back to demo answers.
    pub fn clear_platform_key(&self, provider: Provider) -> Result<ConnectionView, HubError> {
        let id = managed_id(provider);
        self.store().replace_connection_key(&id, None, None)?;
        self.bump_generation();
        self.connection(&id)
    }

    /// Deletes a BYOK connection (key removed from the database and its log) or disables a
    /// managed one. Apps bound to it are refused with `connector_revoked` from now on.
    pub fn delete_connection(&self, id: &str) -> Result<(), HubError> {
        let row = self.store().connection(id).map_err(not_found)?;
        if row.managed {
            self.store().set_connection_enabled(id, false)?;
            tracing::info!(connection = %id, "managed connection disabled");
            self.bump_generation();
        } else {
            self.store().delete_connection(id)?;
            tracing::info!(connection = %id, "connection deleted");
            self.bump_generation();
        }
        Ok(())
    }

    pub fn enable_managed(&self, provider: Provider) -> Result<ConnectionView, HubError> {
        let id = managed_id(provider);
        self.store().set_connection_enabled(&id, true)?;
        tracing::info!(connection = %id, "managed connection enabled");
        self.bump_generation();
        self.connection(&id)
    }

    /// Where a connection's calls go. `--offline` sends everything to the built-in
    /// emulator (with the connection's own key, so key problems still show).
    pub fn target(&self, row: &ConnectionRow) -> Result<Target, HubError> {
        let api = providers::api(row.provider);
        let key = match self.backing(row) {
            Backing::Demo => None,
            Backing::PlatformKey => match self.config().managed_keys.get(row.provider) {
                Some(k) => Some(k.clone()),
                None => Some(self.open_key(row)?),
            },
            Backing::OwnKey => Some(self.open_key(row)?),
        };
        let emulated = key.is_none() || self.config().offline;
        let base = if emulated {
            self.emulator_base(row.provider)?
        } else {
            self.config()
                .upstreams
                .get(row.provider)
                .as_str()
                .trim_end_matches('/')
                .to_string()
        };
        let key = key.unwrap_or_else(|| SecretString::from(api.key_format().demo_key.to_string()));
        Ok(Target {
            base,
            key,
            emulated,
        })
    }

    fn open_key(&self, row: &ConnectionRow) -> Result<SecretString, HubError> {
        let sealed = self
            .store()
            .connection_key(&row.id)?
            .ok_or_else(|| HubError::Unexpected(format!("connection {} has no key", row.id)))?;
        Ok(self.vault()?.open_string(&row.id, "api_key", &sealed)?)
    }

    fn emulator_base(&self, provider: Provider) -> Result<String, HubError> {
        let port = self
            .local_port()
            .ok_or_else(|| HubError::Unexpected("the Hub's own port is not known yet".into()))?;
        Ok(format!("http://127.0.0.1:{port}/emulator/{provider}"))
    }

    /// Lists the models the connection's key can use, and records when and the outcome.
    pub async fn verify_connection(&self, id: &str) -> Result<Verification, HubError> {
        let hub = self.clone();
        let owned = id.to_string();
        let (row, target) = super::blocking(move || {
            let row = hub.store().connection(&owned).map_err(not_found)?;
            let target = hub.target(&row)?;
            Ok((row, target))
        })
        .await?;
        let outcome = match self.list_models(row.provider, &target).await {
            Ok(models) => Outcome::Verified { models },
            Err((trouble_code, detail)) => Outcome::Failed {
                code: trouble_code,
                detail,
            },
        };
        let ok = matches!(outcome, Outcome::Verified { .. });
        match &outcome {
            Outcome::Failed { code, .. } => {
                tracing::warn!(connection = %row.id, error = %code, "verification failed")
            }
            _ => tracing::info!(connection = %row.id, "verification succeeded"),
        }
        let hub = self.clone();
        let id = row.id.clone();
        let connection = super::blocking(move || {
            hub.store().record_connection_outcome(&id, &outcome)?;
            hub.connection(&id)
        })
        .await?;
        Ok(Verification {
            ok,
            models: connection.models.clone().unwrap_or_default(),
            connection,
        })
    }

    /// Follows the provider's model list through its pages. Errors come back as a
    /// troubleshooting code and a short detail that never includes the key.
    async fn list_models(
        &self,
        provider: Provider,
        target: &Target,
    ) -> Result<Vec<String>, (String, String)> {
        let api = providers::api(provider);
        let mut models = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..VERIFY_MAX_PAGES {
            let request = api.model_list_request(&target.key, cursor.as_deref());
            let url = format!("{}{}", target.base, request.path_and_query);
            let mut builder = self.http().get(&url).timeout(VERIFY_TIMEOUT);
            for (name, value) in &request.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let response = builder.send().await.map_err(connection_failed)?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(connection_failed)?;
            if !(200..300).contains(&status) {
                let code = api
                    .classify(status, &body)
                    .map(|t| t.code().to_string())
                    .unwrap_or_else(|| "provider_error".to_string());
                return Err((code, format!("The provider answered HTTP {status}.")));
            }
            let page = api.parse_model_list(&body).map_err(|e| {
                (
                    "provider_error".to_string(),
                    format!("The model list could not be read: {e}"),
                )
            })?;
            models.extend(page.ids);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(models),
            }
        }
        Ok(models)
    }

    /// The ids and names of apps whose binding for `provider` is this connection.
    pub fn apps_using(&self, connection_id: &str) -> Result<Vec<(String, String)>, HubError> {
        Ok(self.store().apps_bound_to(connection_id)?)
    }
}

fn connection_failed(e: reqwest::Error) -> (String, String) {
    let why = if e.is_timeout() {
        "the provider did not answer in time"
    } else if e.is_connect() {
        "the Hub could not connect to the provider"
    } else {
        "the connection to the provider broke"
    };
    (
        Trouble::ConnectionFailed.code().to_string(),
        format!("Connection failed: {why}."),
    )
}

pub fn managed_id(provider: Provider) -> String {
    format!("managed-{provider}")
}

fn not_found(e: crate::store::StoreError) -> HubError {
    match e {
        crate::store::StoreError::NotFound => HubError::NotFound("That connection"),
        other => other.into(),
    }
}

fn check_name(name: &str) -> Result<String, HubError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(HubError::bad_input("name", "Give the connection a name."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(HubError::bad_input(
            "name",
            format!("Keep the name to {MAX_NAME_CHARS} characters or fewer."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(HubError::bad_input(
            "name",
            "The name cannot contain control characters.",
        ));
    }
    Ok(name.to_string())
}

fn check_key(provider: Provider, api_key: &SecretString) -> Result<SecretString, HubError> {
    let pasted = api_key.expose_secret();
    if pasted.chars().count() > MAX_KEY_CHARS {
        return Err(HubError::bad_input(
            "api_key",
            "That is far longer than any API key; check what was pasted.",
        ));
    }
    providers::api(provider)
        .key_format()
        .check(pasted)
        .map(SecretString::from)
        .map_err(|message| HubError::bad_input("api_key", message))
}

/// Parses a provider name from a form or URL, with a clear error.
pub fn parse_provider(name: &str) -> Result<Provider, HubError> {
    name.parse()
        .map_err(|e: providers::UnknownProvider| HubError::bad_input("provider", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Work  ").unwrap(), "Work");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn keys_are_checked_per_provider_and_trimmed() {
        let k = |s: &str| SecretString::from(s.to_string());
        let openai = check_key(
            Provider::OpenAi,
            &k("  sk-proj-testAAAAAAAAAAAAAAAAAAAAAAAA\n"),
        )
        .unwrap();
        assert_eq!(
            openai.expose_secret(),
            "sk-proj-testAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert!(
            check_key(
                Provider::OpenAi,
                &k("sk-ant-api03-testAAAAAAAAAAAAAAAAAAAA")
            )
            .is_err()
        );
        assert!(check_key(Provider::OpenAi, &k("sk-testAAAAAAAAAAAAAAAAAAAAAAAA")).is_ok());
        assert!(
            check_key(
                Provider::Anthropic,
                &k("sk-proj-testAAAAAAAAAAAAAAAAAAAAAAAA")
            )
            .is_err()
        );
        assert!(
            check_key(
                Provider::Gemini,
                &k("AIzaTestAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            )
            .is_ok()
        );
        assert!(check_key(Provider::Gemini, &k("AIzaTestAAAA")).is_err());
        let err = check_key(Provider::Anthropic, &k("hello there this is not a key")).unwrap_err();
        assert!(err.to_string().contains("sk-ant-"), "{err}");
        assert!(!err.to_string().contains("hello there"));
    }

    #[test]
    fn hints_show_prefix_and_last_four() {
        let f = providers::api(Provider::OpenAi).key_format();
        assert_eq!(
            f.hint("sk-proj-testAAAAAAAAAAAAAAAAAAAAabcd"),
            "sk-proj-…abcd"
        );
        let g = providers::api(Provider::Gemini).key_format();
        assert_eq!(
            g.hint("AIzaTestAAAAAAAAAAAAAAAAAAAAAAAAAAAAwxyz"),
            "AIza…wxyz"
        );
    }
}
