//! When the emulator calls a tool and with which arguments: one deterministic rule for the
//! three providers, which only translate their own request and answer shapes.
//!
//! The rule, in order:
//! 1. No tools, a `none` choice, or a last turn that carries tool results: no call (the
//!    answer is text that uses the results).
//! 2. A named choice calls that tool.
//! 3. Otherwise the tools that *fit* the last user turn are called: the turn mentions the
//!    tool's name (`get_weather` or `get weather`), a word of its name, or a word of five
//!    letters or more from its description (`weather`, `forecast`), ignoring common words.
//!    A turn that says "use the tool" with no better fit gets the first tool.
//! 4. With a forced choice (`required`, `any`, `ANY`) and no fitting tool, the first
//!    allowed tool is called.
//! 5. Several calls only when the request allows parallel calls; otherwise the first.
//!
//! Arguments are [`schema::sample`]s of the tool's parameters, strings filled with a name from
//! the prompt.

use serde_json::{Value, json};

use super::schema;
use super::text;

/// A tool as offered, whatever the provider's shape.
#[derive(Debug, Clone)]
pub struct Tool<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: Option<&'a Value>,
}

/// What the request lets or makes the model do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<'a> {
    None,
    Auto,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Named(&'a str),
}

/// One tool call the answer makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub arguments: Value,
}

impl Call {
    /// The arguments as the compact JSON string OpenAI sends.
    pub fn arguments_json(&self) -> String {
        self.arguments.to_string()
    }

    /// Tokens the call costs as output: its name and its arguments.
    pub fn tokens(&self) -> u32 {
        text::count_tokens(&self.name) + text::count_tokens(&self.arguments_json())
    }
}

/// A request's tool situation.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    pub tools: Vec<Tool<'a>>,
    pub choice: Choice<'a>,
    /// Only these tools may be called (Gemini `allowedFunctionNames`, OpenAI `allowed_tools`).
    pub allowed: Option<Vec<&'a str>>,
    pub parallel: bool,
    pub last_user: &'a str,
    pub after_tool_result: bool,
}

/// The calls the answer makes, by the rule in the module doc.
pub fn plan(turn: &Turn) -> Vec<Call> {
    if turn.after_tool_result || turn.choice == Choice::None {
        return Vec::new();
    }
    let allowed: Vec<&Tool> = turn
        .tools
        .iter()
        .filter(|t| turn.allowed.as_ref().is_none_or(|a| a.contains(&t.name)))
        .collect();
    let mut chosen: Vec<&Tool> = match &turn.choice {
        Choice::Named(name) => allowed
            .iter()
            .copied()
            .filter(|t| t.name == *name)
            .collect(),
        _ => fitting(&allowed, turn.last_user),
    };
    let forced = turn.choice == Choice::Required;
    if chosen.is_empty() && (forced || asks_for_a_tool(turn.last_user)) {
        chosen.extend(allowed.first().copied());
    }
    if !turn.parallel {
        chosen.truncate(1);
    }
    let hint = text::salient_name(turn.last_user);
    chosen.into_iter().map(|t| call(t, &hint)).collect()
}

fn call(tool: &Tool, hint: &str) -> Call {
    let arguments = match tool.parameters {
        Some(p) if !p.is_null() => schema::sample(p, hint),
        _ => json!({}),
    };
    let arguments = if arguments.is_object() {
        arguments
    } else {
        json!({})
    };
    Call {
        name: tool.name.to_string(),
        arguments,
    }
}

fn asks_for_a_tool(last_user: &str) -> bool {
    let lower = last_user.to_lowercase();
    lower.contains("use the tool") || lower.contains("use a tool") || lower.contains("call a tool")
}

/// Words too common to say which tool a turn wants.
const COMMON: &[&str] = &[
    "get",
    "set",
    "fetch",
    "find",
    "list",
    "make",
    "create",
    "call",
    "tool",
    "tools",
    "function",
    "about",
    "which",
    "their",
    "there",
    "these",
    "those",
    "where",
    "would",
    "could",
    "should",
    "return",
    "returns",
    "given",
    "using",
    "value",
    "values",
    "based",
    "current",
    "specified",
    "provided",
    "information",
    "input",
    "output",
    "string",
    "number",
    "object",
    "result",
    "results",
    "field",
    "fields",
    "other",
    "after",
    "before",
    "first",
    "every",
    "please",
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| singular(&w.to_lowercase()))
        .collect()
}

