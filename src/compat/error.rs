//! Errors on the compatible surface: OpenAI's error shape, and the native error bodies of
//! Anthropic and Gemini (the providers' own and the gateway's refusals) read back into it.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::gateway::{OutBody, Outgoing};
use crate::providers::Provider;

/// An error answer in OpenAI's shape: `{"error":{message,type,param,code}}`.
pub fn openai_error(status: u16, code: &str, message: &str, retry_after: Option<&str>) -> Outgoing {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secs) = retry_after {
        headers.push(("retry-after".to_string(), secs.to_string()));
    }
    Outgoing {
        status,
        headers,
        body: OutBody::Full(error_body(status, code, message)),
        refused: None,
    }
}

pub fn error_body(status: u16, code: &str, message: &str) -> Bytes {
    Bytes::from(
        json!({"error": {"message": message, "type": error_type(status), "param": null, "code": code}})
            .to_string(),
    )
}

/// OpenAI's `type` for a status, as its SDKs and docs use them.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Anthropic's "overloaded" (529) has no OpenAI status; 503 keeps the SDK retrying.
pub fn openai_status(native: u16) -> u16 {
    if native == 529 { 503 } else { native }
}

/// What an error body says, whichever provider wrote it.
#[derive(Debug, PartialEq, Eq)]
pub struct NativeError {
    pub code: String,
    pub message: String,
    pub retry_after: Option<String>,
}

pub fn read_native(provider: Provider, status: u16, body: &[u8]) -> NativeError {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let found = match provider {
        Provider::Anthropic => anthropic_error(&value),
        Provider::Gemini => gemini_error(&value),
        Provider::OpenAi => openai_native(&value),
    };
    found.unwrap_or_else(|| NativeError {
        code: format!("http_{status}"),
        message: format!(
            "The provider answered {status} with a body the Hub could not read: {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(500)
                .collect::<String>()
        ),
        retry_after: None,
    })
}

/// `{"type":"error","error":{"type","message","details":{"error_code"}}}`.
fn anthropic_error(v: &Value) -> Option<NativeError> {
    let e = v.get("error")?;
    let code = e["details"]["error_code"]
        .as_str()
        .or(e["type"].as_str())
        .unwrap_or("error");
    Some(NativeError {
        code: code.to_string(),
        message: e["message"].as_str().unwrap_or_default().to_string(),
        retry_after: None,
    })
}

/// `{"error":{"code","message","status","details":[{"reason","domain"} | {"retryDelay"}]}}`.
fn gemini_error(v: &Value) -> Option<NativeError> {
    let e = v.get("error")?;
    let details = e["details"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let hub_reason = details
        .iter()
        .find(|d| d["domain"] == "workshop-hub")
        .and_then(|d| d["reason"].as_str())
        .map(str::to_ascii_lowercase);
    let code = hub_reason
        .or_else(|| e["status"].as_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| "error".into());
    let retry_after = details
        .iter()
        .find_map(|d| d["retryDelay"].as_str())
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| (s.ceil() as u64).to_string());
    Some(NativeError {
        code,
        message: e["message"].as_str().unwrap_or_default().to_string(),
        retry_after,
    })
}

fn openai_native(v: &Value) -> Option<NativeError> {
    let e = v.get("error")?;
    Some(NativeError {
        code: e["code"]
            .as_str()
            .or(e["type"].as_str())
            .unwrap_or("error")
            .to_string(),
        message: e["message"].as_str().unwrap_or_default().to_string(),
        retry_after: None,
    })
}

pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A stream error event the openai SDK raises (`data: {"error":{…}}`).
pub fn stream_error(code: &str, message: &str) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&error_body(500, code, message));
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::providers::{self, Refusal};

    #[test]
    fn the_gateways_refusals_keep_their_stable_code_from_every_shape() {
        for provider in [Provider::Anthropic, Provider::Gemini, Provider::OpenAi] {
            for why in Refusal::ALL {
                let body = providers::api(provider).error_body(why, "do this next");
                let e = read_native(provider, why.status(), &body);
                assert_eq!(e.code, why.as_str(), "{provider} {why}");
                assert_eq!(e.message, "do this next");
            }
        }
    }

    #[test]
    fn provider_errors_keep_type_and_message() {
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = read_native(Provider::Anthropic, 529, body);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("overloaded_error", "Overloaded")
        );
        assert_eq!(openai_status(529), 503);
        let body = br#"{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17.2s"}]}}"#;
        let e = read_native(Provider::Gemini, 429, body);
        assert_eq!(e.code, "resource_exhausted");
        assert_eq!(e.retry_after.as_deref(), Some("18"));
    }

    #[test]
    fn the_openai_shape_has_the_fields_the_sdk_reads() {
        let out = openai_error(429, "app_rate_limited", "wait", Some("7"));
        assert_eq!(out.status, 429);
        assert_eq!(header(&out.headers, "retry-after").as_deref(), Some("7"));
        let OutBody::Full(body) = out.body else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "app_rate_limited");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "wait");
    }

    #[test]
    fn unreadable_bodies_still_say_the_status() {
        let e = read_native(Provider::Gemini, 502, b"<html>bad gateway</html>");
        assert_eq!(e.code, "http_502");
        assert!(e.message.contains("bad gateway"));
    }
}
