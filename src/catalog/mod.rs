//! The model catalog: which models each provider serves, their limits and list prices.
//!
//! The data is embedded from `models.json`. Rates are kept as integer pico-USD per token
//! (a rate of $X per million tokens is X × 10⁶ pico-USD per token), so costs are exact.

pub mod cost;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::providers::Provider;

const EMBEDDED: &str = include_str!("models.json");

/// The file in the data dir whose entries override or extend the embedded prices.
pub const OVERRIDES_FILE: &str = "prices.json";

/// Rates for one model in pico-USD per token. `None` where the provider has no such rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Rates {
    pub input: i64,
    pub cached_input: Option<i64>,
    pub cache_write_5m: Option<i64>,
    pub cache_write_1h: Option<i64>,
    pub output: i64,
}

/// Higher rates that apply to a whole request once its prompt passes a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LongContext {
    pub threshold_tokens: u64,
    pub rates: Rates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Chat,
    Embedding,
}

/// One model of the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub provider: Provider,
    /// The id apps usually call the model by (`gpt-4o-mini`, `claude-sonnet-4-5`).
    pub id: String,
    /// The dated id the provider echoes in responses (`gpt-4o-mini-2024-07-18`).
    pub served_as: String,
    pub aliases: Vec<String>,
    pub display_name: String,
    pub kind: ModelKind,
    pub reasoning: bool,
    pub context_window: u64,
    pub max_output_tokens: u64,
    /// Release date, `YYYY-MM-DD`.
    pub created: String,
    pub deprecation_date: Option<String>,
    pub rates: Rates,
    pub long_context: Option<LongContext>,
}

impl Model {
    /// Every name this model answers to, its id first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str())
            .chain(std::iter::once(self.served_as.as_str()))
            .chain(self.aliases.iter().map(String::as_str))
    }

    /// The rates that apply to a request with this many prompt tokens.
    pub fn rates_for_prompt(&self, prompt_tokens: u64) -> Rates {
        match self.long_context {
            Some(lc) if prompt_tokens > lc.threshold_tokens => lc.rates,
            _ => self.rates,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the price data is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model {model}: {problem}")]
    BadEntry { model: String, problem: String },
    #[error("unknown section `{0}`: the sections are openai, anthropic and gemini")]
    UnknownSection(String),
    #[error("{path}: {source}")]
    InFile {
        path: String,
        source: Box<CatalogError>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// All models of all providers, with lookup by any of their names.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
    /// Per provider (in [`Provider::ALL`] order), every name a model answers to → its index.
    index: [HashMap<String, usize>; 3],
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn embedded() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            // The embedded data is checked by a unit test, so this cannot fail in a release.
            Catalog::from_json(EMBEDDED).unwrap_or_else(|_| Catalog::from_models(Vec::new()))
        })
    }

    /// Parses catalog JSON: `{"openai": [model, …], "anthropic": […], "gemini": […]}`.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = serde_json::from_str(text)?;
        let mut models = Vec::new();
        for (provider, entries) in [
            (Provider::OpenAi, raw.openai),
            (Provider::Anthropic, raw.anthropic),
            (Provider::Gemini, raw.gemini),
        ] {
            for entry in entries {
                models.push(entry.into_model(provider)?);
            }
        }
        Ok(Catalog::from_models(models))
    }

    /// The embedded catalog merged with `prices.json` in `data_dir` when there is one.
    /// A bad file is an error naming the file and the entry, so the Hub does not start on
    /// prices the user did not mean.
    pub fn load(data_dir: &Path) -> Result<Catalog, CatalogError> {
        let path = data_dir.join(OVERRIDES_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalog::embedded().clone());
            }
            Err(source) => {
                return Err(CatalogError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Catalog::embedded()
            .with_overrides(&text)
            .map_err(|e| CatalogError::InFile {
                path: path.display().to_string(),
                source: Box::new(e),
            })
    }

    /// This catalog with `text`'s models (same JSON shape) merged in: an entry whose id is a
    /// name of an existing model of its provider replaces that model entirely; any other
    /// entry is added.
    pub fn with_overrides(&self, text: &str) -> Result<Catalog, CatalogError> {
        check_sections(text)?;
        let overrides = Catalog::from_json(text)?;
        let mut models = self.models.clone();
        for model in overrides.models {
            match self.names_of(model.provider).get(&model.id) {
                Some(&i) => models[i] = model,
                None => models.push(model),
            }
        }
        Ok(Catalog::from_models(models))
    }

    fn from_models(models: Vec<Model>) -> Catalog {
        let mut index: [HashMap<String, usize>; 3] = Default::default();
        for (i, model) in models.iter().enumerate() {
            for name in model.names() {
                index[slot(model.provider)]
                    .entry(name.to_string())
                    .or_insert(i);
            }
        }
        Catalog { models, index }
    }

    pub fn all(&self) -> &[Model] {
        &self.models
    }

    pub fn for_provider(&self, provider: Provider) -> impl Iterator<Item = &Model> {
        self.models.iter().filter(move |m| m.provider == provider)
    }

    /// Finds a model by id, dated id or alias. Accepts Gemini's `models/` prefix and, as a
    /// fallback, strips a date suffix (`-YYYY-MM-DD`, `-YYYYMMDD`) the catalog does not list.
    pub fn resolve(&self, provider: Provider, name: &str) -> Option<&Model> {
        let name = name.trim();
        let name = name.strip_prefix("models/").unwrap_or(name);
        let name = name.strip_prefix("gemini/").unwrap_or(name);
        self.lookup(provider, name)
            .or_else(|| strip_date_suffix(name).and_then(|base| self.lookup(provider, base)))
    }

    /// Looks a name up without allocating: the gateway does this on every request.
    fn lookup(&self, provider: Provider, name: &str) -> Option<&Model> {
        self.names_of(provider).get(name).map(|&i| &self.models[i])
    }

    fn names_of(&self, provider: Provider) -> &HashMap<String, usize> {
        &self.index[slot(provider)]
    }
}

