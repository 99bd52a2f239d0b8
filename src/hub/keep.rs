//! What the Hub keeps of each request, and for how long: request and response bodies, sealed
//! with the vault's data key (off, or a number of days), and request rows (a number of days,
//! or forever). A sweep deletes what is past its age; daily totals, month spend and the
//! credit ledger are never touched by it.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use chrono::{DateTime, Days, Utc};
use serde::{Deserialize, Serialize};

use super::{Hub, HubError};
use crate::catalog::ModelKind;
use crate::ledger::UsageRecord;
use crate::providers::{self, Conversation, Endpoint, Provider};
use crate::store::SealedBodies;

/// The most of one body that is kept; longer ones are cut and marked.
pub const BODY_CAP: usize = 1024 * 1024;
/// The body retention choices offered (days; 0 is off).
pub const BODY_DAYS: [u32; 4] = [0, 1, 7, 30];
const DEFAULT_BODY_DAYS: u32 = 7;
/// Longest request retention accepted, in days.
const MAX_REQUEST_DAYS: u32 = 3650;
/// Stands for "keep request rows forever" in memory.
const FOREVER: i64 = -1;

const BODY_SETTING: &str = "keep_bodies_days";
const REQUEST_SETTING: &str = "keep_requests_days";

/// How long bodies and request rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeepSettings {
    /// 0 = bodies are not kept.
    pub keep_bodies_days: u32,
    /// `None` = request rows are kept forever.
    pub keep_requests_days: Option<u32>,
}

/// A change to [`KeepSettings`]; absent fields stay, `keep_requests_days: null` means forever.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepChange {
    pub keep_bodies_days: Option<u32>,
    #[serde(default, deserialize_with = "some_or_null")]
    pub keep_requests_days: Option<Option<u32>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// A call's bodies as the gateway saw them, each cut at [`BODY_CAP`].
#[derive(Debug, Clone, Default)]
pub struct CapturedBodies {
    pub request: Bytes,
    pub response: Bytes,
    pub request_truncated: bool,
    pub response_truncated: bool,
}

impl CapturedBodies {
    /// At most [`BODY_CAP`] of `bytes`, copied, and whether it was cut.
    pub fn capped(bytes: &[u8]) -> (Bytes, bool) {
        let cut = bytes.len() > BODY_CAP;
        (
            Bytes::copy_from_slice(&bytes[..bytes.len().min(BODY_CAP)]),
            cut,
        )
    }
}

/// A call's bodies opened for its page, as text.
#[derive(Debug, Clone, Serialize)]
pub struct OpenedBodies {
    pub request: Option<String>,
    pub response: Option<String>,
    pub request_truncated: bool,
    pub response_truncated: bool,
    /// For a streamed answer: the text its events spelled out, when they held any.
    pub assembled_answer: Option<String>,
}

impl Hub {
    pub(super) fn load_keep_settings(&self) -> Result<(), HubError> {
        let bodies = match self.store().setting(BODY_SETTING)? {
            Some(v) => v.parse().unwrap_or(DEFAULT_BODY_DAYS),
            None => DEFAULT_BODY_DAYS,
        };
        let requests = match self.store().setting(REQUEST_SETTING)? {
            Some(v) => v.parse().unwrap_or(FOREVER),
            None => FOREVER,
        };
        self.inner.keep_bodies_days.store(bodies, Ordering::Relaxed);
        self.inner
            .keep_requests_days
            .store(requests, Ordering::Relaxed);
        Ok(())
    }

    pub fn keep_settings(&self) -> KeepSettings {
        let requests = self.inner.keep_requests_days.load(Ordering::Relaxed);
        KeepSettings {
            keep_bodies_days: self.inner.keep_bodies_days.load(Ordering::Relaxed),
            keep_requests_days: u32::try_from(requests).ok(),
        }
    }

    /// Whether the gateway should capture bodies now (cheap: one atomic load).
    pub fn keeps_bodies(&self) -> bool {
        self.inner.keep_bodies_days.load(Ordering::Relaxed) > 0
    }

    /// Changes how long things are kept; bad values change nothing.
    pub fn change_keep_settings(&self, change: KeepChange) -> Result<KeepSettings, HubError> {
        if let Some(days) = change.keep_bodies_days {
            if !BODY_DAYS.contains(&days) {
                return Err(HubError::bad_input(
                    "keep_bodies_days",
                    "Keep bodies for 0 (off), 1, 7 or 30 days.",
                ));
            }
        }
        if let Some(Some(days)) = change.keep_requests_days {
            if !(1..=MAX_REQUEST_DAYS).contains(&days) {
                return Err(HubError::bad_input(
                    "keep_requests_days",
                    format!("Keep requests for 1 to {MAX_REQUEST_DAYS} days, or null for ever."),
                ));
            }
        }
        if let Some(days) = change.keep_bodies_days {
            self.store().set_setting(BODY_SETTING, &days.to_string())?;
        }
        if let Some(days) = change.keep_requests_days {
            let stored = days.map_or(FOREVER, i64::from);
            self.store()
                .set_setting(REQUEST_SETTING, &stored.to_string())?;
        }
        self.load_keep_settings()?;
        Ok(self.keep_settings())
    }

