//! Incremental Server-Sent Events splitting: complete events out of reads that end anywhere.
//!
//! An event ends at a blank line. Lines end in `\n` or `\r\n`, so `\n\n`, `\r\n\r\n` and the
//! mixed forms all end an event. The splitter only ever cuts at those ASCII bytes, so a read
//! that ends in the middle of a multi-byte UTF-8 character is simply held until the rest comes.

use std::borrow::Cow;

/// Splits a byte stream into raw SSE events (each including its terminating blank line).
#[derive(Debug, Default)]
pub struct SseSplitter {
    /// Bytes of the event not yet complete.
    pending: Vec<u8>,
    /// How far `pending` has been searched for a line end already.
    scanned: usize,
}

impl SseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one read and calls `on_event` with every event it completes, in order.
    ///
    /// When nothing is pending, events are cut straight out of `chunk` without copying;
    /// only an unfinished tail is kept.
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(&[u8])) {
        if self.pending.is_empty() {
            let used = split_complete(chunk, 0, &mut on_event);
            self.pending.extend_from_slice(&chunk[used..]);
            self.scanned = 0;
            return;
        }
        // Every line end already in `pending` was checked; the blank-line test looks back, so a
        // `\n\n` split across two reads is still found from the second `\n`.
        let resume = self.scanned;
        self.pending.extend_from_slice(chunk);
        let used = split_complete(&self.pending, resume, &mut on_event);
        self.pending.drain(..used);
        self.scanned = self.pending.len();
    }

    /// The bytes of an event that has started but not ended.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Takes the unfinished tail, leaving the splitter empty (at the end of a stream).
    pub fn take_pending(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.pending)
    }
}

/// Calls `on_event` for each complete event in `buf`, searching for line ends from `from`.
/// Returns how many bytes were handed out.
fn split_complete(buf: &[u8], from: usize, on_event: &mut impl FnMut(&[u8])) -> usize {
    let mut start = 0;
    let mut pos = from;
    while let Some(offset) = buf[pos..].iter().position(|&b| b == b'\n') {
        let nl = pos + offset;
        if ends_blank_line(&buf[start..=nl]) {
            on_event(&buf[start..=nl]);
            start = nl + 1;
        }
        pos = nl + 1;
    }
    start
}

/// Whether `event` (which ends in `\n`) ends with an empty line: `\n\n` or `\n\r\n`,
/// or is itself nothing but an empty line.
fn ends_blank_line(event: &[u8]) -> bool {
    let before = &event[..event.len() - 1];
    let before = before.strip_suffix(b"\r").unwrap_or(before);
    before.is_empty() || before.ends_with(b"\n")
}

/// One parsed event: its `event:` name and its `data:` lines joined by `\n`.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    pub name: Option<&'a str>,
    pub data: Cow<'a, [u8]>,
}

impl SseEvent<'_> {
    /// Whether the event has no data at all (a comment, a keep-alive, a bare blank line).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Parses the `event:` and `data:` fields of one raw event. `data:` may or may not be followed
/// by a space; other fields and comments are ignored.
pub fn parse_event(raw: &[u8]) -> SseEvent<'_> {
    let mut name = None;
    let mut data: Option<Cow<'_, [u8]>> = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = field_value(line, b"data") {
            data = Some(match data {
                None => Cow::Borrowed(value),
                Some(previous) => {
                    let mut joined = previous.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    Cow::Owned(joined)
                }
            });
        } else if let Some(value) = field_value(line, b"event") {
            name = std::str::from_utf8(value).ok();
        }
    }
    SseEvent {
        name,
        data: data.unwrap_or(Cow::Borrowed(&[])),
    }
}

/// `data: x` → `x`; `data:x` → `x`; `data` alone → empty; anything else → `None`.
fn field_value<'a>(line: &'a [u8], field: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(field)?;
    if rest.is_empty() {
        return Some(rest);
    }
    let value = rest.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn split_all(reads: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut splitter = SseSplitter::new();
        let mut events = Vec::new();
        for read in reads {
            splitter.push(read, |e| events.push(e.to_vec()));
        }
        (events, splitter.take_pending())
    }

    #[test]
    fn splits_at_blank_lines_only() {
        let (events, rest) = split_all(&[b"data: a\n\ndata: b\nmore: x\n\ndata: c"]);
        assert_eq!(
            events,
            vec![b"data: a\n\n".to_vec(), b"data: b\nmore: x\n\n".to_vec()]
        );
        assert_eq!(rest, b"data: c");
    }

    #[test]
    fn handles_crlf_and_mixed_line_ends() {
        let (events, rest) = split_all(&[b"data: a\r\n\r\ndata: b\n\r\ndata: c\r\n\n"]);
        assert_eq!(
            events,
            vec![
                b"data: a\r\n\r\n".to_vec(),
                b"data: b\n\r\n".to_vec(),
                b"data: c\r\n\n".to_vec()
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream =
            "event: x\r\ndata: {\"t\":\"héllo ✓\"}\r\n\r\ndata: [DONE]\n\ndata: tail".as_bytes();
        let (whole, whole_rest) = split_all(&[stream]);
        assert_eq!(whole.len(), 2);
        for cut in 0..=stream.len() {
            for cut2 in cut..=stream.len() {
                let (events, rest) =
                    split_all(&[&stream[..cut], &stream[cut..cut2], &stream[cut2..]]);
                assert_eq!(events, whole, "cut at {cut}/{cut2}");
                assert_eq!(rest, whole_rest);
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(split_all(&bytes).0, whole);
    }

    #[test]
    fn a_newline_alone_in_a_read_still_ends_the_event() {
        let (events, _) = split_all(&[b"data: a\n", b"\n", b"data: b\r\n\r", b"\n"]);
        assert_eq!(
            events,
            vec![b"data: a\n\n".to_vec(), b"data: b\r\n\r\n".to_vec()]
        );
    }

    #[test]
    fn parses_names_and_data_with_or_without_a_space() {
        let e = parse_event(b"event: message_start\r\ndata:{\"a\":1}\r\n\r\n");
        assert_eq!(e.name, Some("message_start"));
        assert_eq!(&*e.data, b"{\"a\":1}");
        let e = parse_event(b": comment\ndata: one\ndata: two\n\n");
        assert_eq!(e.name, None);
        assert_eq!(&*e.data, b"one\ntwo");
        assert!(parse_event(b": keep-alive\n\n").is_empty());
        // A field named like a prefix of another is not `data`.
        assert!(parse_event(b"database: x\n\n").is_empty());
    }
}
