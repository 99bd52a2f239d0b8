//! Request plumbing shared by the providers: reading keys, cleaning headers and queries,
//! estimating tokens from bytes, and writing small JSON and SSE bodies.

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

use super::Headers;

/// Every header any of the SDKs carries a credential in: the app key may come in any of them
/// (and Gemini's `key` parameter), and in no other place.
pub const CLIENT_CREDENTIALS: &[&str] = &["authorization", "x-api-key", "x-goog-api-key"];

/// The first value of header `name` (given in lowercase).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &[(String, String)]) -> Option<&str> {
    let value = header(headers, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A non-empty, trimmed key as a secret.
pub(crate) fn app_key(value: Option<&str>) -> Option<SecretString> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| SecretString::from(v.to_owned()))
}

/// The client's headers that `allowed` names (see [`super::header_allowed`]), followed by
/// the stored key in `auth_header`. Credentials are never in an allowlist.
pub(crate) fn upstream_headers(
    headers: &[(String, String)],
    allowed: &[&str],
    auth_header: &str,
    auth_value: String,
) -> Headers {
    let mut kept: Headers = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .filter(|(name, _)| {
            super::header_allowed(allowed, name) && !CLIENT_CREDENTIALS.contains(&name.as_str())
        })
        .map(|(n, v)| (n, v.clone()))
        .collect();
    kept.push((auth_header.to_owned(), auth_value));
    kept
}

/// `Bearer <key>`, the one place the stored key is exposed for OpenAI-style auth.
pub(crate) fn bearer_value(key: &SecretString) -> String {
    format!("Bearer {}", key.expose_secret())
}

/// The query to send upstream: only parameters named in `allowed`, re-encoded, in their order.
/// Everything else (Gemini's `key` among them) is dropped.
pub(crate) fn allowed_query(raw: &str, allowed: &[&str]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if allowed.contains(&name.as_ref()) {
            out.append_pair(&name, &value);
        }
    }
    out.finish()
}

/// The decoded value of query parameter `name`.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Tokens in `bytes` bytes of text or JSON: one per 4 bytes, rounded up. English averages about
/// 4 characters per token; other scripts take 2–3 UTF-8 bytes per character, so the estimate
/// errs high there rather than low.
pub(crate) fn tokens_from_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// A model name without Gemini's `models/` prefix.
pub(crate) fn strip_models_prefix(name: &str) -> &str {
    name.strip_prefix("models/").unwrap_or(name)
}

/// A JSON value as bytes.
pub(crate) fn json_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// One SSE event: an optional `event:` line, one `data:` line, a blank line.
pub(crate) fn sse_event(name: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn upstream_headers_drop_credentials_and_hop_by_hop() {
        let client = h(&[
            ("authorization", "Bearer app"),
            ("x-api-key", "app"),
            ("x-goog-api-key", "app"),
            ("cookie", "session=1"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("host", "127.0.0.1:8420"),
            ("content-length", "12"),
            ("accept-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
            ("Anthropic-Version", "2023-06-01"),
            ("X-Stainless-Lang", "python"),
            ("api-key", "whk_azure_style"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        let allowed = [
            "content-type",
            "anthropic-version",
            "x-stainless-",
            "authorization",
        ];
        let out = upstream_headers(&client, &allowed, "x-api-key", "stored".into());
        assert_eq!(
            out,
            h(&[
                ("content-type", "application/json"),
                ("anthropic-version", "2023-06-01"),
                ("x-stainless-lang", "python"),
                ("x-api-key", "stored"),
            ])
        );
    }

    #[test]
    fn only_allowed_query_parameters_go_upstream() {
        let allowed = ["alt", "pageSize"];
        assert_eq!(
            allowed_query("alt=sse&key=AIzaTest&api-key=whk_x&pageSize=5", &allowed),
            "alt=sse&pageSize=5"
        );
        assert_eq!(allowed_query("k%65y=whk_x&%61lt=sse", &allowed), "alt=sse");
        assert_eq!(allowed_query("keys=1&key", &allowed), "");
        assert_eq!(allowed_query("alt=a%20b", &allowed), "alt=a+b");
        assert_eq!(query_param("a=1&key=A%2Bb", "key").as_deref(), Some("A+b"));
    }

    #[test]
    fn bearer_tokens_need_the_scheme() {
        assert_eq!(
            bearer_token(&h(&[("authorization", "Bearer  k1 ")])),
            Some("k1")
        );
        assert_eq!(
            bearer_token(&h(&[("Authorization", "bearer k2")])),
            Some("k2")
        );
        assert_eq!(bearer_token(&h(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer_token(&h(&[("authorization", "Bearer ")])), None);
    }

    #[test]
    fn token_estimate_rounds_up() {
        assert_eq!(tokens_from_bytes(0), 0);
        assert_eq!(tokens_from_bytes(1), 1);
        assert_eq!(tokens_from_bytes(8), 2);
        assert_eq!(tokens_from_bytes(9), 3);
    }
}
