//! The one canonical form of an app's request target. The path is parsed once, strictly:
//! anything a client library, a proxy or the provider could read two ways is refused, so the
//! endpoint that decides the hold and the metering is the endpoint the provider serves.

use std::fmt;

/// Longest path the gateway accepts, in bytes as received.
pub const MAX_PATH_BYTES: usize = 2048;

/// Why a path was refused. Each says what to fix; none echoes the path back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    DotSegment,
    EmptySegment,
    Backslash,
    EncodedSlash,
    ControlCharacter,
    BadPercentEncoding,
    OutsideVersion,
    TooLong,
}

impl fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathRefusal::DotSegment => "the path has a `.` or `..` segment",
            PathRefusal::EmptySegment => "the path has an empty segment (`//` or a trailing `/`)",
            PathRefusal::Backslash => "the path has a backslash",
            PathRefusal::EncodedSlash => "the path has an encoded slash (`%2F`)",
            PathRefusal::ControlCharacter => "the path has a control character",
            PathRefusal::BadPercentEncoding => {
                "the path has a `%` that is not followed by two hex digits"
            }
            PathRefusal::OutsideVersion => "the path is not under the provider's API version",
            PathRefusal::TooLong => "the path is too long",
        })
    }
}

/// Parses `raw` (the path as received, still percent-encoded, the `/openai` surface prefix
/// already removed) into its canonical form: unreserved characters and `:` decoded, every
/// other escape kept with uppercase hex, the first segment one of `versions`.
pub fn canonical_path(raw: &str, versions: &[&str]) -> Result<String, PathRefusal> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathRefusal::TooLong);
    }
    let rest = raw.strip_prefix('/').ok_or(PathRefusal::OutsideVersion)?;
    let mut out = String::with_capacity(raw.len());
    let mut segments = 0;
    for segment in rest.split('/') {
        let decoded = canonical_segment(segment)?;
        if segments == 0 && !versions.contains(&decoded.as_str()) {
            return Err(PathRefusal::OutsideVersion);
        }
        out.push('/');
        out.push_str(&decoded);
        segments += 1;
    }
    if segments < 2 {
        return Err(PathRefusal::OutsideVersion);
    }
    Ok(out)
}

fn canonical_segment(segment: &str) -> Result<String, PathRefusal> {
    if segment.is_empty() {
        return Err(PathRefusal::EmptySegment);
    }
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let value = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(PathRefusal::BadPercentEncoding)?;
            push_decoded(&mut out, value)?;
            i += 3;
            continue;
        }
        check_plain(b)?;
        out.push(char::from(b));
        i += 1;
    }
    if out == "." || out == ".." {
        return Err(PathRefusal::DotSegment);
    }
    Ok(out)
}

fn check_plain(b: u8) -> Result<(), PathRefusal> {
    match b {
        b'\\' => Err(PathRefusal::Backslash),
        0..=0x1f | 0x7f => Err(PathRefusal::ControlCharacter),
        // Not valid in a URI path at all; the HTTP layer refuses these before us.
        0x80.. | b' ' | b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'|' | b'}' | b'#' | b'?' => {
            Err(PathRefusal::BadPercentEncoding)
        }
        _ => Ok(()),
    }
}

