//! Usage & Billing over HTTP: the credits and usage API, the CSV export, the page with its
//! Add credits form, and the daily spend chart.

pub mod api;
pub mod chart;
mod filters;
pub mod pages;
pub mod requests;

use serde::Deserialize;

use crate::hub::HubError;

/// The paging parameters every list takes: `cursor` (an id from `next_cursor`) and `limit`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

impl PageQuery {
    pub fn cursor(&self) -> Result<Option<i64>, HubError> {
        parse_number("cursor", self.cursor.as_deref()).map(|c| c.filter(|&c| c > 0))
    }

    pub fn limit(&self, default: usize) -> Result<usize, HubError> {
        Ok(parse_number("limit", self.limit.as_deref())?
            .map_or(default, |l| usize::try_from(l).unwrap_or(0)))
    }
}

/// An optional whole number from a query string, as a clear error when it is not one.
fn parse_number(field: &'static str, text: Option<&str>) -> Result<Option<i64>, HubError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| HubError::bad_input(field, format!("`{field}` must be a whole number."))),
    }
}
