//! OpenAI Chat Completions and Embeddings ⇄ Gemini generateContent and batchEmbedContents:
//! the request, the whole answer, the event stream and the usage in OpenAI's terms.

use bytes::Bytes;
use serde_json::{Value, json};

use super::request::{self, Chat, Format, Image, Invalid, Part, ToolChoice, Turn};
use super::stream::{Chunks, Translator, uuid_like};
use super::{Native, Target, error, to_openai_error};
use crate::gateway::{OutBody, Outgoing};
use crate::providers::Provider;

pub(super) fn request(target: &Target, body: &Value) -> Result<Native, Invalid> {
    let chat = request::read(body)?;
    if chat.parallel_tool_calls == Some(false) {
        return Err(Invalid::unsupported("parallel_tool_calls", "Gemini"));
    }
    let names = request::call_names(&chat.turns);
    let mut out = json!({"contents": contents(&chat.turns, &names)?});
    if !chat.system.is_empty() {
        out["systemInstruction"] = json!({"parts": [{"text": chat.system.join("\n\n")}]});
    }
    let config = generation_config(&chat)?;
    if config.as_object().is_some_and(|c| !c.is_empty()) {
        out["generationConfig"] = config;
    }
    if !chat.tools.is_empty() {
        out["tools"] = json!([{"functionDeclarations": declarations(&chat)}]);
    }
    if let Some(c) = tool_config(&chat.tool_choice) {
        out["toolConfig"] = c;
    }
    let (method, query) = if chat.stream {
        ("streamGenerateContent", "alt=sse")
    } else {
        ("generateContent", "")
    };
    Ok(Native {
        path: format!("/v1beta/models/{}:{method}", target.native),
        query: query.into(),
        body: Bytes::from(out.to_string()),
        stream: chat.stream,
        include_usage: chat.include_usage,
    })
}

/// Turns as Gemini contents: `assistant` → `model`, tool results one user content of
/// `functionResponse` parts (named from the matching call), same-role turns merged.
fn contents(turns: &[Turn], names: &[(String, String)]) -> Result<Value, Invalid> {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for turn in turns {
        let (role, parts) = match turn {
            Turn::User(parts) => (
                "user",
                parts
                    .iter()
                    .map(user_part)
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .collect(),
            ),
            Turn::Assistant { text, calls, .. } => {
                let mut parts = Vec::new();
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                parts.extend(
                    calls
                        .iter()
                        .map(|c| json!({"functionCall": {"name": c.name, "args": c.arguments}})),
                );
                ("model", parts)
            }
            Turn::Tool { call_id, content } => {
                let name = names
                    .iter()
                    .find(|(id, _)| id == call_id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| {
                        Invalid::param(
                            "tool_call_id",
                            format!(
                                "{call_id:?} matches no tool call of an earlier assistant message"
                            ),
                        )
                    })?;
                let response = match serde_json::from_str::<Value>(content) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": content}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        if parts.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => out.push((role, parts)),
        }
    }
    Ok(Value::Array(
        out.into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect(),
    ))
}

fn user_part(part: &Part) -> Result<Option<Value>, Invalid> {
    match part {
        Part::Text(t) if t.is_empty() => Ok(None),
        Part::Text(t) => Ok(Some(json!({"text": t}))),
        Part::Image(Image::Data { media_type, data }) => Ok(Some(
            json!({"inlineData": {"mimeType": media_type, "data": data}}),
        )),
        Part::Image(Image::Url(_)) => Err(Invalid::param(
            "image_url.url",
            "Gemini models do not fetch images from URLs; send the image as a base64 data URL",
        )),
    }
}

fn generation_config(chat: &Chat) -> Result<Value, Invalid> {
    let mut c = json!({});
    if let Some(m) = chat.max_tokens {
        c["maxOutputTokens"] = json!(m);
    }
    if let Some(t) = chat.temperature {
        c["temperature"] = json!(t);
    }
    if let Some(p) = chat.top_p {
        c["topP"] = json!(p);
    }
    if !chat.stop.is_empty() {
        c["stopSequences"] = json!(chat.stop);
    }
    if let Some(n) = chat.n.filter(|n| *n != 1) {
        c["candidateCount"] = json!(n);
    }
    if let Some(s) = chat.seed {
        c["seed"] = json!(s);
    }
    if let Some(p) = chat.presence_penalty {
        c["presencePenalty"] = json!(p);
    }
    if let Some(p) = chat.frequency_penalty {
        c["frequencyPenalty"] = json!(p);
    }
    match &chat.format {
        Format::Text => {}
        Format::JsonObject => c["responseMimeType"] = json!("application/json"),
        Format::JsonSchema(schema) => {
            c["responseMimeType"] = json!("application/json");
            c["responseJsonSchema"] = schema.clone();
        }
    }
    if let Some(budget) = thinking_budget(chat.reasoning_effort.as_deref())? {
        c["thinkingConfig"] = json!({"thinkingBudget": budget, "includeThoughts": budget != 0});
    }
    Ok(c)
}

/// Gemini's own OpenAI-compatible convention: none → 0, low/medium/high → 1024/8192/24576.
fn thinking_budget(effort: Option<&str>) -> Result<Option<u64>, Invalid> {
    Ok(Some(match effort {
        None => return Ok(None),
        Some("none") => 0,
        Some("minimal" | "low") => 1024,
        Some("medium") => 8192,
        Some("high") => 24576,
        Some(_) => {
            return Err(Invalid::param(
                "reasoning_effort",
                "must be none, minimal, low, medium or high",
            ));
        }
    }))
}

fn declarations(chat: &Chat) -> Value {
    Value::Array(
        chat.tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                if let Some(p) = &t.parameters {
                    d["parametersJsonSchema"] = p.clone();
                }
                d
            })
            .collect(),
    )
}

