//! The model catalog over HTTP: `GET /api/v1/models` and the Models page, with list prices
//! per million tokens and the connections that reach each model.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::{Value, json};

use super::auth::{ApiSession, PageSession};
use super::errors::{ApiError, PageError};
use super::pages::{Layout, render};
use crate::catalog::{ModelKind, Rates, pico_to_per_million};
use crate::hub::{Hub, ModelReach};
use crate::money::MicroUsd;
use crate::providers::Provider;

/// The catalog in the management API's model shape, prices in USD per million tokens.
pub async fn list(hub: web::Data<Hub>, _session: ApiSession) -> Result<HttpResponse, ApiError> {
    let models = hub.run(move |h| h.models_with_reach()).await?;
    let data: Vec<Value> = models.iter().map(model_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

fn model_json(entry: &ModelReach) -> Value {
    let m = entry.model;
    json!({
        "provider": m.provider,
        "id": m.id,
        "aliases": aliases(entry),
        "display_name": m.display_name,
        "kind": m.kind,
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "deprecation_date": m.deprecation_date,
        "price": price_json(&m.rates),
        "long_context": m.long_context.map(|lc| json!({
            "threshold_tokens": lc.threshold_tokens,
            "price": price_json(&lc.rates),
        })),
        "reachable_via": entry
            .reachable_via
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect::<Vec<_>>(),
    })
}

/// Every other name the model answers to: its dated id and aliases, without repeats.
fn aliases(entry: &ModelReach) -> Vec<&str> {
    let m = entry.model;
    let mut names: Vec<&str> = Vec::new();
    for name in m.names().skip(1) {
        if name != m.id && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn price_json(r: &Rates) -> Value {
    let rate = |pico: Option<i64>| pico.map(pico_to_per_million);
    json!({
        "input": pico_to_per_million(r.input),
        "cached_input": rate(r.cached_input),
        "cache_write_5m": rate(r.cache_write_5m),
        "cache_write_1h": rate(r.cache_write_1h),
        "output": pico_to_per_million(r.output),
    })
}

/// One model as the page shows it; prices already written as `$0.15`.
pub struct ModelRow {
    pub anchor: String,
    pub id: String,
    pub display_name: String,
    pub aliases: String,
    pub embedding: bool,
    pub input: String,
    pub cached_input: String,
    pub cache_write_5m: String,
    pub cache_write_1h: String,
    pub output: String,
    pub long_context: Option<String>,
    pub context_window: String,
    pub max_output: String,
    pub deprecation: String,
    pub reachable_via: Vec<String>,
}

/// One provider's section of the page.
pub struct ProviderSection {
    pub name: &'static str,
    pub models: Vec<ModelRow>,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    l: Layout,
    sections: Vec<ProviderSection>,
}

pub async fn page(hub: web::Data<Hub>, session: PageSession) -> Result<HttpResponse, PageError> {
    let (models, connections) = hub
        .run(move |h| Ok((h.models_with_reach()?, h.list_connections()?)))
        .await?;
    let failing: Vec<(String, String)> = connections
        .iter()
        .filter(|c| c.is_failing())
        .map(|c| (c.id.clone(), c.picker_warning()))
        .collect();
    let sections = Provider::ALL
        .iter()
        .map(|&p| ProviderSection {
            name: p.display_name(),
            models: models
                .iter()
                .filter(|m| m.model.provider == p)
                .map(|m| model_row(m, &failing))
                .collect(),
        })
        .collect();
    render(
        StatusCode::OK,
        &ModelsPage {
            l: Layout::new(&hub, &session, "models"),
            sections,
        },
    )
}

/// One model's row; `failing` lists (connection id, warning) for connections to mark.
fn model_row(entry: &ModelReach, failing: &[(String, String)]) -> ModelRow {
    let m = entry.model;
    ModelRow {
        anchor: format!("model-{}-{}", m.provider, m.id),
        id: m.id.clone(),
        display_name: m.display_name.clone(),
        aliases: aliases(entry).join(", "),
        embedding: m.kind == ModelKind::Embedding,
        input: per_million(Some(m.rates.input)),
        cached_input: per_million(m.rates.cached_input),
        cache_write_5m: per_million(m.rates.cache_write_5m),
        cache_write_1h: per_million(m.rates.cache_write_1h),
        output: per_million(Some(m.rates.output)),
        long_context: m.long_context.map(|lc| {
            format!(
                "Prompts over {} tokens: input {}, output {} per 1M tokens",
                grouped(lc.threshold_tokens),
                per_million(Some(lc.rates.input)),
                per_million(Some(lc.rates.output))
            )
        }),
        context_window: grouped(m.context_window),
        max_output: if m.max_output_tokens == 0 {
            "–".to_string()
        } else {
            grouped(m.max_output_tokens)
        },
        deprecation: m.deprecation_date.clone().unwrap_or_default(),
        reachable_via: entry
            .reachable_via
            .iter()
            .map(|(id, name)| {
                let warning = failing
                    .iter()
                    .find(|(f, _)| f == id)
                    .map(|(_, w)| w.as_str());
                format!("{name}{}", warning.unwrap_or(""))
            })
            .collect(),
    }
}

/// A rate in pico-USD per token read as dollars per million tokens: numerically the same
/// digits as micro-USD, so the exact money formatting applies.
fn per_million(pico: Option<i64>) -> String {
    pico.map_or_else(|| "–".to_string(), |p| MicroUsd(p).to_string())
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
