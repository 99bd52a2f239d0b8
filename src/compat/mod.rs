//! The compatible surface (`/v1`): OpenAI's Chat Completions, Models and Embeddings for every
//! provider's models. A request is translated into the target provider's native request, sent
//! through the gateway's one front door (so limits, credits and metering are the native ones,
//! on the native bytes), and the native answer is translated back, streams chunk by chunk.

mod anthropic;
mod error;
mod gemini;
mod request;
mod stream;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::gateway::{Caller, Gateway, Head, OutBody, Outgoing};
use crate::ledger::Surface;
use crate::providers::{Provider, Refusal};
pub use error::openai_error;
use request::Invalid;

/// What the web layer knows of an app's call before the compatible surface reads it.
pub struct Call {
    /// `(lowercase name, value)` pairs as received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A model named on the compatible surface, resolved to the provider that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    /// The name sent to the provider.
    pub native: String,
    /// The catalog's largest output for the model, when the catalog knows it.
    pub max_output_tokens: Option<u64>,
}

/// Resolves `provider/model` (any model, even one the catalog does not know) or a bare catalog
/// id or alias.
pub fn resolve_model(catalog: &Catalog, name: &str) -> Result<Target, String> {
    let name = name.trim();
    if let Some((prefix, rest)) = name.split_once('/')
        && let Ok(provider) = prefix.parse::<Provider>()
        && !rest.is_empty()
    {
        return Ok(Target {
            provider,
            native: rest.to_string(),
            max_output_tokens: catalog.resolve(provider, rest).map(|m| m.max_output_tokens),
        });
    }
    Provider::ALL
        .iter()
        .find_map(|&p| catalog.resolve(p, name))
        .map(|m| Target {
            provider: m.provider,
            native: name.to_string(),
            max_output_tokens: Some(m.max_output_tokens),
        })
        .ok_or_else(|| {
            format!(
                "Model not available: the Hub's catalog has no model named {name:?}. Use an id from GET /v1/models, or name it as provider/model (openai/…, anthropic/…, gemini/…) to reach a model outside the catalog on a connection with your own key."
            )
        })
}

/// `POST /v1/chat/completions`.
pub async fn chat(gateway: &Gateway, catalog: &Catalog, call: Call) -> Outgoing {
    let (parsed, target, asked) = match read_call(catalog, &call.body) {
        Ok(read) => read,
        Err(out) => return out,
    };
    let native = match target.provider {
        Provider::OpenAi => openai_request(&target, parsed),
        Provider::Anthropic => anthropic::request(&target, &parsed),
        Provider::Gemini => gemini::request(&target, &parsed),
    };
    let native = match native {
        Ok(n) => n,
        Err(bad) => return bad.outgoing(),
    };
    let streamed = native.stream;
    let include_usage = native.include_usage;
    let head = head(target.provider, &native.path, &native.query, &call.headers);
    let out = send(gateway, head, native.body).await;
    match target.provider {
        Provider::OpenAi => out,
        Provider::Anthropic => anthropic::response(out, &asked, streamed, include_usage),
        Provider::Gemini => gemini::response(out, &asked, streamed, include_usage),
    }
}

/// `POST /v1/embeddings`: OpenAI's models natively, Gemini's through batchEmbedContents.
pub async fn embeddings(gateway: &Gateway, catalog: &Catalog, call: Call) -> Outgoing {
    let (parsed, target, asked) = match read_call(catalog, &call.body) {
        Ok(read) => read,
        Err(out) => return out,
    };
    match target.provider {
        Provider::OpenAi => {
            let native = match openai_request(&target, parsed) {
                Ok(n) => n,
                Err(bad) => return bad.outgoing(),
            };
            let head = head(Provider::OpenAi, "/v1/embeddings", "", &call.headers);
            send(gateway, head, native.body).await
        }
        Provider::Gemini => {
            let (path, body) = match gemini::embed_request(&target, &parsed) {
                Ok(n) => n,
                Err(bad) => return bad.outgoing(),
            };
            let head = head(Provider::Gemini, &path, "", &call.headers);
            let len = body.len();
            let encoding = gemini::Encoding::of(&parsed);
            gemini::embed_response(send(gateway, head, body).await, &asked, len, encoding)
        }
        Provider::Anthropic => openai_error(
            404,
            Refusal::ModelNotAvailable.as_str(),
            "Model not available: Anthropic has no embedding models. Use an OpenAI or Gemini embedding model (GET /v1/models lists them).",
            None,
        ),
    }
}

