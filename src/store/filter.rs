//! Which usage records a request list, an export or a total covers, and the SQL that selects
//! them. Values are always bound, never spliced into the statement.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;

use crate::ledger::Surface;
use crate::providers::Provider;

/// What a call's outcome must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusFilter {
    /// Answered below 400, with no error code.
    Ok,
    /// Anything else: the provider's errors and the Hub's own refusals.
    Error,
    /// One stable error code (`app_rate_limited`, `invalid_api_key`, `http_500`…).
    Code(String),
}

/// A filter over usage records; every field narrows, `None` does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub app: Option<String>,
    pub provider: Option<Provider>,
    /// Any of these names (a model's id, dated id and aliases).
    pub models: Option<Vec<String>>,
    pub status: Option<StatusFilter>,
    pub surface: Option<Surface>,
}

impl UsageFilter {
    /// `AND …` conditions over `usage_records` and their values, in order.
    pub(super) fn conditions(&self) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |condition: &str, value: Vec<Value>| {
            sql.push_str(" AND ");
            sql.push_str(condition);
            values.extend(value);
        };
        let stamp =
            |t: &DateTime<Utc>| Value::Text(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        if let Some(from) = &self.from {
            add("started_at >= ?", vec![stamp(from)]);
        }
        if let Some(to) = &self.to {
            add("started_at < ?", vec![stamp(to)]);
        }
        if let Some(app) = &self.app {
            add("app_id = ?", vec![Value::Text(app.clone())]);
        }
        if let Some(provider) = self.provider {
            add("provider = ?", vec![Value::Text(provider.as_str().into())]);
        }
        if let Some(models) = &self.models {
            let mut names: Vec<Value> = models.iter().map(|m| Value::Text(m.clone())).collect();
            if names.is_empty() {
                names.push(Value::Null);
            }
            let marks = vec!["?"; names.len()].join(", ");
            add(&format!("model IN ({marks})"), names);
        }
        match &self.status {
            Some(StatusFilter::Ok) => add("status < 400 AND error_code IS NULL", vec![]),
            Some(StatusFilter::Error) => add("(status >= 400 OR error_code IS NOT NULL)", vec![]),
            Some(StatusFilter::Code(code)) => {
                add("error_code = ?", vec![Value::Text(code.clone())])
            }
            None => {}
        }
        if let Some(surface) = self.surface {
            add("surface = ?", vec![Value::Text(surface.as_str().into())]);
        }
        (sql, values)
    }
}
