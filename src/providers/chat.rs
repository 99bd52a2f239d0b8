//! A chat as the request log and the Playground see it, whatever the provider: the
//! conversation a kept request asked (to ask it again), and the raw events of a kept stream
//! read back as JSON (to show the answer they spelled out).

use serde_json::Value;

use super::sse::{SseSplitter, parse_event};

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// A chat in provider-neutral terms: an optional system prompt and the turns in order (the
/// last one is normally the user's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    pub system: Option<String>,
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// One user prompt and nothing else.
    pub fn prompt(text: &str) -> Conversation {
        Conversation {
            system: None,
            turns: vec![Turn {
                role: Role::User,
                text: text.to_string(),
            }],
        }
    }

    /// Adds a turn, skipping empty text.
    pub(super) fn push(&mut self, role: Role, text: String) {
        if !text.is_empty() {
            self.turns.push(Turn { role, text });
        }
    }

    /// Adds to the system prompt, skipping empty text.
    pub(super) fn add_system(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.system = Some(match self.system.take() {
            Some(before) => format!("{before}\n\n{text}"),
            None => text,
        });
    }

    /// `None` when nothing was said at all.
    pub(super) fn non_empty(self) -> Option<Conversation> {
        (!self.turns.is_empty()).then_some(self)
    }
}

/// The JSON data of every event of a kept stream, with its event name: SSE framing, or
/// Gemini's JSON-array framing when the stream is not SSE. Events that are not JSON (OpenAI's
/// `[DONE]`) are skipped; an event cut off at the end is dropped.
pub(super) fn stream_values(stream: &[u8]) -> Vec<(Option<String>, Value)> {
    let trimmed = stream.trim_ascii_start();
    if trimmed.starts_with(b"[") {
        if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(trimmed) {
            return items.into_iter().map(|v| (None, v)).collect();
        }
    }
    let mut values = Vec::new();
    let mut splitter = SseSplitter::new();
    splitter.push(stream, |raw| {
        let event = parse_event(raw);
        if let Ok(v) = serde_json::from_slice::<Value>(&event.data) {
            values.push((event.name.map(str::to_owned), v));
        }
    });
    values
}

/// The text of a content value: a string, or the `text` of each part in a list of parts.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `Some(text)` unless it is empty.
pub(super) fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_values_read_sse_and_json_arrays() {
        let sse = b"event: a\ndata: {\"x\":1}\n\ndata: [DONE]\n\ndata: {\"x\":";
        let values = stream_values(sse);
        assert_eq!(values.len(), 1, "[DONE] and the cut event are skipped");
        assert_eq!(values[0].0.as_deref(), Some("a"));
        assert_eq!(values[0].1["x"], 1);
        let array = stream_values(b" [{\"x\":1},\n{\"x\":2}]");
        assert_eq!(array.len(), 2);
        assert_eq!(
            content_text(&serde_json::json!([{"text": "a"}, {"image": 1}, {"text": "b"}])),
            "a\nb"
        );
    }

    fn turn(role: Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
        }
    }

    #[test]
    fn each_provider_reads_the_conversation_it_was_sent() {
        use super::super::{Provider, api};
        let expected = Conversation {
            system: Some("Be brief.".into()),
            turns: vec![
                turn(Role::User, "Hi"),
                turn(Role::Assistant, "Hello"),
                turn(Role::User, "Bye"),
            ],
        };
        for provider in Provider::ALL {
            let request = api(provider).playground_request("m", &expected, 16, false);
            assert_eq!(
                api(provider).conversation(&request.body),
                Some(expected.clone()),
                "{provider}"
            );
        }
        // OpenAI's Responses: instructions and typed input parts.
        let responses = br#"{"model":"m","instructions":"Be brief.","input":[
            {"role":"user","content":[{"type":"input_text","text":"Hi"}]},
            {"role":"assistant","content":[{"type":"output_text","text":"Hello"}]},
            {"role":"user","content":"Bye"}]}"#;
        assert_eq!(
            api(Provider::OpenAi).conversation(responses),
            Some(expected.clone())
        );
        // Anthropic's system as text blocks.
        let messages = br#"{"model":"m","system":[{"type":"text","text":"Be brief."}],
            "messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},
            {"role":"assistant","content":"Hello"},{"role":"user","content":"Bye"}]}"#;
        assert_eq!(
            api(Provider::Anthropic).conversation(messages),
            Some(expected)
        );
        assert_eq!(api(Provider::OpenAi).conversation(b"{\"input\": 3}"), None);
        assert_eq!(api(Provider::Gemini).conversation(b"not json"), None);
    }

    #[test]
    fn each_provider_assembles_its_stream() {
        use super::super::{Provider, api};
        let chat = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
        assert_eq!(
            api(Provider::OpenAi).assemble_stream(chat).as_deref(),
            Some("Hello")
        );
        let responses = b"event: response.output_text.delta\n\
            data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
            event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n";
        assert_eq!(
            api(Provider::OpenAi).assemble_stream(responses).as_deref(),
            Some("Hi")
        );
        let anthropic = b"event: content_block_delta\n\
            data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n\
            event: content_block_delta\n\
            data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Yes\"}}\n\n";
        assert_eq!(
            api(Provider::Anthropic)
                .assemble_stream(anthropic)
                .as_deref(),
            Some("Yes")
        );
        let gemini = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"plan\",\"thought\":true},{\"text\":\"A\"}]}}]}\n\n\
            data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"B\"}]}}]}\n\n";
        assert_eq!(
            api(Provider::Gemini).assemble_stream(gemini).as_deref(),
            Some("AB")
        );
        let array = br#"[{"candidates":[{"content":{"parts":[{"text":"A"}]}}]}]"#;
        assert_eq!(
            api(Provider::Gemini).assemble_stream(array).as_deref(),
            Some("A")
        );
        assert_eq!(
            api(Provider::Anthropic).assemble_stream(b"event: ping\ndata: {}\n\n"),
            None
        );
    }
}