/// Where a provider's names sit in the index.
fn slot(provider: Provider) -> usize {
    Provider::ALL
        .iter()
        .position(|p| *p == provider)
        .unwrap_or_default()
}

/// Refuses top-level keys other than the three providers (and `_`-prefixed comments), so a
/// misspelt section is not silently ignored.
fn check_sections(text: &str) -> Result<(), CatalogError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    if let Some(object) = value.as_object() {
        let known = |k: &str| Provider::ALL.iter().any(|p| p.as_str() == k) || k.starts_with('_');
        if let Some(unknown) = object.keys().find(|k| !known(k)) {
            return Err(CatalogError::UnknownSection(unknown.clone()));
        }
    }
    Ok(())
}

/// `gpt-4o-2024-08-06` → `gpt-4o`; `claude-x-20250101` → `claude-x`.
fn strip_date_suffix(name: &str) -> Option<&str> {
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // The cut may fall inside a multi-byte character of an app's model name: such a tail is
    // no date, so a checked split skips it rather than panicking.
    if let Some((base, tail)) = name
        .len()
        .checked_sub(11)
        .filter(|&at| at > 0)
        .and_then(|at| name.split_at_checked(at))
    {
        let parts: Vec<&str> = tail.split('-').collect();
        if parts.len() == 4
            && parts[0].is_empty()
            && parts[1].len() == 4
            && parts[1..].iter().all(|p| is_digits(p))
        {
            return Some(base);
        }
    }
    if let Some((base, tail)) = name
        .len()
        .checked_sub(9)
        .filter(|&at| at > 0)
        .and_then(|at| name.split_at_checked(at))
    {
        if let Some(date) = tail.strip_prefix('-') {
            if date.len() == 8 && is_digits(date) {
                return Some(base);
            }
        }
    }
    None
}

