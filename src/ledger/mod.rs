//! Credits: the local prepaid balance, holds placed before managed requests, and the
//! usage record every proxied request leaves behind.
//!
//! The ledger in the database is append-only and its sum is the balance. This module keeps
//! that sum and the open holds in memory so the gateway's hot path never queries for them;
//! holds are not persisted, so a restart starts with none.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::money::MicroUsd;
use crate::providers::Provider;

/// Who pays for a request: the Hub's credits (managed), the provider directly (BYOK), or
/// nobody (model lists, token counts, the Hub's own refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BilledTo {
    Credits,
    Provider,
    None,
}

impl BilledTo {
    pub fn as_str(self) -> &'static str {
        match self {
            BilledTo::Credits => "credits",
            BilledTo::Provider => "provider",
            BilledTo::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<BilledTo> {
        match text {
            "credits" => Some(BilledTo::Credits),
            "provider" => Some(BilledTo::Provider),
            "none" => Some(BilledTo::None),
            _ => None,
        }
    }
}

/// Which API a call came through: the provider's own, or the OpenAI-compatible `/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    Native,
    Compatible,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Native => "native",
            Surface::Compatible => "compatible",
        }
    }

    pub fn parse(text: &str) -> Option<Surface> {
        match text {
            "native" => Some(Surface::Native),
            "compatible" => Some(Surface::Compatible),
            _ => None,
        }
    }
}

/// One proxied request: what the gateway writes to `usage_records`, and what reports, the
/// JSON API and the CSV export read back. Its fields, in [`USAGE_COLUMNS`] order, are one
/// list shared by all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The row id; 0 until the record is stored.
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub app_id: Option<String>,
    pub connection_id: Option<String>,
    pub provider: Provider,
    pub model: Option<String>,
    pub endpoint: String,
    pub streamed: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Exact cost at list price, rounded up; `None` when the model has no known price.
    pub cost: Option<MicroUsd>,
    pub billed_to: BilledTo,
    pub estimated: bool,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub surface: Surface,
    /// From arrival to being sent upstream; `None` when it never was.
    pub queued_ms: Option<u64>,
    /// Upstream attempts: 0 when never sent, more than 1 when a rate limit was retried;
    /// `None` for calls recorded before attempts were counted.
    pub attempts: Option<u32>,
    /// The provider's own id for the call, from its response headers.
    pub provider_request_id: Option<String>,
}

/// The fields of a usage record, by the names the database columns, the JSON API and the CSV
/// header all use, in the order of [`UsageRecord::values`].
pub const USAGE_COLUMNS: [&str; 24] = [
    "id",
    "started_at",
    "app_id",
    "connection_id",
    "provider",
    "model",
    "endpoint",
    "streamed",
    "status",
    "error_code",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micro_usd",
    "billed_to",
    "estimated",
    "latency_ms",
    "ttfb_ms",
    "surface",
    "queued_ms",
    "attempts",
    "provider_request_id",
];

/// One field of a usage record, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageValue<'a> {
    Int(i64),
    Text(&'a str),
    Owned(String),
    Bool(bool),
    Null,
}

/// An optional text field, `Null` when absent.
fn text(v: &Option<String>) -> UsageValue<'_> {
    v.as_deref().map_or(UsageValue::Null, UsageValue::Text)
}

impl UsageRecord {
    /// The amount to debit from credits for this record (zero for BYOK).
    pub fn charge(&self) -> MicroUsd {
        match (self.billed_to, self.cost) {
            (BilledTo::Credits, Some(c)) if c.0 > 0 => c,
            _ => MicroUsd::ZERO,
        }
    }

    /// The token counts in the terms cost is computed in. Cache writes are recorded as one
    /// number, so they read back as 5-minute writes.
    pub fn usage(&self) -> crate::providers::Usage {
        crate::providers::Usage {
            model: self.model.clone(),
            input_tokens: self.input_tokens,
            cached_input_tokens: self.cached_input_tokens,
            cache_write_5m_tokens: self.cache_write_tokens,
            cache_write_1h_tokens: 0,
            output_tokens: self.output_tokens,
            reasoning_tokens: self.reasoning_tokens,
        }
    }