fn tool_config(choice: &ToolChoice) -> Option<Value> {
    let config = match choice {
        ToolChoice::Unset => return None,
        ToolChoice::Auto => json!({"mode": "AUTO"}),
        ToolChoice::None => json!({"mode": "NONE"}),
        ToolChoice::Required => json!({"mode": "ANY"}),
        ToolChoice::Named(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
    };
    Some(json!({"functionCallingConfig": config}))
}

pub(super) fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's usage in OpenAI's terms: the cached count is already inside the prompt count;
/// thinking is added to the completion as OpenAI counts reasoning.
pub(super) fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount") + thoughts;
    super::usage(
        prompt,
        n("cachedContentTokenCount"),
        0,
        completion,
        thoughts,
    )
}

pub(super) fn response(
    out: Outgoing,
    model: &str,
    streamed: bool,
    include_usage: bool,
) -> Outgoing {
    super::translated(
        out,
        Provider::Gemini,
        streamed,
        || Box::new(Stream::new(model, include_usage)),
        |v| completion(v, model),
    )
}

/// One candidate's parts: visible text, thought summaries, and function calls (with ids
/// made up where Gemini gives none).
struct Read {
    text: String,
    reasoning: String,
    calls: Vec<Value>,
}

fn read_parts(parts: &Value) -> Read {
    let mut r = Read {
        text: String::new(),
        reasoning: String::new(),
        calls: Vec::new(),
    };
    for p in parts.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        if let Some(call) = p.get("functionCall") {
            let id = call["id"]
                .as_str()
                .map_or_else(|| format!("call_{}", uuid_like()), str::to_string);
            r.calls.push(json!({"id": id, "type": "function", "function": {"name": call["name"], "arguments": call["args"].to_string()}}));
        } else if let Some(t) = p["text"].as_str() {
            if p["thought"] == true {
                r.reasoning.push_str(t);
            } else {
                r.text.push_str(t);
            }
        }
    }
    r
}

fn completion(v: &Value, model: &str) -> Value {
    let candidates = v["candidates"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut choices: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let r = read_parts(&c["content"]["parts"]);
            let finish = finish_reason(c["finishReason"].as_str().unwrap_or("STOP"), !r.calls.is_empty());
            let message = super::message(r.text, r.reasoning, r.calls);
            json!({"index": c["index"].as_u64().unwrap_or(i as u64), "message": message, "logprobs": null, "finish_reason": finish})
        })
        .collect();
    if choices.is_empty() {
        // A blocked prompt has no candidates, only promptFeedback.blockReason.
        choices.push(json!({"index": 0, "message": {"role": "assistant", "content": null, "refusal": null}, "logprobs": null, "finish_reason": "content_filter"}));
    }
    json!({
        "id": format!("chatcmpl-{}", v["responseId"].as_str().map_or_else(uuid_like, str::to_string)),
        "object": "chat.completion",
        "created": super::now_secs(),
        "model": model,
        "choices": choices,
        "usage": usage(&v["usageMetadata"]),
    })
}

