//! An OpenAI Chat Completions request read into plain parts that the Anthropic and Gemini
//! translations share. A parameter the surface cannot honour is an [`Invalid`] naming it.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::gateway::{OutBody, Outgoing};
use crate::providers::Refusal;

/// Fields that change nothing for a translated call.
const HARMLESS: &[&str] = &[
    "user",
    "metadata",
    "store",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
];

/// Fields this module reads.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
];

/// A request the surface refuses, naming the parameter at fault.
#[derive(Debug)]
pub struct Invalid {
    pub param: Option<String>,
    pub message: String,
}

impl Invalid {
    pub fn new(why: impl Into<String>) -> Invalid {
        Invalid {
            param: None,
            message: format!("Bad request: {}.", why.into()),
        }
    }

    pub fn param(param: impl Into<String>, why: impl std::fmt::Display) -> Invalid {
        let param = param.into();
        Invalid {
            message: format!("Bad request: `{param}`: {why}."),
            param: Some(param),
        }
    }

    /// A parameter `provider` has no equivalent for.
    pub fn unsupported(param: &str, provider: &str) -> Invalid {
        Invalid::param(
            param,
            format!(
                "{provider} models have no equivalent, so the Hub cannot honour it; leave it out or use an OpenAI model"
            ),
        )
    }

    pub fn outgoing(&self) -> Outgoing {
        let body = json!({"error": {
            "message": self.message,
            "type": "invalid_request_error",
            "param": self.param,
            "code": Refusal::BadRequest.as_str(),
        }});
        Outgoing {
            status: 400,
            headers: vec![("content-type".into(), "application/json".into())],
            body: OutBody::Full(Bytes::from(body.to_string())),
            refused: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    Data { media_type: String, data: String },
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The parsed `arguments` (always an object).
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    User(Vec<Part>),
    Assistant {
        text: String,
        calls: Vec<ToolCall>,
        /// Anthropic thinking blocks an earlier answer returned (`thinking_blocks`), sent back
        /// unchanged as Anthropic requires before a tool result.
        thinking: Vec<Value>,
    },
    Tool {
        call_id: String,
        content: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Unset,
    Auto,
    None,
    Required,
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Text,
    JsonObject,
    JsonSchema(Value),
}

/// The request, read.
#[derive(Debug)]
pub struct Chat {
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    pub parallel_tool_calls: Option<bool>,
    pub format: Format,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub n: Option<u64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub reasoning_effort: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
}

pub fn read(body: &Value) -> Result<Chat, Invalid> {
    let object = body
        .as_object()
        .ok_or_else(|| Invalid::new("the body must be a JSON object"))?;
    refuse_unknown(object)?;
    if body["logprobs"].as_bool() == Some(true) {
        return Err(Invalid::param(
            "logprobs",
            "log probabilities are only available for OpenAI models",
        ));
    }
    let (system, turns) = messages(&body["messages"])?;
    Ok(Chat {
        system,
        turns,
        tools: tools(&body["tools"])?,
        tool_choice: tool_choice(&body["tool_choice"])?,
        parallel_tool_calls: opt_bool(body, "parallel_tool_calls")?,
        format: format(&body["response_format"])?,
        max_tokens: match opt_u64(body, "max_completion_tokens")? {
            Some(m) => Some(m),
            None => opt_u64(body, "max_tokens")?,
        },
        temperature: opt_f64(body, "temperature")?,
        top_p: opt_f64(body, "top_p")?,
        stop: stop(&body["stop"])?,
        n: opt_u64(body, "n")?,
        seed: match &body["seed"] {
            Value::Null => None,
            v => Some(
                v.as_i64()
                    .ok_or_else(|| Invalid::param("seed", "must be an integer"))?,
            ),
        },
        presence_penalty: opt_f64(body, "presence_penalty")?.filter(|p| *p != 0.0),
        frequency_penalty: opt_f64(body, "frequency_penalty")?.filter(|p| *p != 0.0),
        reasoning_effort: match &body["reasoning_effort"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(Invalid::param("reasoning_effort", "must be a string")),
        },
        stream: opt_bool(body, "stream")?.unwrap_or(false),
        include_usage: body["stream_options"]["include_usage"].as_bool() == Some(true),
    })
}

fn refuse_unknown(object: &Map<String, Value>) -> Result<(), Invalid> {
    match object.iter().find(|(k, v)| {
        !v.is_null() && !KNOWN.contains(&k.as_str()) && !HARMLESS.contains(&k.as_str())
    }) {
        Some((k, _)) => Err(Invalid::param(
            k.as_str(),
            "this parameter is not supported for Anthropic and Gemini models on the compatible surface; leave it out or use an OpenAI model",
        )),
        None => Ok(()),
    }
}

fn opt_bool(body: &Value, key: &str) -> Result<Option<bool>, Invalid> {
    match &body[key] {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(Invalid::param(key, "must be true or false")),
    }
}

fn opt_u64(body: &Value, key: &str) -> Result<Option<u64>, Invalid> {
    match &body[key] {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| Invalid::param(key, "must be a whole number of at least 0")),
    }
}

fn opt_f64(body: &Value, key: &str) -> Result<Option<f64>, Invalid> {
    match &body[key] {
        Value::Null => Ok(None),
        v => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Invalid::param(key, "must be a number")),
    }
}

fn stop(v: &Value) -> Result<Vec<String>, Invalid> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Invalid::param("stop", "must be a string or a list of strings"))
            })
            .collect(),
        _ => Err(Invalid::param(
            "stop",
            "must be a string or a list of strings",
        )),
    }
}

