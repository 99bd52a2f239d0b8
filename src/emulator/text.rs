//! Deterministic text for the emulator, and the one tokenizer every count uses.
//!
//! **Tokenizer.** A token is either a run of alphanumeric characters (`Hello`, `2025`, `naïve`)
//! or one other non-whitespace character (`,`, `"`, `{`). Whitespace is never a token: it rides
//! with the token that follows it. So `Hello, world!` is 4 tokens (`Hello` `,` ` world` `!`).
//! Streams send these pieces as they are, so the pieces of a reply concatenate back to the reply
//! and the number of pieces is its token count.
//!
//! **Prompt tokens** are the tokens of every text the model would read (system prompt,
//! instructions, message text, tool definitions) plus [`MESSAGE_OVERHEAD`] per message for the
//! role framing. They grow with the prompt, like the real services' counts.
//!
//! **Replies** are picked from a fixed pool of sentences by a seed hashed from the request body,
//! so the same request always gets the same text and the same counts.

use serde_json::Value;

/// Tokens charged per message for its role framing.
pub const MESSAGE_OVERHEAD: u32 = 3;

/// The name replies give for where they come from.
pub const SOURCE: &str = "Workshop Hub offline emulator";

fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        c.is_alphanumeric()
    }
}

fn is_space(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_whitespace()
    } else {
        c.is_whitespace()
    }
}

/// The number of tokens in `text`.
pub fn count_tokens(text: &str) -> u32 {
    let mut count = 0u32;
    let mut in_word = false;
    for c in text.chars() {
        if is_word_char(c) {
            if !in_word {
                count += 1;
                in_word = true;
            }
        } else {
            in_word = false;
            if !is_space(c) {
                count += 1;
            }
        }
    }
    count
}