/// Gemini's chunks → OpenAI chunks. Each chunk carries whole parts; function calls arrive
/// whole, so each becomes one fragment with its full arguments.
struct Stream {
    chunks: Chunks,
    /// Per candidate index: whether its role chunk went out, its tool calls so far, its finish.
    seen: Vec<(u64, u64, Option<String>)>,
    usage: Value,
    failed: bool,
}

impl Stream {
    fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            chunks: Chunks::new(model, include_usage),
            seen: Vec::new(),
            usage: json!({}),
            failed: false,
        }
    }

    fn candidate(&mut self, c: &Value, fallback_index: u64, out: &mut Vec<u8>) {
        let index = c["index"].as_u64().unwrap_or(fallback_index);
        let slot = match self.seen.iter().position(|(i, _, _)| *i == index) {
            Some(s) => s,
            None => {
                self.seen.push((index, 0, None));
                self.chunks.delta(
                    out,
                    index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                );
                self.seen.len() - 1
            }
        };
        let r = read_parts(&c["content"]["parts"]);
        if !r.reasoning.is_empty() {
            self.chunks
                .delta(out, index, json!({"reasoning_content": r.reasoning}), None);
        }
        if !r.text.is_empty() {
            self.chunks
                .delta(out, index, json!({"content": r.text}), None);
        }
        for mut call in r.calls {
            call["index"] = json!(self.seen[slot].1);
            self.seen[slot].1 += 1;
            self.chunks
                .delta(out, index, json!({"tool_calls": [call]}), None);
        }
        if let Some(f) = c["finishReason"].as_str() {
            self.seen[slot].2 = Some(f.to_string());
        }
    }
}