    /// Deletes bodies and request rows past their age at `now`: (bodies, rows) deleted.
    pub fn apply_retention(&self, now: DateTime<Utc>) -> Result<(usize, usize), HubError> {
        let keep = self.keep_settings();
        let cutoff = |days: u32| {
            now.checked_sub_days(Days::new(u64::from(days)))
                .unwrap_or(now)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let bodies = self
            .store()
            .delete_bodies_before(&cutoff(keep.keep_bodies_days))?;
        let rows = match keep.keep_requests_days {
            Some(days) => self.store().delete_usage_before(&cutoff(days))?,
            None => 0,
        };
        if bodies + rows > 0 {
            self.store().checkpoint_truncate()?;
        }
        Ok((bodies, rows))
    }

    /// The kept bodies of `record`'s call, opened (a stream's answer assembled from its
    /// events); `None` when none were kept. `Locked` while the vault is.
    pub fn request_bodies(&self, record: &UsageRecord) -> Result<Option<OpenedBodies>, HubError> {
        let Some(sealed) = self.store().request_bodies(record.id)? else {
            return Ok(None);
        };
        let vault = self.vault()?;
        let open = |field: &str, bytes: &Option<Vec<u8>>| -> Result<Option<String>, HubError> {
            bytes
                .as_ref()
                .map(|b| {
                    let plain = vault.open(&sealed.seal_id, field, b)?;
                    Ok(String::from_utf8_lossy(&plain).into_owned())
                })
                .transpose()
        };
        let response = open("response", &sealed.response)?;
        let assembled_answer = response
            .as_deref()
            .filter(|_| record.streamed)
            .and_then(|events| providers::api(record.provider).assemble_stream(events.as_bytes()));
        Ok(Some(OpenedBodies {
            request: open("request", &sealed.request)?,
            response,
            request_truncated: sealed.request_truncated,
            response_truncated: sealed.response_truncated,
            assembled_answer,
        }))
    }
}

/// A kept chat request, ready to be asked again in the Playground.
#[derive(Debug, Clone)]
pub struct Replay {
    pub provider: Provider,
    /// The connection the call went through, when it had one.
    pub connection_id: Option<String>,
    /// The catalog id of the model it asked.
    pub model: String,
    pub chat: Conversation,
}

impl Hub {
    /// What request `id` asked, when it was a chat call to a catalog chat model and its
    /// body was kept; `None` otherwise. `Locked` while the vault is.
    pub fn replay(&self, id: i64) -> Result<Option<Replay>, HubError> {
        let record = self.store().usage_record(id)?;
        if !Endpoint::names_chat(&record.endpoint) {
            return Ok(None);
        }
        let Some(model) = record
            .model
            .as_deref()
            .and_then(|m| self.catalog().resolve(record.provider, m))
            .filter(|m| m.kind == ModelKind::Chat)
        else {
            return Ok(None);
        };
        let Some(request) = self.request_bodies(&record)?.and_then(|b| b.request) else {
            return Ok(None);
        };
        let chat = providers::api(record.provider).conversation(request.as_bytes());
        Ok(chat.map(|chat| Replay {
            provider: record.provider,
            connection_id: record.connection_id,
            model: model.id.clone(),
            chat,
        }))
    }
}

/// Seals captured bodies for storage under a fresh random row id. The row id and both
/// nonces come from one draw of randomness: one system call per kept call, not three.
pub(super) fn seal(
    vault: &crate::vault::UnlockedVault,
    captured: &CapturedBodies,
) -> Result<SealedBodies, HubError> {
    use crate::vault::NONCE_LEN;
    let random = crate::vault::random_array::<{ SEAL_ID_LEN + 2 * NONCE_LEN }>()?;
    let (id, nonces) = random.split_at(SEAL_ID_LEN);
    let seal_id = hex::encode(id);
    let seal_field =
        |field: &str, nonce: &[u8], bytes: &Bytes| -> Result<Option<Vec<u8>>, HubError> {
            if bytes.is_empty() {
                return Ok(None);
            }
            let nonce: &[u8; NONCE_LEN] = nonce
                .try_into()
                .map_err(|_| HubError::Unexpected("nonce length".into()))?;
            Ok(Some(vault.seal_with_nonce(nonce, &seal_id, field, bytes)?))
        };
    let (request_nonce, response_nonce) = nonces.split_at(NONCE_LEN);
    Ok(SealedBodies {
        request: seal_field("request", request_nonce, &captured.request)?,
        response: seal_field("response", response_nonce, &captured.response)?,
        request_truncated: captured.request_truncated,
        response_truncated: captured.response_truncated,
        seal_id,
    })
}

/// Random bytes in a kept call's row id.
const SEAL_ID_LEN: usize = 16;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::ledger::{BilledTo, Surface, UsageRecord};
    use crate::money::MicroUsd;
    use crate::providers::Provider;
    use crate::store::{GroupBy, UsageFilter};

