//! Stop sequences: the answer ends just before the first place any of them occurs, and the
//! provider reports which one (Anthropic) or just that it stopped (OpenAI, Gemini).

use serde_json::Value;

use super::ApiError;

/// The stop sequences of a request field that holds a string or a list of strings, at most
/// `max` of them; `param` names the field in the error.
pub fn parse(value: &Value, max: usize, param: &str) -> Result<Vec<String>, ApiError> {
    let stops: Vec<String> = match value {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid(
                    param,
                    format!("Invalid '{param}': expected a list of strings."),
                )
            })?,
        _ => {
            return Err(ApiError::invalid(
                param,
                format!("Invalid '{param}': expected a string or a list of strings."),
            ));
        }
    };
    if stops.len() > max {
        return Err(ApiError::invalid(
            param,
            format!(
                "Invalid '{param}': array too long. Expected an array with maximum length {max}, but got an array with length {} instead.",
                stops.len()
            ),
        ));
    }
    Ok(stops.into_iter().filter(|s| !s.is_empty()).collect())
}

/// `text` up to the earliest stop sequence, and that sequence when one matched.
pub fn cut<'a>(text: &'a str, stops: &'a [String]) -> (&'a str, Option<&'a str>) {
    let first = stops
        .iter()
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str())))
        .min_by_key(|(at, _)| *at);
    match first {
        Some((at, stop)) => (&text[..at], Some(stop)),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn cuts_at_the_earliest_match() {
        let stops = vec!["world".to_string(), ", ".to_string()];
        assert_eq!(cut("Hello, world", &stops), ("Hello", Some(", ")));
        assert_eq!(cut("Hi", &stops), ("Hi", None));
    }

    #[test]
    fn parses_strings_and_lists_within_the_limit() {
        assert_eq!(parse(&json!("x"), 4, "stop").unwrap(), ["x"]);
        assert_eq!(parse(&json!(["a", "b"]), 4, "stop").unwrap(), ["a", "b"]);
        assert!(parse(&json!(["a", "b", "c"]), 2, "stop").is_err());
        assert!(parse(&json!(5), 2, "stop").is_err());
        assert!(parse(&Value::Null, 2, "stop").unwrap().is_empty());
    }
}