/// Splits `text` into one piece per token, each with the whitespace before it. Trailing
/// whitespace joins the last piece, so the pieces always concatenate back to `text`.
pub fn token_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    let mut seen_token = false;
    for (i, c) in text.char_indices() {
        let word = is_word_char(c);
        let begins_token = (word && !in_word) || (!word && !is_space(c));
        if begins_token {
            if seen_token {
                let cut = piece_start(text, start, i);
                pieces.push(&text[start..cut]);
                start = cut;
            }
            seen_token = true;
        }
        in_word = word;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Where the piece holding the token at `token_at` starts: at the whitespace before it.
fn piece_start(text: &str, previous_start: usize, token_at: usize) -> usize {
    let before = &text[previous_start..token_at];
    let trimmed = before.trim_end_matches(is_space);
    if trimmed.is_empty() {
        token_at
    } else {
        previous_start + trimmed.len()
    }
}

/// The first `max_tokens` tokens of `text`, and whether anything was cut.
pub fn truncate_tokens(text: &str, max_tokens: u32) -> (&str, bool) {
    let mut count = 0u32;
    let mut in_word = false;
    let mut token_end = 0;
    for (i, c) in text.char_indices() {
        let word = is_word_char(c);
        if (word && !in_word) || (!word && !is_space(c)) {
            if count == max_tokens {
                return (&text[..token_end], true);
            }
            count += 1;
        }
        if !is_space(c) {
            token_end = i + c.len_utf8();
        }
        in_word = word;
    }
    (text, false)
}

/// Groups the token pieces of `text` into chunks of `per_chunk` tokens, with the token count
/// of each chunk.
pub fn chunks(text: &str, per_chunk: usize) -> Vec<(String, u32)> {
    token_pieces(text)
        .chunks(per_chunk.max(1))
        .map(|group| (group.concat(), group.len() as u32))
        .collect()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// FNV-1a: a fast, stable hash for seeding replies from request bytes.
pub fn seed_of(bytes: &[u8]) -> u64 {
    fnv_extend(FNV_OFFSET, bytes)
}

/// The seed of a JSON request: every top-level field except the streaming switches, so a
/// streamed and a whole answer to the same request are the same text.
pub fn seed_of_request(body: &Value) -> u64 {
    let Some(map) = body.as_object() else {
        return seed_of(body.to_string().as_bytes());
    };
    // Keys in sorted order, so the same request hashes alike however its JSON was laid out.
    let mut fields: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| *k != "stream" && *k != "stream_options")
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    fields.into_iter().fold(FNV_OFFSET, |hash, (k, v)| {
        fnv_extend(fnv_extend(hash, k.as_bytes()), v.to_string().as_bytes())
    })
}

/// SplitMix64: small, fast and deterministic; enough for picking sentences and vectors.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A float in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

const POOL: &[&str] = &[
    "This reply was generated on your machine, so no request left it and no provider billed anything.",
    "The same request always gets the same answer, which keeps demos and tests repeatable.",
    "The token counts in the usage block match this text exactly, so you can check the metering by hand.",
    "Streaming works too: ask for a stream and the words arrive one event at a time.",
    "Connect a real provider key when you want genuine model output.",
    "Every call still shows up on the Usage page with its tokens, cost and timing.",
    "Send the header x-emulator-fault to see how your app copes with rate limits and outages.",
    "Longer prompts use more input tokens here, just as they do with the real service.",
    "Nothing in this answer depends on the network, so the demo works on a plane or in a basement.",
    "Your app talks to the emulator with the same SDK calls it will use in production.",
    "Try asking for JSON output, a tool call or a streamed answer to see each feature in action.",
    "Retries, timeouts and dropped streams can all be rehearsed here before they happen for real.",
];

/// The first `n` words of `text`, with an ellipsis when there were more.
pub fn snippet(text: &str, n: usize) -> String {
    let mut words = text.split_whitespace();
    let mut out: Vec<&str> = words.by_ref().take(n).collect();
    if words.next().is_some() {
        out.push("…");
    }
    out.join(" ")
}

/// A natural-sounding reply that says where it comes from and echoes the start of the prompt.
pub fn reply(model: &str, last_user: &str, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = format!("Hello from the {SOURCE}, answering as {model}.");
    let asked = snippet(last_user, 12);
    if !asked.is_empty() {
        out.push_str(" You wrote: \"");
        out.push_str(&asked);
        out.push_str("\".");
    }
    let sentences = 2 + rng.below(3) as usize;
    let first = rng.below(POOL.len() as u64) as usize;
    for i in 0..sentences {
        out.push(' ');
        out.push_str(POOL[(first + i * 5) % POOL.len()]);
    }
    out
}

/// Visible "thinking" text for providers that return it, at most `budget` tokens long.
pub fn thinking(last_user: &str, seed: u64, budget: u32) -> String {
    let mut rng = Rng::new(seed ^ 0x0074_6869_6e6b);
    let mut out = format!(
        "The user wrote \"{}\". I am the {SOURCE}, so I will give a short, repeatable answer and say where it comes from.",
        snippet(last_user, 8)
    );
    let extra = 1 + rng.below(3) as usize;
    for i in 0..extra {
        out.push(' ');
        out.push_str(POOL[(i * 7 + 3) % POOL.len()]);
    }
    truncate_tokens(&out, budget).0.to_string()
}

/// How many hidden reasoning tokens a request spends for an effort level.
pub fn hidden_reasoning_tokens(effort: &str, seed: u64) -> u32 {
    let base = match effort {
        "none" | "minimal" => return 0,
        "low" => 48,
        "high" => 320,
        _ => 128,
    };
    base + Rng::new(seed ^ 0x7265_6173).below(64) as u32
}

/// A word from the prompt that looks like a name (capitalised, not starting a sentence), used
/// to fill string arguments; `Workshop Hub` when there is none.
pub fn salient_name(text: &str) -> String {
    let mut previous_ends_sentence = true;
    let mut found = None;
    for word in text.split_whitespace() {
        let clean = word.trim_matches(|c: char| !c.is_alphanumeric());
        let capitalised = clean.chars().next().is_some_and(char::is_uppercase);
        if capitalised && !previous_ends_sentence {
            found = Some(clean.to_string());
        }
        previous_ends_sentence = word.ends_with(['.', '?', '!', ':']);
    }
    found.unwrap_or_else(|| "Workshop Hub".to_string())
}

/// What a request asks of the model: its prompt size, the text of the last user turn and any
/// tool results that turn hands back.
#[derive(Debug, Default, Clone)]
pub struct Prompt {
    text_tokens: u32,
    messages: u32,
    /// Tokens of attached images and of documents (PDF pages), by each provider's rule.
    pub image_tokens: u32,
    pub document_tokens: u32,
    pub last_user: String,
    /// The tool results the last turn carries, as text; empty when it carries none.
    pub tool_results: Vec<String>,
}

impl Prompt {
    pub fn add_text(&mut self, text: &str) {
        self.text_tokens += count_tokens(text);
    }

    pub fn add_message(&mut self) {
        self.messages += 1;
    }

    /// Counts every string that message content holds: plain strings, `text` fields of blocks,
    /// tool inputs and results. Returns the concatenated text for the caller's use.
    pub fn add_content(&mut self, content: &Value) -> String {
        let mut text = String::new();
        collect_text(content, &mut text);
        self.add_text(&text);
        text
    }

    pub fn tokens(&self) -> u32 {
        self.text_part() + self.image_tokens + self.document_tokens
    }

    /// The tokens that are text: everything but images and documents.
    pub fn text_part(&self) -> u32 {
        self.text_tokens + self.messages * MESSAGE_OVERHEAD
    }

    /// Whether the last turn hands back tool results, so the answer should use them.
    pub fn after_tool_result(&self) -> bool {
        !self.tool_results.is_empty()
    }
}

const TEXT_KEYS: &[&str] = &[
    "text", "content", "thinking", "input", "args", "name", "output", "parts", "response",
];

fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => push_spaced(out, s),
        Value::Array(items) => items.iter().for_each(|item| collect_text(item, out)),
        Value::Object(map) => {
            for key in TEXT_KEYS {
                match map.get(*key) {
                    Some(Value::Object(inner)) if *key == "input" || *key == "args" => {
                        push_spaced(out, &Value::Object(inner.clone()).to_string());
                    }
                    Some(inner) => collect_text(inner, out),
                    None => {}
                }
            }
        }
        _ => {}
    }
}