#[derive(Deserialize)]
struct RawCatalog {
    #[serde(default)]
    openai: Vec<RawModel>,
    #[serde(default)]
    anthropic: Vec<RawModel>,
    #[serde(default)]
    gemini: Vec<RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    served_as: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    display_name: Option<String>,
    kind: Option<ModelKind>,
    #[serde(default)]
    reasoning: bool,
    context_window: u64,
    max_output_tokens: u64,
    #[serde(default)]
    created: String,
    deprecation_date: Option<String>,
    price: RawRates,
    long_context: Option<RawLongContext>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    input: f64,
    cached_input: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    output: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongContext {
    threshold_tokens: u64,
    input: f64,
    cached_input: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    output: f64,
}

impl RawModel {
    fn into_model(self, provider: Provider) -> Result<Model, CatalogError> {
        let bad = |problem: String| CatalogError::BadEntry {
            model: format!("{provider}/{}", self.id),
            problem,
        };
        if self.id.trim().is_empty() {
            return Err(bad("the id is empty".into()));
        }
        let rates = self.price.to_rates().map_err(bad)?;
        let long_context = match &self.long_context {
            Some(lc) => Some(LongContext {
                threshold_tokens: lc.threshold_tokens,
                rates: RawRates {
                    input: lc.input,
                    cached_input: lc.cached_input,
                    cache_write_5m: lc.cache_write_5m,
                    cache_write_1h: lc.cache_write_1h,
                    output: lc.output,
                }
                .to_rates()
                .map_err(|p| bad(format!("long_context: {p}")))?,
            }),
            None => None,
        };
        Ok(Model {
            provider,
            served_as: self.served_as.unwrap_or_else(|| self.id.clone()),
            display_name: self.display_name.unwrap_or_else(|| self.id.clone()),
            kind: self.kind.unwrap_or(ModelKind::Chat),
            reasoning: self.reasoning,
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            created: self.created,
            deprecation_date: self.deprecation_date,
            aliases: self.aliases,
            id: self.id,
            rates,
            long_context,
        })
    }
}

impl RawRates {
    fn to_rates(&self) -> Result<Rates, String> {
        Ok(Rates {
            input: per_million_to_pico("input", self.input)?,
            cached_input: self
                .cached_input
                .map(|r| per_million_to_pico("cached_input", r))
                .transpose()?,
            cache_write_5m: self
                .cache_write_5m
                .map(|r| per_million_to_pico("cache_write_5m", r))
                .transpose()?,
            cache_write_1h: self
                .cache_write_1h
                .map(|r| per_million_to_pico("cache_write_1h", r))
                .transpose()?,
            output: per_million_to_pico("output", self.output)?,
        })
    }
}

/// $/M → pico-USD per token, refusing negative, absurd or over-precise rates.
fn per_million_to_pico(field: &str, dollars_per_million: f64) -> Result<i64, String> {
    if !dollars_per_million.is_finite() || dollars_per_million < 0.0 {
        return Err(format!("{field} must be a price of 0 or more"));
    }
    if dollars_per_million > 100_000.0 {
        return Err(format!(
            "{field} of ${dollars_per_million}/M is not plausible"
        ));
    }
    let pico = dollars_per_million * 1_000_000.0;
    let rounded = pico.round();
    if (pico - rounded).abs() > 1e-3 {
        return Err(format!(
            "{field} has more than six decimals (${dollars_per_million}/M)"
        ));
    }
    Ok(rounded as i64)
}

/// Rates in $/M as a person reads them (for pages and the JSON API).
pub fn pico_to_per_million(pico: i64) -> f64 {
    pico as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn embedded_catalog_is_valid() {
        let catalog = Catalog::from_json(EMBEDDED).unwrap();
        assert!(catalog.for_provider(Provider::OpenAi).count() >= 10);
        assert!(catalog.for_provider(Provider::Anthropic).count() >= 6);
        assert!(catalog.for_provider(Provider::Gemini).count() >= 4);
        for m in catalog.all() {
            assert!(m.rates.input >= 0 && m.rates.output >= 0, "{}", m.id);
            if let Some(cached) = m.rates.cached_input {
                assert!(cached <= m.rates.input, "{}: cached above input", m.id);
            }
            for name in m.names() {
                assert_eq!(catalog.resolve(m.provider, name).unwrap().id, m.id);
            }
            if m.kind == ModelKind::Chat {
                assert!(m.max_output_tokens > 0, "{}", m.id);
            }
        }
    }

    #[test]
    fn anthropic_cache_rates_keep_their_ratios() {
        let catalog = Catalog::from_json(EMBEDDED).unwrap();
        for m in catalog.for_provider(Provider::Anthropic) {
            let r = m.rates;
            assert_eq!(r.cached_input, Some(r.input / 10), "{}", m.id);
            assert_eq!(r.cache_write_5m, Some(r.input * 5 / 4), "{}", m.id);
            assert_eq!(r.cache_write_1h, Some(r.input * 2), "{}", m.id);
        }
    }

    #[test]
    fn names_with_multi_byte_characters_resolve_to_nothing_without_panicking() {
        let c = Catalog::embedded();
        for name in [
            "a€€€€",
            "ab€€€",
            "€-2024-07-18",
            "gpt-4o-€€-07-18",
            "ࠀ𐀀Q*ࠀ𐀀",
        ] {
            assert!(c.resolve(Provider::OpenAi, name).is_none(), "{name}");
        }
        assert_eq!(
            c.resolve(Provider::OpenAi, "gpt-4o-20240718").unwrap().id,
            "gpt-4o"
        );
    }

    #[test]
    fn resolves_dated_ids_prefixes_and_unknown_dates() {
        let c = Catalog::embedded();
        assert_eq!(
            c.resolve(Provider::OpenAi, "gpt-4o-mini-2024-07-18")
                .unwrap()
                .id,
            "gpt-4o-mini"
        );
        assert_eq!(
            c.resolve(Provider::OpenAi, "gpt-4o-2099-01-01").unwrap().id,
            "gpt-4o"
        );
        assert_eq!(
            c.resolve(Provider::Anthropic, "claude-sonnet-4-5-20250929")
                .unwrap()
                .id,
            "claude-sonnet-4-5"
        );
        assert_eq!(
            c.resolve(Provider::Gemini, "models/gemini-2.5-flash")
                .unwrap()
                .id,
            "gemini-2.5-flash"
        );
        assert!(c.resolve(Provider::OpenAi, "gpt-9-ultra").is_none());
        assert!(c.resolve(Provider::Anthropic, "gpt-4o").is_none());
    }

    #[test]
    fn rates_are_exact_integers() {
        let c = Catalog::embedded();
        let mini = c.resolve(Provider::OpenAi, "gpt-4o-mini").unwrap();
        assert_eq!(mini.rates.input, 150_000);
        assert_eq!(mini.rates.cached_input, Some(75_000));
        assert_eq!(mini.rates.output, 600_000);
        let pro = c.resolve(Provider::Gemini, "gemini-2.5-pro").unwrap();
        assert_eq!(pro.rates_for_prompt(200_001).input, 2_500_000);
        assert_eq!(pro.rates_for_prompt(200_000).input, 1_250_000);
    }

    #[test]
    fn overrides_replace_by_any_name_and_add_new_models() {
        let merged = Catalog::embedded()
            .with_overrides(
                r#"{"_about": "mine", "openai": [
                    {"id":"gpt-4o-mini-2024-07-18","context_window":1000,"max_output_tokens":10,"price":{"input":0.2,"output":0.8}},
                    {"id":"my-model","context_window":1000,"max_output_tokens":10,"price":{"input":1,"output":2}}]}"#,
            )
            .unwrap();
        let embedded = Catalog::embedded();
        assert_eq!(merged.all().len(), embedded.all().len() + 1);
        let mini = merged
            .resolve(Provider::OpenAi, "gpt-4o-mini-2024-07-18")
            .unwrap();
        assert_eq!(mini.rates.input, 200_000);
        assert_eq!(mini.context_window, 1000);
        let mine = merged.resolve(Provider::OpenAi, "my-model").unwrap();
        assert_eq!(mine.rates.output, 2_000_000);
        assert!(merged.resolve(Provider::Anthropic, "my-model").is_none());
        // Untouched models keep their prices.
        assert_eq!(
            merged.resolve(Provider::OpenAi, "gpt-4o").unwrap().rates,
            embedded.resolve(Provider::OpenAi, "gpt-4o").unwrap().rates
        );
    }

    #[test]
    fn a_misspelt_override_section_is_refused() {
        let err = Catalog::embedded()
            .with_overrides(r#"{"opeanai": []}"#)
            .unwrap_err();
        assert!(err.to_string().contains("opeanai"), "{err}");
    }

    #[test]
    fn a_bad_prices_file_names_the_file_and_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Catalog::load(dir.path()).unwrap().all().len(),
            Catalog::embedded().all().len()
        );
        std::fs::write(
            dir.path().join(OVERRIDES_FILE),
            r#"{"openai":[{"id":"gpt-x","context_window":1,"max_output_tokens":1,"price":{"input":-1,"output":1}}]}"#,
        )
        .unwrap();
        let err = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("prices.json: model openai/gpt-x: input must be a price of 0 or more"),
            "{err}"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = Catalog::from_json(
            r#"{"openai":[{"id":"x","context_window":1,"max_output_tokens":1,"price":{"input":-1,"output":1}}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("openai/x"), "{err}");
    }
}
