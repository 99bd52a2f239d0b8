//! The filter form the request log and Usage & Billing share: date range, app, provider,
//! model, status and surface, and the same filters as a query string for export and paging.

use std::collections::HashMap;

use crate::hub::FilterParams;
use crate::providers::Provider;

/// The status choices of the filter: any, ok, error, then the Hub's own codes.
const STATUS_CHOICES: [&str; 13] = [
    "ok",
    "error",
    "app_rate_limited",
    "app_budget_exceeded",
    "insufficient_credits",
    "model_not_available",
    "endpoint_not_supported",
    "connector_revoked",
    "request_too_large",
    "bad_request",
    "upstream_connection_failed",
    "upstream_timeout",
    "client_disconnected",
];

/// The filter form the request log and Usage & Billing share.
pub(super) struct FilterForm {
    pub action: &'static str,
    pub filters: FilterParams,
    /// (id, name), by name.
    pub apps: Vec<(String, String)>,
    pub providers: Vec<(&'static str, &'static str)>,
    pub statuses: &'static [&'static str],
}

impl FilterForm {
    pub fn new(
        action: &'static str,
        filters: FilterParams,
        names: &HashMap<String, String>,
    ) -> FilterForm {
        let mut apps: Vec<(String, String)> = names
            .iter()
            .map(|(id, n)| (id.clone(), n.clone()))
            .collect();
        apps.sort_by_key(|a| a.1.to_lowercase());
        FilterForm {
            action,
            filters,
            apps,
            providers: Provider::ALL
                .iter()
                .map(|p| (p.as_str(), p.display_name()))
                .collect(),
            statuses: &STATUS_CHOICES,
        }
    }

    /// The filters as a query string, for export and paging links.
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(filter_pairs(&self.filters))
            .finish()
    }
}

fn filter_pairs(f: &FilterParams) -> Vec<(&'static str, String)> {
    [
        ("from", &f.from),
        ("to", &f.to),
        ("app", &f.app),
        ("provider", &f.provider),
        ("model", &f.model),
        ("status", &f.status),
        ("surface", &f.surface),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (k, v.to_string()))
    })
    .collect()
}