/// One percent-escape: unreserved characters and `:` (Gemini's action separator) are decoded
/// so they cannot hide an endpoint name; the rest stay escaped.
fn push_decoded(out: &mut String, value: u8) -> Result<(), PathRefusal> {
    match value {
        b'/' => Err(PathRefusal::EncodedSlash),
        b'\\' => Err(PathRefusal::Backslash),
        0..=0x1f | 0x7f => Err(PathRefusal::ControlCharacter),
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
            out.push(char::from(value));
            Ok(())
        }
        _ => {
            out.push_str(&format!("%{value:02X}"));
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const OPENAI: &[&str] = &["v1"];
    const GEMINI: &[&str] = &["v1beta", "v1"];

    #[test]
    fn harmless_paths_keep_or_gain_their_canonical_form() {
        let cases = [
            (OPENAI, "/v1/chat/completions", "/v1/chat/completions"),
            (OPENAI, "/v1/chat/complet%69ons", "/v1/chat/completions"),
            (OPENAI, "/v1/%63hat/completions", "/v1/chat/completions"),
            (OPENAI, "/%76%31/responses", "/v1/responses"),
            (OPENAI, "/v1/models/gpt-4o-mini", "/v1/models/gpt-4o-mini"),
            (OPENAI, "/v1/files/a%20b", "/v1/files/a%20b"),
            (OPENAI, "/v1/files/a%2a", "/v1/files/a%2A"),
            (
                OPENAI,
                "/v1/models/ft:gpt-4o:org",
                "/v1/models/ft:gpt-4o:org",
            ),
            (
                GEMINI,
                "/v1beta/models/gemini-2.5-flash:generateContent",
                "/v1beta/models/gemini-2.5-flash:generateContent",
            ),
            (
                GEMINI,
                "/v1beta/models/gemini-2.5-flash%3AgenerateContent",
                "/v1beta/models/gemini-2.5-flash:generateContent",
            ),
            (
                GEMINI,
                "/v1/models/gemini-2.5-flash:streamGenerateContent",
                "/v1/models/gemini-2.5-flash:streamGenerateContent",
            ),
        ];
        for (versions, raw, canonical) in cases {
            assert_eq!(
                canonical_path(raw, versions).as_deref(),
                Ok(canonical),
                "{raw}"
            );
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        use PathRefusal::*;
        let cases = [
            (OPENAI, "/v1/x/../chat/completions", DotSegment),
            (OPENAI, "/v1/./chat/completions", DotSegment),
            (OPENAI, "/v1/x/%2e%2e/chat/completions", DotSegment),
            (OPENAI, "/v1/x/.%2E/chat/completions", DotSegment),
            (OPENAI, "/v1/%2e/chat/completions", DotSegment),
            (OPENAI, "/v1/../../admin", DotSegment),
            (OPENAI, "/v1/..", DotSegment),
            (OPENAI, "/v1//chat/completions", EmptySegment),
            (OPENAI, "/v1/chat/completions/", EmptySegment),
            (OPENAI, "/v1/chat\\completions", Backslash),
            (OPENAI, "/v1/chat%5ccompletions", Backslash),
            (OPENAI, "/v1/chat%2Fcompletions", EncodedSlash),
            (OPENAI, "/v1/chat%2fcompletions", EncodedSlash),
            (OPENAI, "/v1/chat%00completions", ControlCharacter),
            (OPENAI, "/v1/chat%0d%0acompletions", ControlCharacter),
            (OPENAI, "/v1/chat%7Fcompletions", ControlCharacter),
            (OPENAI, "/v1/chat%zzcompletions", BadPercentEncoding),
            (OPENAI, "/v1/chat%2", BadPercentEncoding),
            (OPENAI, "/v2/chat/completions", OutsideVersion),
            (OPENAI, "/admin", OutsideVersion),
            (OPENAI, "/v1", OutsideVersion),
            (OPENAI, "", OutsideVersion),
            (OPENAI, "v1/chat/completions", OutsideVersion),
            (OPENAI, "/api/v1/status", OutsideVersion),
            (GEMINI, "/v1beta/models/../../v1/models", DotSegment),
            (GEMINI, "/v1alpha/models", OutsideVersion),
            (GEMINI, "/upload/v1beta/files", OutsideVersion),
        ];
        for (versions, raw, why) in cases {
            assert_eq!(canonical_path(raw, versions), Err(why), "{raw}");
        }
        let long = format!("/v1/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(canonical_path(&long, OPENAI), Err(TooLong));
    }

    #[test]
    fn a_canonical_path_is_its_own_canonical_form() {
        for raw in ["/v1/chat/complet%69ons", "/v1/files/a%2a%20", "/v1/a:b%3a"] {
            let once = canonical_path(raw, OPENAI).unwrap();
            assert_eq!(canonical_path(&once, OPENAI).unwrap(), once);
        }
    }
}