fn singular(word: &str) -> String {
    match word.strip_suffix('s') {
        Some(stem) if stem.len() >= 4 && !stem.ends_with('s') => stem.to_string(),
        _ => word.to_string(),
    }
}

/// The words of a tool's name: `get_weather`, `getWeather`, `get-weather` → get, weather.
fn name_words(name: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && previous_lower {
            spaced.push(' ');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        spaced.push(c);
    }
    words(&spaced)
}

fn keywords(tool: &Tool) -> Vec<String> {
    let from_name = name_words(tool.name).into_iter().filter(|w| w.len() >= 4);
    let from_description = words(tool.description).into_iter().filter(|w| w.len() >= 5);
    from_name
        .chain(from_description)
        .filter(|w| !COMMON.contains(&w.as_str()))
        .collect()
}

fn fitting<'t>(tools: &[&'t Tool<'t>], last_user: &str) -> Vec<&'t Tool<'t>> {
    let lower = last_user.to_lowercase();
    let said = words(last_user);
    tools
        .iter()
        .copied()
        .filter(|t| {
            let name = t.name.to_lowercase();
            lower.contains(&name)
                || lower.contains(&name.replace(['_', '-'], " "))
                || keywords(t).iter().any(|k| said.contains(k))
        })
        .collect()
}

/// The final answer once tool results are back: it quotes them, so an app can see they were used.
pub fn answer_with_results(results: &[String]) -> String {
    let quoted: Vec<String> = results
        .iter()
        .map(|r| format!("\"{}\"", text::snippet(r.trim(), 40)))
        .collect();
    format!(
        "Here is the answer from the tool results: {}. This answer comes from the {}.",
        quoted.join(", "),
        text::SOURCE
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn weather_schema() -> Value {
        json!({"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]})
    }

    fn turn<'a>(tools: Vec<Tool<'a>>, choice: Choice<'a>, last_user: &'a str) -> Turn<'a> {
        Turn {
            tools,
            choice,
            allowed: None,
            parallel: true,
            last_user,
            after_tool_result: false,
        }
    }

    fn tools(schema: &Value) -> Vec<Tool<'_>> {
        vec![
            Tool {
                name: "get_weather",
                description: "Current weather for a city",
                parameters: Some(schema),
            },
            Tool {
                name: "get_time",
                description: "The local clock time in a timezone",
                parameters: None,
            },
        ]
    }

    #[test]
    fn auto_calls_what_the_turn_asks_for() {
        let s = weather_schema();
        let calls = plan(&turn(
            tools(&s),
            Choice::Auto,
            "What's the weather in Paris?",
        ));
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, json!({"city": "Paris", "unit": "c"}));
        assert!(plan(&turn(tools(&s), Choice::Auto, "Tell me a joke")).is_empty());
    }

    #[test]
    fn several_asks_call_in_parallel_only_when_allowed() {
        let s = weather_schema();
        let ask = "The weather in Oslo and the clock there?";
        assert_eq!(plan(&turn(tools(&s), Choice::Auto, ask)).len(), 2);
        let mut single = turn(tools(&s), Choice::Auto, ask);
        single.parallel = false;
        assert_eq!(plan(&single).len(), 1);
    }

    #[test]
    fn forced_choices_always_call_until_results_come_back() {
        let s = weather_schema();
        let required = plan(&turn(tools(&s), Choice::Required, "hello"));
        assert_eq!(required[0].name, "get_weather");
        let named = plan(&turn(tools(&s), Choice::Named("get_time"), "hello"));
        assert_eq!(named[0].name, "get_time");
        assert_eq!(named[0].arguments, json!({}));
        let mut allowed = turn(tools(&s), Choice::Required, "hello");
        allowed.allowed = Some(vec!["get_time"]);
        assert_eq!(plan(&allowed)[0].name, "get_time");
        let mut done = turn(tools(&s), Choice::Required, "hello");
        done.after_tool_result = true;
        assert!(plan(&done).is_empty());
        assert!(plan(&turn(tools(&s), Choice::None, "weather?")).is_empty());
    }

    #[test]
    fn name_words_split_every_style() {
        assert_eq!(name_words("getWeather"), ["get", "weather"]);
        assert_eq!(name_words("get-current_time"), ["get", "current", "time"]);
    }
}