    fn hub(dir: &std::path::Path) -> Hub {
        crate::hub::test_hub(dir)
    }

    fn record(at: DateTime<Utc>) -> UsageRecord {
        UsageRecord {
            id: 0,
            started_at: at,
            app_id: Some("app".into()),
            connection_id: Some("managed-openai".into()),
            provider: Provider::OpenAi,
            model: Some("gpt-4o-mini".into()),
            endpoint: "chat_completions".into(),
            streamed: false,
            status: 200,
            error_code: None,
            input_tokens: 10,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 5,
            reasoning_tokens: 0,
            cost: Some(MicroUsd(700)),
            billed_to: BilledTo::Credits,
            estimated: false,
            latency_ms: 10,
            ttfb_ms: Some(5),
            surface: Surface::Native,
            queued_ms: None,
            attempts: None,
            provider_request_id: None,
        }
    }

    #[test]
    fn each_kept_call_is_sealed_under_its_own_id_and_nonces() {
        let passphrase = secrecy::SecretString::from("correct horse battery".to_string());
        let (_, vault) =
            crate::vault::create(&passphrase, crate::vault::KdfParams::TESTING).unwrap();
        let captured = CapturedBodies {
            request: Bytes::from_static(b"{\"model\":\"gpt-4o-mini\"}"),
            response: Bytes::from_static(b"{\"id\":\"chatcmpl-1\"}"),
            ..CapturedBodies::default()
        };
        let one = seal(&vault, &captured).unwrap();
        let two = seal(&vault, &captured).unwrap();
        assert_ne!(one.seal_id, two.seal_id);
        let nonce = |b: &Option<Vec<u8>>| b.as_ref().unwrap()[..crate::vault::NONCE_LEN].to_vec();
        let nonces = [
            nonce(&one.request),
            nonce(&one.response),
            nonce(&two.request),
            nonce(&two.response),
        ];
        for (i, a) in nonces.iter().enumerate() {
            assert!(nonces[i + 1..].iter().all(|b| b != a), "a nonce used twice");
        }
        let opened = vault
            .open(&one.seal_id, "response", one.response.as_ref().unwrap())
            .unwrap();
        assert_eq!(opened.as_slice(), b"{\"id\":\"chatcmpl-1\"}");
    }

    fn sealed() -> SealedBodies {
        SealedBodies {
            seal_id: "s".into(),
            request: Some(vec![1, 2, 3]),
            response: None,
            request_truncated: false,
            response_truncated: false,
        }
    }

    #[test]
    fn retention_deletes_old_rows_and_bodies_and_leaves_the_books_alone() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let now = Utc::now();
        let records = [
            record(now - Duration::days(40)),
            record(now - Duration::days(10)),
            record(now),
        ];
        let ids = hub.store().insert_usage_batch(&records).unwrap();
        let bodies: Vec<(i64, SealedBodies)> = ids.iter().map(|&id| (id, sealed())).collect();
        hub.store().insert_bodies(&bodies).unwrap();
        let balance = hub.store().ledger_balance().unwrap();
        let range =
            UsageFilter::whole_days((now - Duration::days(60)).date_naive(), now.date_naive());
        let totals = hub.store().usage_aggregates(&range, GroupBy::Day).unwrap();

        assert_eq!(
            hub.apply_retention(now).unwrap(),
            (2, 0),
            "bodies after 7 days; rows kept"
        );
        assert!(hub.store().request_bodies(ids[1]).unwrap().is_none());
        assert!(hub.store().request_bodies(ids[2]).unwrap().is_some());

        hub.change_keep_settings(KeepChange {
            keep_requests_days: Some(Some(30)),
            ..KeepChange::default()
        })
        .unwrap();
        assert_eq!(hub.apply_retention(now).unwrap(), (0, 1));
        assert!(
            hub.store().usage_record(ids[0]).is_err(),
            "the old row is gone"
        );
        assert!(hub.store().usage_record(ids[1]).is_ok());
        assert_eq!(hub.store().ledger_balance().unwrap(), balance);
        assert_eq!(
            hub.store().usage_aggregates(&range, GroupBy::Day).unwrap(),
            totals,
            "daily totals stay"
        );
    }

    #[test]
    fn bad_keep_settings_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let before = hub.keep_settings();
        for change in [
            KeepChange {
                keep_bodies_days: Some(3),
                keep_requests_days: Some(Some(30)),
            },
            KeepChange {
                keep_bodies_days: Some(1),
                keep_requests_days: Some(Some(0)),
            },
        ] {
            assert!(hub.change_keep_settings(change).is_err());
            assert_eq!(hub.keep_settings(), before);
        }
    }
}
