//! Forwarding an admitted request: the upstream URL from the canonical path, the provider's
//! own request (allowlisted headers and query, the stored key), retries of managed rate
//! limits, and the answer relayed back with only the response headers an app needs.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::admit::Admitted;
use super::record::Context;
use super::stream::{self, Cut, Relay};
use super::{Gateway, Head, OutBody, Outgoing, refusal};
use crate::providers::{self, Endpoint, ProviderApi, ProxyRequest, Refusal, Trouble};

/// Managed connections retry an upstream rate limit this many times, before any byte has
/// gone to the app.
const MAX_RATE_LIMIT_RETRIES: u32 = 2;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);

/// Response headers every provider's answer keeps; the provider adds its own.
const COMMON_RESPONSE_HEADERS: &[&str] = &["content-type", "retry-after", "retry-after-ms"];

impl Gateway {
    /// Sends the request upstream (retrying managed rate limits) and relays the answer.
    pub(super) async fn forward(&self, head: &Head, mut admitted: Admitted) -> Outgoing {
        let api = admitted.gate.api;
        let mut upstream = api.prepare(
            &ProxyRequest {
                method: &head.method,
                path: &admitted.gate.path,
                query: &head.query,
                headers: &head.headers,
                body: &admitted.body.bytes,
            },
            &admitted.info,
            &admitted.gate.route.key,
        );
        if admitted.gate.route.local {
            upstream.headers.extend(emulator_headers(&head.headers));
        }
        let Some(base) = &admitted.gate.route.base_url else {
            return self.upstream_failed(admitted, false).await;
        };
        let url = upstream_url(base, &admitted.gate.path, &upstream.query);
        let method =
            reqwest::Method::from_bytes(head.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let http = self.hub().http();
        let mut attempt = 0;
        let response = loop {
            let mut builder = http
                .request(method.clone(), url.clone())
                .timeout(self.hub().config().upstream_timeout)
                .body(upstream.body.clone());
            for (name, value) in &upstream.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            admitted.trip.note_attempt(admitted.gate.started);
            let response = match builder.send().await {
                Ok(r) => r,
                Err(e) => return self.upstream_failed(admitted, e.is_timeout()).await,
            };
            admitted.trip.request_id = request_id(api, response.headers());
            let status = response.status().as_u16();
            if status == 429 && admitted.gate.route.managed && attempt < MAX_RATE_LIMIT_RETRIES {
                let wait = retry_wait(response.headers(), attempt);
                let headers = response_headers(api, response.headers());
                let body = match self.bounded_body(response).await {
                    Ok(body) => body,
                    Err(out) => return self.upstream_too_large(admitted, out).await,
                };
                if api.classify(status, &body) == Some(Trouble::RateLimitExceeded) {
                    attempt += 1;
                    tracing::info!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "upstream rate limit; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return self.relay_error(admitted, status, headers, body).await;
            }
            break response;
        };
        let status = response.status().as_u16();
        let headers = response_headers(api, response.headers());
        if status >= 400 {
            return match self.bounded_body(response).await {
                Ok(body) => self.relay_error(admitted, status, headers, body).await,
                Err(out) => self.upstream_too_large(admitted, out).await,
            };
        }
        if admitted.info.stream || admitted.info.endpoint == Endpoint::Other {
            return self.relay_stream(
                admitted,
                upstream.hide_stream_usage,
                response,
                status,
                headers,
            );
        }
        let ttfb = admitted.gate.started.elapsed();
        let body = match self.bounded_body(response).await {
            Ok(body) => body,
            Err(BodyFailure::TooLarge) => {
                return self
                    .upstream_too_large(admitted, BodyFailure::TooLarge)
                    .await;
            }
            Err(BodyFailure::Failed { timeout }) => {
                return self.upstream_failed(admitted, timeout).await;
            }
        };
        let metered = api.meter_body(&admitted.info, &body);
        let ctx = Context::new(self.clone(), admitted, status, ttfb).with_response(&body);
        ctx.finish(metered, None).await;
        Outgoing {
            status,
            headers,
            body: OutBody::Full(body),
            refused: None,
        }
    }

    /// A streamed answer (or an unmetered one, passed through as it comes), relayed chunk by
    /// chunk and recorded at its end.
    fn relay_stream(
        &self,
        admitted: Admitted,
        hide_usage: bool,
        response: reqwest::Response,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> Outgoing {
        let api = admitted.gate.api;
        let meter = (admitted.info.endpoint != Endpoint::Other)
            .then(|| api.stream_meter(&admitted.info, hide_usage));
        let mut relay = Relay {
            meter,
            max_event_bytes: self.inner.limits.max_stream_event_bytes,
            oversize_event: api.stream_error_event(
                Refusal::UpstreamConnectionFailed,
                &too_large_message(self.inner.limits.max_stream_event_bytes, "event"),
            ),
            capture: None,
        };
        let ttfb = admitted.gate.started.elapsed();
        let upstream = response.bytes_stream().map(|r| {
            r.map_err(|e| {
                if e.is_timeout() {
                    Cut::Timeout
                } else {
                    Cut::Broken
                }
            })
        });
        let ctx = Context::new(self.clone(), admitted, status, ttfb);
        relay.capture = ctx.keeps_bodies().then_some(crate::hub::BODY_CAP);
        let body = stream::metered(upstream, relay, Box::new(ctx));
        Outgoing {
            status,
            headers,
            body: OutBody::Stream(Box::pin(body)),
            refused: None,
        }
    }

    /// A whole upstream body, up to the configured cap.
    async fn bounded_body(&self, response: reqwest::Response) -> Result<Bytes, BodyFailure> {
        let cap = self.inner.limits.max_upstream_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(BodyFailure::TooLarge);
        }
        let mut body = BytesMut::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| BodyFailure::Failed {
                timeout: e.is_timeout(),
            })?;
            if body.len() + chunk.len() > cap {
                return Err(BodyFailure::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Passes a provider error through unchanged, updates the connection's troubleshooting
    /// state and records the request.
    async fn relay_error(
        &self,
        admitted: Admitted,
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Outgoing {
        let trouble = admitted.gate.api.classify(status, &body);
        let code = trouble
            .map(|t| t.code().to_string())
            .unwrap_or_else(|| format!("http_{status}"));
        if let Some(t) = trouble {
            self.note_trouble(
                &admitted.gate.route,
                t,
                format!("The provider answered HTTP {status} to an app's request."),
            );
        }
        let ttfb = admitted.gate.started.elapsed();
        Context::new(self.clone(), admitted, status, ttfb)
            .with_response(&body)
            .finish(None, Some(code))
            .await;
        let headers = if headers.is_empty() {
            vec![("content-type".to_string(), "application/json".to_string())]
        } else {
            headers
        };
        Outgoing {
            status,
            headers,
            body: OutBody::Full(body),
            refused: None,
        }
    }

    async fn upstream_failed(&self, admitted: Admitted, timeout: bool) -> Outgoing {
        let (why, message) = if timeout {
            (
                Refusal::UpstreamTimeout,
                "Upstream timeout: the provider did not answer in time. Retry; for long reasoning calls raise --upstream-timeout-secs.",
            )
        } else {
            (
                Refusal::UpstreamConnectionFailed,
                "Upstream connection failed: the Hub could not reach the provider. Check the network and the provider base URL, then retry.",
            )
        };
        let p = admitted.gate.provider;
        tracing::warn!(provider = %p, error = %why.as_str(), "upstream call failed");
        self.note_trouble(
            &admitted.gate.route,
            Trouble::ConnectionFailed,
            format!("Connection failed: {message}"),
        );
        let elapsed = admitted.gate.started.elapsed();
        Context::new(self.clone(), admitted, why.status(), elapsed)
            .finish(None, Some(why.as_str().to_string()))
            .await;
        refusal(p, why, message)
    }

    /// The provider's answer is over the cap: the app gets a native error, the record says so.
    async fn upstream_too_large(&self, admitted: Admitted, failure: BodyFailure) -> Outgoing {
        if let BodyFailure::Failed { timeout } = failure {
            return self.upstream_failed(admitted, timeout).await;
        }
        let p = admitted.gate.provider;
        let cap = self.inner.limits.max_upstream_body_bytes;
        tracing::warn!(provider = %p, max_bytes = cap, "upstream answer over the cap");
        let why = Refusal::UpstreamConnectionFailed;
        let elapsed = admitted.gate.started.elapsed();
        Context::new(self.clone(), admitted, why.status(), elapsed)
            .finish(None, Some("upstream_too_large".to_string()))
            .await;
        refusal(p, why, &too_large_message(cap, "answer"))
    }
}

/// Why a whole upstream body could not be had.
pub(super) enum BodyFailure {
    TooLarge,
    Failed { timeout: bool },
}

fn too_large_message(cap: usize, what: &str) -> String {
    let flag = if what == "event" {
        "--max-stream-event-mib"
    } else {
        "--max-upstream-body-mib"
    };
    format!(
        "Upstream answer too large: the provider's {what} is over {} MiB, more than the Hub takes. Ask for less, or raise {flag}.",
        cap / (1024 * 1024)
    )
}

/// The emulator's own request headers (fault injection), kept only for calls to an upstream
/// on this machine.
fn emulator_headers(headers: &[(String, String)]) -> impl Iterator<Item = (String, String)> + '_ {
    headers
        .iter()
        .filter(|(name, _)| name.starts_with(EMULATOR_HEADER_PREFIX))
        .cloned()
}

const EMULATOR_HEADER_PREFIX: &str = "x-emulator-";

/// The provider root, the canonical path and the allowlisted query: nothing a client library
/// could re-normalise, since the path has no dot segments or encoded separators. Built from
/// the route's parsed root, so its scheme and host are not parsed again for every call.
fn upstream_url(base: &reqwest::Url, path: &str, query: &str) -> reqwest::Url {
    let mut url = base.clone();
    let mut full = String::with_capacity(base.path().len() + path.len());
    full.push_str(base.path().trim_end_matches('/'));
    full.push_str(path);
    url.set_path(&full);
    url.set_query((!query.is_empty()).then_some(query));
    url
}

/// The wait before retrying an upstream 429: its `retry-after`, else a short backoff.
fn retry_wait(headers: &reqwest::header::HeaderMap, attempt: u32) -> Duration {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let from_ms = header("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| ms / 1000.0);
    let from_s = header("retry-after").and_then(|v| v.parse::<f64>().ok());
    match from_ms.or(from_s) {
        Some(secs) if secs >= 0.0 => Duration::from_secs_f64(secs).min(MAX_RETRY_WAIT),
        _ => Duration::from_millis(500 * (1 << attempt)),
    }
}

/// The provider's id for the call, when it sends one.
fn request_id(api: &dyn ProviderApi, headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(api.request_id_header()?)?;
    Some(value.to_str().ok()?.to_string())
}

/// The response headers an app gets: the common ones and the provider's request ids and
/// rate limits. Never cookies, CORS, redirects or hop-by-hop headers.
fn response_headers(
    api: &dyn ProviderApi,
    headers: &reqwest::header::HeaderMap,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            providers::header_allowed(COMMON_RESPONSE_HEADERS, name)
                || providers::header_allowed(api.returned_response_headers(), name)
        })
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::providers::Provider;

    #[test]
    fn only_the_headers_an_app_needs_come_back() {
        let mut upstream = reqwest::header::HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("x-request-id", "req_1"),
            ("x-ratelimit-remaining-requests", "99"),
            ("anthropic-ratelimit-tokens-remaining", "5"),
            ("retry-after", "1"),
            ("set-cookie", "session=upstream"),
            ("access-control-allow-origin", "*"),
            ("location", "https://elsewhere.example"),
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("openai-organization", "org-secret"),
        ] {
            upstream.insert(
                reqwest::header::HeaderName::from_static(name),
                value.parse().unwrap(),
            );
        }
        let names = |p: Provider| -> Vec<String> {
            response_headers(providers::api(p), &upstream)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(
            names(Provider::OpenAi),
            [
                "content-type",
                "x-request-id",
                "x-ratelimit-remaining-requests",
                "retry-after"
            ]
        );
        assert_eq!(
            names(Provider::Anthropic),
            [
                "content-type",
                "anthropic-ratelimit-tokens-remaining",
                "retry-after"
            ]
        );
    }

    #[test]
    fn the_upstream_url_is_the_base_and_the_canonical_path() {
        let cases = [
            (
                "http://127.0.0.1:9",
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                "alt=sse",
            ),
            ("http://127.0.0.1:9/", "/v1/chat/completions", ""),
            (
                "https://api.example.test/proxy/openai",
                "/v1/models/gpt-4o-mini",
                "",
            ),
            (
                "http://localhost:8080/emulator/anthropic/",
                "/v1/messages",
                "beta=true",
            ),
        ];
        for (base, path, query) in cases {
            let url = upstream_url(&reqwest::Url::parse(base).unwrap(), path, query);
            let mut text = format!("{}{path}", base.trim_end_matches('/'));
            if !query.is_empty() {
                text = format!("{text}?{query}");
            }
            assert_eq!(
                url.as_str(),
                text,
                "the root, the path and the query as given"
            );
            assert_eq!(
                reqwest::Url::parse(&text).unwrap(),
                url,
                "the same URL a parser would make of the text"
            );
        }
    }
}
