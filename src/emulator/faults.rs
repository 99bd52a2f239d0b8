//! What can go wrong on purpose: key classes and the faults a request asks for.
//!
//! A key containing `invalid` or `revoked` is refused as invalid, one containing `noquota` as
//! out of credit, and a key without the provider's prefix as invalid. The request header
//! `x-emulator-fault` injects everything else.

/// The header a request names a fault in.
pub const FAULT_HEADER: &str = "x-emulator-fault";

/// How the emulator treats a request's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    Missing,
    Invalid(String),
    NoQuota,
    Accepted,
}

/// Classifies `key` for a provider whose keys start with `prefix` (and not with any of
/// `foreign_prefixes`, other providers' keys that share it).
pub fn classify_key(key: Option<&str>, prefix: &str, foreign_prefixes: &[&str]) -> KeyStatus {
    let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
        return KeyStatus::Missing;
    };
    let lower = key.to_ascii_lowercase();
    let wrong_shape =
        !key.starts_with(prefix) || foreign_prefixes.iter().any(|p| key.starts_with(p));
    if wrong_shape || lower.contains("invalid") || lower.contains("revoked") {
        KeyStatus::Invalid(key.to_string())
    } else if lower.contains("noquota") {
        KeyStatus::NoQuota
    } else {
        KeyStatus::Accepted
    }
}

/// A fault asked for with `x-emulator-fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RateLimit,
    InsufficientQuota,
    ServerError,
    Overloaded,
    /// Never answer.
    Timeout,
    /// Cut the connection after a few stream events (or half a JSON body).
    DropMidStream,
    /// Pace the stream at [`SLOW_EVENT_MS`] per event and delay whole bodies by [`SLOW_BODY_MS`].
    Slow,
    /// Answer 200, send a few stream events, then the provider's own error event (an
    /// `overloaded_error` and its like); a whole-body request gets the overloaded error.
    ErrorMidStream,
}

pub const SLOW_EVENT_MS: u64 = 100;
pub const SLOW_BODY_MS: u64 = 500;
/// How many stream events arrive before a dropped stream is cut.
pub const DROP_AFTER_EVENTS: usize = 3;

impl Fault {
    /// Reads the fault header's value; unknown names are ignored.
    pub fn parse(value: &str) -> Option<Fault> {
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "rate_limit" => Fault::RateLimit,
            "insufficient_quota" => Fault::InsufficientQuota,
            "server_error" => Fault::ServerError,
            "overloaded" => Fault::Overloaded,
            "timeout" => Fault::Timeout,
            "drop_mid_stream" => Fault::DropMidStream,
            "slow" => Fault::Slow,
            "error_mid_stream" => Fault::ErrorMidStream,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn keys_are_classified() {
        let c = |k| classify_key(k, "sk-", &["sk-ant-"]);
        assert_eq!(c(None), KeyStatus::Missing);
        assert_eq!(c(Some(" ")), KeyStatus::Missing);
        assert_eq!(c(Some("sk-proj-test")), KeyStatus::Accepted);
        assert_eq!(c(Some("sk-proj-noquota-1")), KeyStatus::NoQuota);
        assert!(matches!(c(Some("sk-proj-revoked")), KeyStatus::Invalid(_)));
        assert!(matches!(c(Some("AIzaTest")), KeyStatus::Invalid(_)));
        assert!(matches!(c(Some("sk-ant-api03-x")), KeyStatus::Invalid(_)));
    }

    #[test]
    fn faults_parse() {
        assert_eq!(Fault::parse("rate_limit"), Some(Fault::RateLimit));
        assert_eq!(Fault::parse(" Slow "), Some(Fault::Slow));
        assert_eq!(
            Fault::parse("error_mid_stream"),
            Some(Fault::ErrorMidStream)
        );
        assert_eq!(Fault::parse("nope"), None);
    }
}
