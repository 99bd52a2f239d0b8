//! Sample JSON for a JSON Schema (or Gemini's OpenAPI-subset `Schema`), used for tool arguments
//! and structured outputs.
//!
//! The sample is deterministic and valid for the keywords the three services accept: types
//! (also Gemini's uppercase ones and `["x","null"]` lists), `properties`, `items`, `enum`,
//! `const`, `anyOf`/`oneOf`/`allOf` (the first alternative that is not `null`), internal `$ref`
//! to `$defs`/`definitions`, string `format`s and lengths, numeric bounds and `minItems`.
//! Strings are filled with a hint taken from the prompt.

use serde_json::{Map, Value};

/// Below this depth every property and one array item is produced; deeper, only required
/// properties and `minItems` items, so recursive schemas end.
const FULL_DEPTH: u32 = 4;
const MAX_DEPTH: u32 = 16;

/// A value valid against `schema`, filling free strings with `hint`.
pub fn sample(schema: &Value, hint: &str) -> Value {
    Sampler { root: schema, hint }.value(schema, 0)
}

struct Sampler<'a> {
    root: &'a Value,
    hint: &'a str,
}

impl Sampler<'_> {
    fn value(&self, schema: &Value, depth: u32) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            return match self.resolve(target) {
                Some(resolved) => self.value(resolved, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(constant) = schema.get("const") {
            return constant.clone();
        }
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        if let Some(alternative) = first_alternative(schema) {
            return self.value(alternative, depth + 1);
        }
        match type_of(schema).as_str() {
            "object" => self.object(schema, depth),
            "array" => self.array(schema, depth),
            "integer" => Value::from(integer_in_bounds(schema)),
            "number" => number_in_bounds(schema),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => Value::String(string_for(schema, self.hint)),
        }
    }

    fn resolve(&self, target: &str) -> Option<&Value> {
        let pointer = target.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn object(&self, schema: &Value, depth: u32) -> Value {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                if depth < FULL_DEPTH || required.contains(&name.as_str()) {
                    out.insert(name.clone(), self.value(prop, depth + 1));
                }
            }
        }
        Value::Object(out)
    }

    fn array(&self, schema: &Value, depth: u32) -> Value {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let wanted = if depth < FULL_DEPTH { min.max(1) } else { min };
        let max = schema.get("maxItems").and_then(Value::as_u64);
        let count = max.map_or(wanted, |m| wanted.min(m));
        let item = schema.get("items").unwrap_or(&Value::Null);
        Value::Array((0..count).map(|_| self.value(item, depth + 1)).collect())
    }
}

/// The first `anyOf`/`oneOf`/`allOf` branch that is not just `null`.
fn first_alternative(schema: &Value) -> Option<&Value> {
    ["anyOf", "oneOf", "allOf"].iter().find_map(|key| {
        let branches = schema.get(*key)?.as_array()?;
        branches
            .iter()
            .find(|b| type_of(b) != "null")
            .or_else(|| branches.first())
    })
}

/// The schema's type in lowercase; the first non-null one of a list; guessed when absent.
fn type_of(schema: &Value) -> String {
    let named = match schema.get("type") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .or(Some("null")),
        _ => None,
    };
    match named {
        Some(t) => t.to_ascii_lowercase(),
        None if schema.get("properties").is_some() => "object".into(),
        None if schema.get("items").is_some() => "array".into(),
        None => "string".into(),
    }
}

fn bound(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(|v| match v {
        Value::String(s) => s.parse().ok(),
        other => other.as_f64(),
    })
}

fn integer_in_bounds(schema: &Value) -> i64 {
    let low = bound(schema, "minimum")
        .map(|m| m.ceil())
        .or_else(|| bound(schema, "exclusiveMinimum").map(|m| m.floor() + 1.0));
    let high = bound(schema, "maximum")
        .map(|m| m.floor())
        .or_else(|| bound(schema, "exclusiveMaximum").map(|m| m.ceil() - 1.0));
    clamp(42.0, low, high) as i64
}

fn number_in_bounds(schema: &Value) -> Value {
    let low = bound(schema, "minimum").or_else(|| bound(schema, "exclusiveMinimum"));
    let high = bound(schema, "maximum").or_else(|| bound(schema, "exclusiveMaximum"));
    let value = match (low, high) {
        (Some(l), Some(h)) => (l + h) / 2.0,
        _ => clamp(4.5, low.map(|l| l + 1.0), high.map(|h| h - 1.0)),
    };
    serde_json::Number::from_f64(value).map_or(Value::from(0), Value::Number)
}

fn clamp(value: f64, low: Option<f64>, high: Option<f64>) -> f64 {
    let value = low.map_or(value, |l| value.max(l));
    high.map_or(value, |h| value.min(h))
}

fn string_for(schema: &Value, hint: &str) -> String {
    let formatted = match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => Some("2025-01-01T12:00:00Z"),
        Some("date") => Some("2025-01-01"),
        Some("time") => Some("12:00:00"),
        Some("email") => Some("user@example.com"),
        Some("uri" | "url") => Some("https://example.com/"),
        Some("uuid") => Some("00000000-0000-4000-8000-000000000000"),
        Some("ipv4") => Some("127.0.0.1"),
        _ => None,
    };
    if let Some(fixed) = formatted {
        return fixed.to_string();
    }
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    let mut s: String = hint.chars().take(max.unwrap_or(usize::MAX)).collect();
    while s.chars().count() < min {
        s.push('x');
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_every_property_with_its_type() {
        let schema = json!({"type":"object","properties":{
            "city":{"type":"string"},"unit":{"enum":["celsius","fahrenheit"]},
            "days":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}}});
        let v = sample(&schema, "Paris");
        assert_eq!(
            v,
            json!({"city":"Paris","unit":"celsius","days":42,"tags":["Paris"]})
        );
    }

    #[test]
    fn follows_refs_nullable_unions_and_gemini_types() {
        let schema = json!({
            "$defs": {"Step": {"type":"object","properties":{"n":{"type":"integer","minimum":100}},"required":["n"]}},
            "type":"object",
            "properties": {
                "steps": {"type":"array","items":{"$ref":"#/$defs/Step"},"minItems":2},
                "note": {"anyOf":[{"type":"null"},{"type":"string","maxLength":3}]},
                "score": {"type":["number","null"],"minimum":0,"maximum":1},
                "when": {"type":"string","format":"date"},
                "flag": {"type":"BOOLEAN"}
            }
        });
        let v = sample(&schema, "Paris");
        assert_eq!(v["steps"], json!([{"n":100},{"n":100}]));
        assert_eq!(v["note"], "Par");
        assert_eq!(v["score"], 0.5);
        assert_eq!(v["when"], "2025-01-01");
        assert_eq!(v["flag"], true);
    }

    #[test]
    fn recursive_schemas_end() {
        let schema = json!({"$defs":{"Node":{"type":"object","properties":{
            "name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/Node"}}},
            "required":["name","children"]}},"$ref":"#/$defs/Node"});
        let v = sample(&schema, "x");
        assert_eq!(v["name"], "x");
        assert!(v.to_string().contains("\"children\":[]"));
    }
}