fn messages(v: &Value) -> Result<(Vec<String>, Vec<Turn>), Invalid> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| Invalid::param("messages", "must be a non-empty list"))?;
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        match m["role"].as_str() {
            Some("system" | "developer") => system.push(text_only(&m["content"], &at)?),
            Some("user") => turns.push(Turn::User(parts(&m["content"], &at)?)),
            Some("assistant") => turns.push(Turn::Assistant {
                text: match &m["content"] {
                    Value::Null => String::new(),
                    c => text_only(c, &at)?,
                },
                calls: tool_calls(&m["tool_calls"], &at)?,
                thinking: thinking_blocks(&m["thinking_blocks"]),
            }),
            Some("tool") => turns.push(Turn::Tool {
                call_id: m["tool_call_id"]
                    .as_str()
                    .ok_or_else(|| Invalid::param(format!("{at}.tool_call_id"), "is required"))?
                    .to_string(),
                content: text_only(&m["content"], &at)?,
            }),
            _ => {
                return Err(Invalid::param(
                    format!("{at}.role"),
                    "must be system, developer, user, assistant or tool",
                ));
            }
        }
    }
    Ok((system, turns))
}

/// A string, or a list of text parts joined.
fn text_only(content: &Value, at: &str) -> Result<String, Invalid> {
    let mut text = String::new();
    for part in parts(content, at)? {
        match part {
            Part::Text(t) => text.push_str(&t),
            Part::Image(_) => {
                return Err(Invalid::param(
                    format!("{at}.content"),
                    "images are only accepted in user messages",
                ));
            }
        }
    }
    Ok(text)
}

fn parts(content: &Value, at: &str) -> Result<Vec<Part>, Invalid> {
    match content {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, p)| part(p, &format!("{at}.content[{j}]")))
            .collect(),
        _ => Err(Invalid::param(
            format!("{at}.content"),
            "must be a string or a list of parts",
        )),
    }
}

fn part(p: &Value, at: &str) -> Result<Part, Invalid> {
    match p["type"].as_str() {
        Some("text") => Ok(Part::Text(
            p["text"]
                .as_str()
                .ok_or_else(|| Invalid::param(format!("{at}.text"), "must be a string"))?
                .to_string(),
        )),
        Some("image_url") => {
            let url = p["image_url"]["url"]
                .as_str()
                .or(p["image_url"].as_str())
                .ok_or_else(|| Invalid::param(format!("{at}.image_url.url"), "is required"))?;
            image(url, at).map(Part::Image)
        }
        other => Err(Invalid::param(
            format!("{at}.type"),
            format!(
                "{} parts are not supported for Anthropic and Gemini models here; send text and image_url parts",
                other.unwrap_or("untyped")
            ),
        )),
    }
}

fn image(url: &str, at: &str) -> Result<Image, Invalid> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            Invalid::param(format!("{at}.image_url.url"), "is a data URL without data")
        })?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            Invalid::param(format!("{at}.image_url.url"), "data URLs must be base64")
        })?;
        return Ok(Image::Data {
            media_type: media_type.to_string(),
            data: data.to_string(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_string()));
    }
    Err(Invalid::param(
        format!("{at}.image_url.url"),
        "must be an http(s) URL or a base64 data URL",
    ))
}

/// The thinking blocks of an assistant turn, as Anthropic wrote them.
fn thinking_blocks(v: &Value) -> Vec<Value> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
        .cloned()
        .collect()
}

fn tool_calls(v: &Value, at: &str) -> Result<Vec<ToolCall>, Invalid> {
    let Some(list) = v.as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(k, c)| {
            let at = format!("{at}.tool_calls[{k}]");
            let name = c["function"]["name"]
                .as_str()
                .ok_or_else(|| Invalid::param(format!("{at}.function.name"), "is required"))?;
            let raw = c["function"]["arguments"].as_str().unwrap_or("{}");
            let arguments: Value = if raw.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(raw).map_err(|e| {
                    Invalid::param(
                        format!("{at}.function.arguments"),
                        format!("is not JSON ({e})"),
                    )
                })?
            };
            if !arguments.is_object() {
                return Err(Invalid::param(
                    format!("{at}.function.arguments"),
                    "must be a JSON object",
                ));
            }
            Ok(ToolCall {
                id: c["id"].as_str().unwrap_or_default().to_string(),
                name: name.to_string(),
                arguments,
            })
        })
        .collect()
}

