//! Apps: the things a user builds. Each has an app key (shown once, stored as a SHA-256 of
//! its secret), a connection per provider, a published flag, a budget and rate limits.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::connections::managed_id;
use super::{Hub, HubError};
use crate::providers::{PerProvider, Provider};
use crate::store::{AppChanges, AppRow, StoreError};

const ID_LEN: usize = 8;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const MAX_NAME_CHARS: usize = 64;
/// $100,000 a month: far above any real local budget, low enough to catch a typo.
const MAX_BUDGET_MICRO_USD: i64 = 100_000 * 1_000_000;
const MAX_RATE_LIMIT: i64 = 1_000_000_000;

/// A freshly made app key, `whk_<8-char id>_<32-char secret>`.
pub struct NewAppKey {
    pub id: String,
    pub key: SecretString,
    pub hash: Vec<u8>,
}

/// Makes a new app key from the system's random source.
pub fn generate_key(id: Option<&str>) -> Result<NewAppKey, HubError> {
    let id = match id {
        Some(id) => id.to_string(),
        None => random_chars(ID_LEN)?,
    };
    let secret = random_chars(SECRET_LEN)?;
    let hash = Sha256::digest(secret.as_bytes()).to_vec();
    Ok(NewAppKey {
        key: SecretString::from(format!("whk_{id}_{secret}")),
        id,
        hash,
    })
}