fn push_spaced(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(s);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn counts_words_and_punctuation() {
        assert_eq!(count_tokens("Hello, world!"), 4);
        assert_eq!(count_tokens("  "), 0);
        assert_eq!(count_tokens("{\"a\": 12}"), 7);
        assert_eq!(count_tokens("naïve café"), 2);
    }

    #[test]
    fn pieces_concatenate_back_and_match_the_count() {
        for text in [
            "Hello, world!",
            "  leading and trailing  ",
            "a\n\nb. c",
            "é—x",
            "",
            reply("gpt-4o", "What is up?", 7).as_str(),
        ] {
            let pieces = token_pieces(text);
            assert_eq!(pieces.concat(), text);
            assert_eq!(pieces.len() as u32, count_tokens(text), "{text:?}");
        }
        assert_eq!(token_pieces("Hello, world!"), ["Hello", ",", " world", "!"]);
    }

    #[test]
    fn truncation_keeps_whole_tokens() {
        assert_eq!(truncate_tokens("Hello, world!", 3), ("Hello, world", true));
        assert_eq!(truncate_tokens("Hi", 3), ("Hi", false));
        assert_eq!(truncate_tokens("Hi there ", 2), ("Hi there ", false));
        assert_eq!(truncate_tokens("a  b", 1), ("a", true));
        assert_eq!(truncate_tokens("x", 0), ("", true));
        let text = reply("m", "some prompt, with words", 3);
        for n in 0..40 {
            let pieces = token_pieces(&text);
            let expected = pieces[..(n as usize).min(pieces.len())].concat();
            assert_eq!(truncate_tokens(&text, n).0, expected.trim_end(), "{n}");
        }
    }

    #[test]
    fn replies_are_deterministic_and_name_the_source() {
        let a = reply("gpt-4o-mini", "Tell me a joke", 42);
        assert_eq!(a, reply("gpt-4o-mini", "Tell me a joke", 42));
        assert!(a.contains(SOURCE));
        assert!(a.contains("Tell me a joke"));
    }

    #[test]
    fn request_seeds_ignore_streaming_and_key_order() {
        let a = serde_json::json!({"model": "m", "messages": [1], "stream": true});
        let b: Value = serde_json::from_str(r#"{"messages": [1], "model": "m"}"#).unwrap();
        let c = serde_json::json!({"model": "m", "messages": [2]});
        assert_eq!(seed_of_request(&a), seed_of_request(&b));
        assert_ne!(seed_of_request(&a), seed_of_request(&c));
    }

    #[test]
    fn prompt_tokens_grow_with_the_prompt() {
        let mut short = Prompt::default();
        short.add_message();
        short.add_content(&Value::from("hi"));
        let mut long = Prompt::default();
        long.add_message();
        long.add_content(&Value::from("hi there, how are you today?"));
        assert_eq!(short.tokens(), 1 + MESSAGE_OVERHEAD);
        assert!(long.tokens() > short.tokens());
    }

    #[test]
    fn salient_name_skips_sentence_starts() {
        assert_eq!(
            salient_name("What is the weather in Paris? Use the tool."),
            "Paris"
        );
        assert_eq!(salient_name("hello there"), "Workshop Hub");
    }
}