impl Translator for Stream {
    fn event(&mut self, _name: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if let Some(e) = v.get("error") {
            let native = error::read_native(
                Provider::Gemini,
                500,
                &Bytes::from(json!({"error": e}).to_string()),
            );
            out.extend(error::stream_error(&native.code, &native.message));
            self.failed = true;
            return;
        }
        if v.get("usageMetadata").is_some_and(|u| !u.is_null()) {
            self.usage = v["usageMetadata"].clone();
        }
        let candidates = v["candidates"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for (i, c) in candidates.iter().enumerate() {
            self.candidate(c, i as u64, out);
        }
        if candidates.is_empty() && v["promptFeedback"].get("blockReason").is_some() {
            self.seen.push((0, 0, Some("SAFETY".into())));
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if self.seen.is_empty() || self.seen.iter().any(|(_, _, f)| f.is_none()) {
            out.extend(error::stream_error(
                "upstream_stream_cut",
                "The provider's stream ended before the answer finished. Retry the request.",
            ));
            return;
        }
        for (index, calls, finish) in &self.seen {
            let reason = finish_reason(finish.as_deref().unwrap_or("STOP"), *calls > 0);
            self.chunks.delta(out, *index, json!({}), Some(reason));
        }
        self.chunks.close(out, usage(&self.usage));
    }
}

/// `POST /v1/embeddings` for a Gemini model: the native path and body.
pub(super) fn embed_request(target: &Target, body: &Value) -> Result<(String, Bytes), Invalid> {
    if let Some(f) = body["encoding_format"]
        .as_str()
        .filter(|f| *f != "float" && *f != "base64")
    {
        return Err(Invalid::param(
            "encoding_format",
            format!("{f} is not an encoding; use float or base64"),
        ));
    }
    if let Some((k, _)) = body.as_object().and_then(|o| {
        o.iter().find(|(k, v)| {
            !v.is_null()
                && !["model", "input", "encoding_format", "dimensions", "user"]
                    .contains(&k.as_str())
        })
    }) {
        return Err(Invalid::param(
            k.as_str(),
            "is not supported for Gemini embedding models",
        ));
    }
    let inputs: Vec<&str> = match &body["input"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    Invalid::param(
                        "input",
                        "must be a string or a list of strings for Gemini models",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(Invalid::param(
                "input",
                "must be a string or a list of strings",
            ));
        }
    };
    let model = format!("models/{}", target.native);
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if let Some(d) = body["dimensions"].as_u64() {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    let native = json!({"requests": requests}).to_string();
    Ok((
        format!("/v1beta/{model}:batchEmbedContents"),
        Bytes::from(native),
    ))
}

/// How the app asked for the vectors: JSON numbers, or base64 of little-endian `f32`s (what
/// the openai SDK asks for by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Float,
    Base64,
}

impl Encoding {
    pub(super) fn of(body: &Value) -> Encoding {
        if body["encoding_format"] == "base64" {
            Encoding::Base64
        } else {
            Encoding::Float
        }
    }

    fn encode(self, values: &Value) -> Value {
        match self {
            Encoding::Float => values.clone(),
            Encoding::Base64 => {
                use base64::Engine;
                let bytes: Vec<u8> = values
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .flat_map(|x| (x.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
                    .collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

pub(super) fn embed_response(
    out: Outgoing,
    model: &str,
    native_len: usize,
    encoding: Encoding,
) -> Outgoing {
    if !(200..300).contains(&out.status) {
        return to_openai_error(Provider::Gemini, out);
    }
    let OutBody::Full(bytes) = &out.body else {
        return error::openai_error(
            502,
            "upstream_unreadable",
            "The provider streamed an embedding.",
            None,
        );
    };
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return error::openai_error(
            502,
            "upstream_unreadable",
            "The provider's answer was not JSON.",
            None,
        );
    };
    let data: Vec<Value> = v["embeddings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": encoding.encode(&e["values"])}))
        .collect();
    // Gemini reports no usage for embeddings; the gateway bills its estimate of the request
    // (one token per 4 bytes), and the app is told the same number.
    let tokens = (native_len as u64).div_ceil(4);
    super::json_outgoing(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::compat::stream::tests::{json_chunks, run};

    fn target() -> Target {
        Target {
            provider: Provider::Gemini,
            native: "gemini-2.5-flash".into(),
            max_output_tokens: Some(65536),
        }
    }

    fn native(body: Value) -> (Native, Value) {
        let n = request(&target(), &body).unwrap();
        let v = serde_json::from_slice(&n.body).unwrap();
        (n, v)
    }

    #[test]
    fn the_request_maps_field_by_field() {
        let (n, v) = native(
            json!({"model": "gemini-2.5-flash", "stream": true, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
            {"role": "assistant", "content": "a cat"},
            {"role": "user", "content": "sure?"}],
            "max_completion_tokens": 50, "temperature": 1.5, "top_p": 0.8, "stop": ["X"], "n": 2, "seed": 7,
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
            "reasoning_effort": "medium"}),
        );
        assert_eq!(
            n.path,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        );
        assert_eq!(n.query, "alt=sse");
        assert_eq!(
            v["systemInstruction"],
            json!({"parts": [{"text": "be brief"}]})
        );
        assert_eq!(
            v["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}})
        );
        assert_eq!(
            v["contents"][1],
            json!({"role": "model", "parts": [{"text": "a cat"}]})
        );
        let c = &v["generationConfig"];
        assert_eq!(c["maxOutputTokens"], 50);
        assert_eq!(c["temperature"], 1.5);
        assert_eq!(c["topP"], 0.8);
        assert_eq!(c["stopSequences"], json!(["X"]));
        assert_eq!(c["candidateCount"], 2);
        assert_eq!(c["seed"], 7);
        assert_eq!(c["responseMimeType"], "application/json");
        assert_eq!(c["responseJsonSchema"], json!({"type": "object"}));
        assert_eq!(
            c["thinkingConfig"],
            json!({"thinkingBudget": 8192, "includeThoughts": true})
        );
    }

    #[test]
    fn tool_results_are_named_from_their_call() {
        let (_, v) = native(json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\":4}"},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}));
        assert_eq!(
            v["contents"][1]["parts"][0],
            json!({"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}})
        );
        assert_eq!(
            v["contents"][2]["parts"],
            json!([
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 4}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}}])
        );
        assert_eq!(
            v["tools"],
            json!([{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {"type": "object"}}]}])
        );
        assert_eq!(
            v["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
    }

    #[test]
    fn what_gemini_cannot_honour_is_refused_by_name() {
        let e = request(
            &target(),
            &json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("image_url.url"));
        let e = request(&target(), &json!({"model": "m", "parallel_tool_calls": false, "messages": [{"role": "user", "content": "x"}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("parallel_tool_calls"));
        let e = request(&target(), &json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_call_id"));
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", false), "length");
        assert_eq!(finish_reason("SAFETY", false), "content_filter");
        assert_eq!(finish_reason("OTHER", false), "stop");
    }

    #[test]
    fn usage_adds_thinking_to_completion_and_never_cached_twice() {
        let u = usage(
            &json!({"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 10, "thoughtsTokenCount": 5, "totalTokenCount": 115}),
        );
        assert_eq!(u["prompt_tokens"], 100);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 60);
        assert_eq!(u["completion_tokens"], 15);
        assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 5);
        assert_eq!(u["total_tokens"], 115);
    }

    #[test]
    fn a_whole_answer_with_calls_translates() {
        let c = completion(
            &json!({"candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}}),
            "gemini-2.5-flash",
        );
        let m = &c["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(m["reasoning_content"], "thinking...");
        assert_eq!(
            m["tool_calls"][0]["function"],
            json!({"name": "f", "arguments": "{\"a\":1}"})
        );
        assert!(
            m["tool_calls"][0]["id"]
                .as_str()
                .unwrap()
                .starts_with("call_")
        );
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        let blocked = completion(&json!({"promptFeedback": {"blockReason": "SAFETY"}}), "m");
        assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
    }

    const STREAM: &[u8] = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1,\"totalTokenCount\":8}}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"},{\"functionCall\":{\"name\":\"f\",\"args\":{\"x\":1},\"id\":\"fc1\"}}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":9,\"thoughtsTokenCount\":2,\"totalTokenCount\":18}}\r\n\r\n";

    #[test]
    fn a_stream_becomes_openai_chunks_with_the_last_usage() {
        let data = run(
            Box::new(Stream::new("gemini-2.5-flash", true)),
            vec![Ok(&STREAM[..100]), Ok(&STREAM[100..])],
        );
        assert_eq!(data.last().unwrap(), "[DONE]");
        let c = json_chunks(&data);
        assert_eq!(
            c[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(c[1]["choices"][0]["delta"], json!({"content": "Hel"}));
        assert_eq!(c[2]["choices"][0]["delta"], json!({"content": "lo"}));
        assert_eq!(
            c[3]["choices"][0]["delta"]["tool_calls"][0],
            json!({"id": "fc1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}, "index": 0})
        );
        assert_eq!(c[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            c[5]["usage"]["prompt_tokens"], 7,
            "the last running total, not a sum"
        );
        assert_eq!(c[5]["usage"]["completion_tokens"], 11);
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn a_cut_or_failed_stream_ends_with_an_error() {
        let data = run(Box::new(Stream::new("m", false)), vec![Ok(&STREAM[..150])]);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_stream_cut");
        let failing: &[u8] =
            b"data: {\"error\":{\"code\":503,\"message\":\"busy\",\"status\":\"UNAVAILABLE\"}}\n\n";
        let data = run(Box::new(Stream::new("m", false)), vec![Ok(failing)]);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "unavailable");
        assert_eq!(last["error"]["message"], "busy");
    }

    #[test]
    fn embeddings_translate_both_ways() {
        let t = Target {
            provider: Provider::Gemini,
            native: "gemini-embedding-001".into(),
            max_output_tokens: None,
        };
        let (path, body) = embed_request(
            &t,
            &json!({"model": "gemini-embedding-001", "input": ["a", "b"], "dimensions": 8}),
        )
        .unwrap();
        assert_eq!(
            path,
            "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["requests"][1],
            json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8})
        );
        assert!(
            embed_request(
                &t,
                &json!({"model": "m", "input": "a", "encoding_format": "hex"})
            )
            .is_err()
        );
        let out = Outgoing {
            status: 200,
            headers: vec![],
            body: OutBody::Full(Bytes::from_static(
                b"{\"embeddings\":[{\"values\":[0.5]},{\"values\":[0.25]}]}",
            )),
            refused: None,
        };
        let OutBody::Full(b) =
            embed_response(out, "gemini-embedding-001", 10, Encoding::Float).body
        else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v["data"][1],
            json!({"object": "embedding", "index": 1, "embedding": [0.25]})
        );
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let b64 = Encoding::Base64.encode(&json!([0.5, -1.0]));
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert_eq!(
            bytes,
            [0.5f32.to_le_bytes(), (-1.0f32).to_le_bytes()].concat()
        );
    }
}