    /// The start time as stored and shown: RFC 3339 UTC with milliseconds.
    pub fn started_at_text(&self) -> String {
        self.started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Whether a rate limit made the Hub send this call more than once.
    pub fn retried(&self) -> bool {
        self.attempts.is_some_and(|a| a > 1)
    }

    /// Every field, in [`USAGE_COLUMNS`] order.
    pub fn values(&self) -> [UsageValue<'_>; 24] {
        use UsageValue::{Bool, Int, Null, Owned, Text};
        let int = |v: u64| Int(i64::try_from(v).unwrap_or(i64::MAX));
        [
            Int(self.id),
            Owned(self.started_at_text()),
            text(&self.app_id),
            text(&self.connection_id),
            Text(self.provider.as_str()),
            text(&self.model),
            Text(&self.endpoint),
            Bool(self.streamed),
            Int(i64::from(self.status)),
            text(&self.error_code),
            int(self.input_tokens),
            int(self.cached_input_tokens),
            int(self.cache_write_tokens),
            int(self.output_tokens),
            int(self.reasoning_tokens),
            self.cost.map_or(Null, |c| Int(c.0)),
            Text(self.billed_to.as_str()),
            Bool(self.estimated),
            int(self.latency_ms),
            self.ttfb_ms.map_or(Null, int),
            Text(self.surface.as_str()),
            self.queued_ms.map_or(Null, int),
            self.attempts.map_or(Null, |a| Int(i64::from(a))),
            text(&self.provider_request_id),
        ]
    }
}

impl Serialize for UsageRecord {
    /// The management API's usage row: every column by its name.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(USAGE_COLUMNS.len()))?;
        for (name, value) in USAGE_COLUMNS.iter().zip(self.values()) {
            match value {
                UsageValue::Int(n) => map.serialize_entry(name, &n)?,
                UsageValue::Text(t) => map.serialize_entry(name, t)?,
                UsageValue::Owned(t) => map.serialize_entry(name, &t)?,
                UsageValue::Bool(b) => map.serialize_entry(name, &b)?,
                UsageValue::Null => map.serialize_entry(name, &())?,
            }
        }
        map.end()
    }
}

/// Refused hold: what was available and what the request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insufficient {
    pub balance: MicroUsd,
    pub held: MicroUsd,
    pub needed: MicroUsd,
}

impl Insufficient {
    pub fn available(&self) -> MicroUsd {
        self.balance - self.held
    }
}

#[derive(Debug, Default)]
struct Book {
    balance: MicroUsd,
    held: MicroUsd,
}

/// The credit balance (sum of the ledger) and the holds of requests in flight.
#[derive(Debug, Clone, Default)]
pub struct Credits {
    book: Arc<Mutex<Book>>,
}

impl Credits {
    /// Starts from the ledger's sum, with no open holds.
    pub fn new(balance: MicroUsd) -> Credits {
        Credits {
            book: Arc::new(Mutex::new(Book {
                balance,
                held: MicroUsd::ZERO,
            })),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn balance(&self) -> MicroUsd {
        self.book().balance
    }

    pub fn held(&self) -> MicroUsd {
        self.book().held
    }

    /// Reserves `amount` if the balance less open holds covers it.
    pub fn hold(&self, amount: MicroUsd) -> Result<Hold, Insufficient> {
        let mut book = self.book();
        if book.balance - book.held < amount {
            return Err(Insufficient {
                balance: book.balance,
                held: book.held,
                needed: amount,
            });
        }
        book.held += amount;
        Ok(Hold {
            credits: self.clone(),
            amount,
            open: true,
        })
    }

    /// Records a committed top-up or adjustment.
    pub fn credit(&self, amount: MicroUsd) {
        self.book().balance += amount;
    }

    /// Debits a committed charge and releases the hold that covered it, in one step.
    pub fn settle(&self, mut hold: Option<Hold>, charge: MicroUsd) {
        let mut book = self.book();
        book.balance = book.balance - charge;
        if let Some(h) = hold.as_mut() {
            book.held = book.held - h.amount;
            h.open = false;
        }
    }
}

/// Credits reserved for one request in flight. Dropping it without settling releases it,
/// so no failure path can leave money held.
#[derive(Debug)]
pub struct Hold {
    credits: Credits,
    amount: MicroUsd,
    open: bool,
}

impl Hold {
    pub fn amount(&self) -> MicroUsd {
        self.amount
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.open {
            let mut book = self.credits.book();
            book.held = book.held - self.amount;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_cannot_exceed_the_balance() {
        let c = Credits::new(MicroUsd(5_000_000));
        let holds: Vec<_> = (0..10)
            .map(|_| c.hold(MicroUsd(500_000)).unwrap())
            .collect();
        let refused = c.hold(MicroUsd(1)).unwrap_err();
        assert_eq!(refused.available(), MicroUsd(0));
        assert_eq!(c.held(), MicroUsd(5_000_000));
        drop(holds);
        assert_eq!(c.held(), MicroUsd(0));
        assert_eq!(c.balance(), MicroUsd(5_000_000));
    }

    #[test]
    fn settling_debits_the_charge_and_releases_the_hold() {
        let c = Credits::new(MicroUsd(1_000_000));
        let h = c.hold(MicroUsd(300_000)).unwrap();
        c.settle(Some(h), MicroUsd(1_234));
        assert_eq!(c.held(), MicroUsd(0));
        assert_eq!(c.balance(), MicroUsd(998_766));
    }

    #[test]
    fn concurrent_holds_never_overspend() {
        let c = Credits::new(MicroUsd(5_000_000));
        let granted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..50 {
                s.spawn(|| {
                    if let Ok(h) = c.hold(MicroUsd(500_000)) {
                        granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::mem::forget(h);
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 10);
        assert_eq!(c.held(), MicroUsd(5_000_000));
    }
}