fn random_chars(n: usize) -> Result<String, HubError> {
    // Rejection sampling keeps every character equally likely.
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in crate::vault::random_array::<64>()? {
            let limit = 256 - (256 % ALPHABET.len());
            if (b as usize) < limit && out.len() < n {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Splits an app key into id and secret, if it has the app-key shape.
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("whk_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(in_alphabet);
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some((id, secret))
}

/// Whether `b` is in [`ALPHABET`] (lowercase letters and digits), by range rather than by a
/// search of the alphabet, since every call's key is checked.
fn in_alphabet(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Compares a presented secret with a stored hash in constant time.
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    let hash = Sha256::digest(secret.as_bytes());
    bool::from(hash.as_slice().ct_eq(stored_hash))
}

/// An app as the API and pages show it (never the key, only its prefix).
#[derive(Debug, Clone, Serialize)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub key_prefix: String,
    pub connections: Bindings,
    pub published: bool,
    pub monthly_budget_micro_usd: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub created_at: String,
}

/// Per provider, the bound connection id, or `None` for no access.
pub type Bindings = PerProvider<Option<String>>;

impl From<AppRow> for AppView {
    fn from(row: AppRow) -> AppView {
        let binding = |p| row.binding(p).map(str::to_string);
        AppView {
            connections: Bindings::from_fn(binding),
            id: row.id,
            name: row.name,
            key_prefix: row.key_prefix,
            published: row.published,
            monthly_budget_micro_usd: row.monthly_budget_micro_usd,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            created_at: row.created_at,
        }
    }
}

/// Fields a caller may set; absent fields stay as they are. `connections` values are a
/// connection id or `null` (no access to that provider).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppInput {
    pub name: Option<String>,
    pub published: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub monthly_budget_micro_usd: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub tpm_limit: Option<Option<i64>>,
    pub connections: Option<BindingInput>,
}

/// Per provider: absent = unchanged, `null` = no access, a string = that connection.
pub type BindingInput = PerProvider<Option<Option<String>>>;

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An app just created or re-keyed: the only time its key is returned.
#[derive(Serialize)]
pub struct AppWithKey {
    #[serde(flatten)]
    pub app: AppView,
    #[serde(serialize_with = "expose")]
    pub key: SecretString,
}

fn expose<S: serde::Serializer>(key: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(key.expose_secret())
}

impl Hub {
    pub fn list_apps(&self) -> Result<Vec<AppView>, HubError> {
        Ok(self
            .store()
            .apps()?
            .into_iter()
            .map(AppView::from)
            .collect())
    }

    pub fn app(&self, id: &str) -> Result<AppView, HubError> {
        Ok(self.store().app(id).map_err(app_not_found)?.into())
    }

    /// Creates an app bound to each enabled managed connection unless told otherwise.
    pub fn create_app(&self, input: AppInput) -> Result<AppWithKey, HubError> {
        let name = input
            .name
            .as_deref()
            .ok_or_else(|| HubError::bad_input("name", "Give the app a name."))?;
        let mut changes = self.check_changes(&input)?;
        changes.name = None;
        let defaults = self.default_bindings()?;
        for (provider, connection) in defaults {
            if !changes.bindings.iter().any(|(p, _)| *p == provider) {
                changes.bindings.push((provider, connection));
            }
        }
        let name = check_app_name(name)?;
        self.check_name_free(&name, None)?;
        let key = generate_key(None)?;
        let prefix = format!("whk_{}", key.id);
        let row = self
            .store()
            .insert_app(&key.id, &name, &key.hash, &prefix, &changes)?;
        self.bump_generation();
        tracing::info!(app = %row.id, "app created");
        Ok(AppWithKey {
            app: row.into(),
            key: key.key,
        })
    }

    pub fn update_app(&self, id: &str, input: AppInput) -> Result<AppView, HubError> {
        let changes = self.check_changes(&input)?;
        if let Some(name) = &changes.name {
            self.check_name_free(name, Some(id))?;
        }
        let row = self
            .store()
            .update_app(id, &changes)
            .map_err(app_not_found)?;
        self.bump_generation();
        Ok(row.into())
    }

    /// Replaces the app's key; the old one stops working at once.
    pub fn rotate_app_key(&self, id: &str) -> Result<AppWithKey, HubError> {
        let key = generate_key(Some(id))?;
        self.store()
            .replace_app_key(id, &key.hash, &format!("whk_{id}"))
            .map_err(app_not_found)?;
        self.bump_generation();
        tracing::info!(app = %id, "app key rotated");
        Ok(AppWithKey {
            app: self.app(id)?,
            key: key.key,
        })
    }

    /// A short, non-secret tag of the app's current key, different for every key issued.
    pub fn app_key_tag(&self, id: &str) -> Result<String, HubError> {
        let hash = self
            .store()
            .app_key_hash(id)?
            .ok_or(HubError::NotFound("That app"))?;
        let tag = Sha256::digest([b"reveal:".as_slice(), &hash].concat());
        Ok(hex::encode(&tag[..8]))
    }

    /// When each app last made a request, by app id.
    pub fn apps_last_used(&self) -> Result<std::collections::HashMap<String, String>, HubError> {
        Ok(self.store().apps_last_used()?)
    }

    /// Refuses a name another app already has (apart from `except`, the app being renamed).
    fn check_name_free(&self, name: &str, except: Option<&str>) -> Result<(), HubError> {
        let taken = self.store().apps()?.into_iter().any(|a| {
            Some(a.id.as_str()) != except && a.name.trim().eq_ignore_ascii_case(name.trim())
        });
        if taken {
            return Err(HubError::bad_input(
                "name",
                format!(
                    "An app named “{}” already exists. Pick another name.",
                    name.trim()
                ),
            ));
        }
        Ok(())
    }

    pub fn delete_app(&self, id: &str) -> Result<(), HubError> {
        self.store().delete_app(id).map_err(app_not_found)?;
        self.bump_generation();
        tracing::info!(app = %id, "app deleted");
        Ok(())
    }

    fn default_bindings(&self) -> Result<Vec<(Provider, Option<String>)>, HubError> {
        let connections = self.store().connections()?;
        Ok(Provider::ALL
            .iter()
            .map(|&p| {
                let id = managed_id(p);
                let enabled = connections.iter().any(|c| c.id == id && c.enabled);
                (p, enabled.then_some(id))
            })
            .collect())
    }

    /// Validates every field before anything is written.
    fn check_changes(&self, input: &AppInput) -> Result<AppChanges, HubError> {
        let mut changes = AppChanges {
            name: input.name.as_deref().map(check_app_name).transpose()?,
            published: input.published,
            monthly_budget_micro_usd: input.monthly_budget_micro_usd,
            rpm_limit: input.rpm_limit,
            tpm_limit: input.tpm_limit,
            bindings: Vec::new(),
        };
        if let Some(Some(b)) = changes.monthly_budget_micro_usd {
            if !(0..=MAX_BUDGET_MICRO_USD).contains(&b) {
                return Err(HubError::bad_input(
                    "monthly_budget_micro_usd",
                    "The monthly budget must be between $0 and $100,000.",
                ));
            }
        }
        for (field, value) in [
            ("rpm_limit", changes.rpm_limit),
            ("tpm_limit", changes.tpm_limit),
        ] {
            if let Some(Some(v)) = value {
                if !(1..=MAX_RATE_LIMIT).contains(&v) {
                    return Err(HubError::bad_input(
                        field,
                        "A rate limit must be a whole number of at least 1 (or empty for none).",
                    ));
                }
            }
        }
        if let Some(b) = &input.connections {
            for (provider, value) in b.iter() {
                if let Some(choice) = value {
                    if let Some(id) = choice {
                        self.check_bindable(provider, id)?;
                    }
                    changes.bindings.push((provider, choice.clone()));
                }
            }
        }
        Ok(changes)
    }

    fn check_bindable(&self, provider: Provider, id: &str) -> Result<(), HubError> {
        let row = self.store().connection(id).map_err(|e| match e {
            StoreError::NotFound => {
                HubError::bad_input("connections", format!("There is no connection {id}."))
            }
            other => other.into(),
        })?;
        if row.provider != provider {
            return Err(HubError::bad_input(
                "connections",
                format!(
                    "{} is a {} connection, not {}.",
                    row.name,
                    row.provider.display_name(),
                    provider.display_name()
                ),
            ));
        }
        if !row.enabled {
            return Err(HubError::bad_input(
                "connections",
                format!("{} is deleted; enable it first or pick another.", row.name),
            ));
        }
        Ok(())
    }
}

fn check_app_name(name: &str) -> Result<String, HubError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(HubError::bad_input("name", "Give the app a name."));
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

fn app_not_found(e: StoreError) -> HubError {
    match e {
        StoreError::NotFound => HubError::NotFound("That app"),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_verify() {
        let k = generate_key(None).unwrap();
        let text = k.key.expose_secret();
        assert_eq!(text.len(), 4 + 8 + 1 + 32);
        let (id, secret) = parse_key(text).unwrap();
        assert_eq!(id, k.id);
        assert!(secret_matches(secret, &k.hash));
        assert!(!secret_matches("x".repeat(32).as_str(), &k.hash));
        assert_ne!(generate_key(None).unwrap().key.expose_secret(), text);
    }

    #[test]
    fn the_alphabet_check_accepts_exactly_the_key_alphabet() {
        for b in 0..=u8::MAX {
            assert_eq!(in_alphabet(b), ALPHABET.contains(&b), "byte {b}");
        }
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "whk_",
            "whk_abc_def",
            "sk-proj-abc",
            "whk_ABCDEFGH_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