fn tools(v: &Value) -> Result<Vec<Tool>, Invalid> {
    let Some(list) = v.as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            if t["type"] != "function" {
                return Err(Invalid::param(
                    format!("tools[{i}].type"),
                    "only function tools can be translated",
                ));
            }
            let f = &t["function"];
            Ok(Tool {
                name: f["name"]
                    .as_str()
                    .ok_or_else(|| {
                        Invalid::param(format!("tools[{i}].function.name"), "is required")
                    })?
                    .to_string(),
                description: f["description"].as_str().map(str::to_string),
                parameters: f.get("parameters").filter(|p| !p.is_null()).cloned(),
                strict: f["strict"].as_bool(),
            })
        })
        .collect()
}

fn tool_choice(v: &Value) -> Result<ToolChoice, Invalid> {
    match v {
        Value::Null => Ok(ToolChoice::Unset),
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(Invalid::param(
                "tool_choice",
                "must be auto, none, required or a named function",
            )),
        },
        Value::Object(_) if v["type"] == "function" => v["function"]["name"]
            .as_str()
            .map(|n| ToolChoice::Named(n.to_string()))
            .ok_or_else(|| Invalid::param("tool_choice.function.name", "is required")),
        _ => Err(Invalid::param(
            "tool_choice",
            "must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}",
        )),
    }
}

fn format(v: &Value) -> Result<Format, Invalid> {
    match v["type"].as_str() {
        None if v.is_null() => Ok(Format::Text),
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => v["json_schema"]["schema"]
            .as_object()
            .map(|s| Format::JsonSchema(Value::Object(s.clone())))
            .ok_or_else(|| Invalid::param("response_format.json_schema.schema", "is required")),
        _ => Err(Invalid::param(
            "response_format",
            "must be text, json_object or json_schema",
        )),
    }
}

/// The function name of each earlier tool call, by id.
pub fn call_names(turns: &[Turn]) -> Vec<(String, String)> {
    turns
        .iter()
        .filter_map(|t| match t {
            Turn::Assistant { calls, .. } => Some(calls),
            _ => None,
        })
        .flatten()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn chat(extra: Value) -> Result<Chat, Invalid> {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        read(&body)
    }

    #[test]
    fn unknown_parameters_are_refused_by_name_and_harmless_ones_ignored() {
        let e = chat(json!({"logit_bias": {"1": 2}})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("logit_bias"));
        assert!(chat(json!({"user": "u", "metadata": {"a": "b"}, "store": true})).is_ok());
        let e = chat(json!({"logprobs": true})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("logprobs"));
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let c = chat(json!({"max_tokens": 10, "max_completion_tokens": 20})).unwrap();
        assert_eq!(c.max_tokens, Some(20));
        assert_eq!(
            chat(json!({"max_tokens": 10})).unwrap().max_tokens,
            Some(10)
        );
    }

    #[test]
    fn messages_are_read_into_turns() {
        let c = read(&json!({"model": "m", "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}]}))
        .unwrap();
        assert_eq!(c.system, vec!["be brief", "and kind"]);
        assert_eq!(
            c.turns[0],
            Turn::User(vec![
                Part::Text("what is this?".into()),
                Part::Image(Image::Data {
                    media_type: "image/png".into(),
                    data: "iVBOR".into()
                }),
                Part::Image(Image::Url("https://example.com/cat.png".into())),
            ])
        );
        assert_eq!(
            c.turns[1],
            Turn::Assistant {
                text: String::new(),
                calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: json!({"a": 1})
                }],
                thinking: Vec::new(),
            }
        );
        assert_eq!(
            c.turns[2],
            Turn::Tool {
                call_id: "call_1".into(),
                content: "42".into()
            }
        );
        assert_eq!(
            call_names(&c.turns),
            vec![("call_1".to_string(), "f".to_string())]
        );
    }

    #[test]
    fn bad_tool_arguments_and_parts_name_their_place() {
        let e = read(
            &json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].tool_calls[0].function.arguments")
        );
        let e = read(
            &json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {}}]}]}),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn tool_choice_and_formats_are_read() {
        let c = chat(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}})).unwrap();
        assert_eq!(c.tool_choice, ToolChoice::Named("f".into()));
        assert_eq!(c.format, Format::JsonSchema(json!({"type": "object"})));
        assert_eq!(
            chat(json!({"tool_choice": "required"}))
                .unwrap()
                .tool_choice,
            ToolChoice::Required
        );
        assert_eq!(chat(json!({"stop": "END"})).unwrap().stop, vec!["END"]);
        let e = chat(json!({"tools": [{"type": "custom", "custom": {"name": "g"}}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        assert!(
            chat(json!({"stream": true, "stream_options": {"include_usage": true}}))
                .unwrap()
                .include_usage
        );
    }
}