/// `GET /v1/models`: every catalog model of the providers this app has a binding for.
pub async fn models(
    gateway: &Gateway,
    catalog: &Catalog,
    headers: &[(String, String)],
) -> Outgoing {
    let providers = match gateway.app_providers(headers).await {
        Ok(p) => p,
        Err(refused) => return to_openai_error(Provider::OpenAi, refused),
    };
    let data: Vec<Value> = catalog
        .all()
        .iter()
        .filter(|m| providers.contains(&m.provider))
        .map(|m| model_object(&m.id, m.provider))
        .collect();
    json_outgoing(200, &json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`: one model this app reaches, by any name `/v1` accepts.
pub async fn model(
    gateway: &Gateway,
    catalog: &Catalog,
    headers: &[(String, String)],
    id: &str,
) -> Outgoing {
    let providers = match gateway.app_providers(headers).await {
        Ok(p) => p,
        Err(refused) => return to_openai_error(Provider::OpenAi, refused),
    };
    match resolve_model(catalog, id) {
        Ok(t) if providers.contains(&t.provider) => {
            json_outgoing(200, &model_object(id, t.provider))
        }
        Ok(t) => openai_error(
            404,
            Refusal::ModelNotAvailable.as_str(),
            &format!(
                "Model not available: this app has no {} connection. Bind one on the Apps page.",
                t.provider.display_name()
            ),
            None,
        ),
        Err(msg) => openai_error(404, Refusal::ModelNotAvailable.as_str(), &msg, None),
    }
}

fn model_object(id: &str, provider: Provider) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": provider.as_str()})
}

/// Any other path under `/v1`.
pub fn not_found(path: &str) -> Outgoing {
    openai_error(
        404,
        Refusal::EndpointNotSupported.as_str(),
        &format!(
            "Endpoint not supported: the compatible surface has POST /v1/chat/completions, GET /v1/models and POST /v1/embeddings, not {path}. Other OpenAI endpoints are at /openai/v1."
        ),
        None,
    )
}

/// A request translated into one provider's native API.
#[derive(Debug)]
pub(crate) struct Native {
    pub path: String,
    pub query: String,
    pub body: Bytes,
    pub stream: bool,
    pub include_usage: bool,
}

fn parse_body(body: &[u8]) -> Result<Value, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::new(format!("the body is not JSON ({e})")))?;
    if !value.is_object() {
        return Err(Invalid::new("the body must be a JSON object"));
    }
    Ok(value)
}

/// The body, the model it names resolved, and that name as the app wrote it.
fn read_call(catalog: &Catalog, body: &[u8]) -> Result<(Value, Target, String), Outgoing> {
    let parsed = parse_body(body).map_err(|bad| bad.outgoing())?;
    let target = model_of(catalog, &parsed)?;
    let asked = parsed["model"].as_str().unwrap_or_default().to_string();
    Ok((parsed, target, asked))
}

fn model_of(catalog: &Catalog, body: &Value) -> Result<Target, Outgoing> {
    let Some(name) = body["model"].as_str() else {
        return Err(Invalid::param("model", "the body names no model").outgoing());
    };
    resolve_model(catalog, name)
        .map_err(|msg| openai_error(404, Refusal::ModelNotAvailable.as_str(), &msg, None))
}

/// OpenAI's own models go through unchanged but for the model name.
fn openai_request(target: &Target, mut body: Value) -> Result<Native, Invalid> {
    body["model"] = Value::from(target.native.as_str());
    Ok(Native {
        path: "/v1/chat/completions".into(),
        query: String::new(),
        body: Bytes::from(body.to_string()),
        stream: false,
        include_usage: false,
    })
}

/// The native head for `provider`, carrying the app key as a bearer token.
fn head(provider: Provider, path: &str, query: &str, app_headers: &[(String, String)]) -> Head {
    let mut headers: Vec<(String, String)> = app_headers
        .iter()
        .filter(|(n, _)| carried(provider, n))
        .cloned()
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    if provider == Provider::Anthropic {
        headers.push(("anthropic-version".into(), anthropic::API_VERSION.into()));
    }
    Head {
        provider,
        method: "POST".into(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        content_length: None,
        surface: Surface::Compatible,
    }
}

/// The app's headers a translated call keeps: the key, the client's name and the emulator's
/// fault switches; an OpenAI call keeps all but the body's own (the gateway's allowlist
/// still applies).
fn carried(provider: Provider, name: &str) -> bool {
    if name == "content-length" || name == "content-type" {
        return false;
    }
    provider == Provider::OpenAi
        || name == "authorization"
        || name == "user-agent"
        || name.starts_with("x-emulator-")
}

async fn send(gateway: &Gateway, mut head: Head, body: Bytes) -> Outgoing {
    head.content_length = Some(body.len() as u64);
    let chunk = futures_util::stream::iter([Ok::<_, std::io::Error>(body)]);
    gateway.handle(head, chunk, Caller::App).await
}

/// A native error answer in OpenAI's shape, keeping the status (overloaded → 503), the
/// message, the stable code and `retry-after`.
fn to_openai_error(provider: Provider, out: Outgoing) -> Outgoing {
    let retry_after = error::header(&out.headers, "retry-after");
    let body = match out.body {
        OutBody::Full(bytes) => bytes,
        OutBody::Stream(_) => Bytes::new(),
    };
    let native = error::read_native(provider, out.status, &body);
    let retry_after = retry_after.or(native.retry_after);
    openai_error(
        error::openai_status(out.status),
        &native.code,
        &native.message,
        retry_after.as_deref(),
    )
}

/// A native answer in OpenAI's dialect: errors mapped, a stream wrapped chunk by chunk, a
/// whole body translated by `whole`.
fn translated(
    out: Outgoing,
    provider: Provider,
    streamed: bool,
    translator: impl FnOnce() -> Box<dyn stream::Translator>,
    whole: impl FnOnce(&Value) -> Value,
) -> Outgoing {
    if !(200..300).contains(&out.status) {
        return to_openai_error(provider, out);
    }
    match out.body {
        OutBody::Stream(body) if streamed => Outgoing {
            status: out.status,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            body: OutBody::Stream(stream::translate(body, translator())),
            refused: None,
        },
        OutBody::Full(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => json_outgoing(out.status, &whole(&v)),
            Err(e) => unreadable(&format!("The provider's answer was not JSON ({e}).")),
        },
        OutBody::Stream(_) => unreadable("The provider streamed an answer that was not asked for."),
    }
}

/// An answer's message: `content` is null when the turn is only tool calls.
fn message(text: String, reasoning: String, calls: Vec<Value>) -> Value {
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::from(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// OpenAI's usage object: `prompt` includes the cached and cache-write tokens, `completion`
/// the reasoning tokens.
fn usage(prompt: u64, cached: u64, cache_write: u64, completion: u64, reasoning: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    })
}

fn unreadable(message: &str) -> Outgoing {
    openai_error(502, "upstream_unreadable", message, None)
}

fn json_outgoing(status: u16, value: &Value) -> Outgoing {
    Outgoing {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: OutBody::Full(Bytes::from(value.to_string())),
        refused: None,
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn catalog() -> &'static Catalog {
        Catalog::embedded()
    }

    #[test]
    fn bare_catalog_names_find_their_provider() {
        let t = resolve_model(catalog(), "claude-sonnet-4-5").unwrap();
        assert_eq!(t.provider, Provider::Anthropic);
        assert_eq!(t.native, "claude-sonnet-4-5");
        assert!(t.max_output_tokens.unwrap() > 0);
        assert_eq!(
            resolve_model(catalog(), "gemini-2.5-flash")
                .unwrap()
                .provider,
            Provider::Gemini
        );
        assert_eq!(
            resolve_model(catalog(), "gpt-4o-mini").unwrap().provider,
            Provider::OpenAi
        );
    }

    #[test]
    fn provider_prefix_reaches_models_outside_the_catalog() {
        let t = resolve_model(catalog(), "anthropic/claude-future-9").unwrap();
        assert_eq!(t.provider, Provider::Anthropic);
        assert_eq!(t.native, "claude-future-9");
        assert_eq!(t.max_output_tokens, None);
        let g = resolve_model(catalog(), "gemini/gemini-2.5-flash").unwrap();
        assert_eq!(
            (g.provider, g.native.as_str()),
            (Provider::Gemini, "gemini-2.5-flash")
        );
    }

    #[test]
    fn unknown_bare_names_say_how_to_name_a_model() {
        let msg = resolve_model(catalog(), "mystery-model").unwrap_err();
        assert!(msg.contains("provider/model"), "{msg}");
        assert!(resolve_model(catalog(), "nobody/x").is_err());
    }
}
