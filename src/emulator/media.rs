//! What the emulator can learn from an attached image or PDF without decoding it: the
//! image's pixel size from its header (PNG, JPEG, GIF, WebP) and a PDF's page count. Each
//! provider turns these into tokens by its own published rule.

use base64::Engine;

/// Pixel size assumed when an image cannot be read (a URL, or an unknown format).
pub const UNKNOWN_IMAGE: (u32, u32) = (1024, 1024);

/// Media attached by value: its MIME type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inline {
    pub mime: String,
    pub bytes: Vec<u8>,
}

impl Inline {
    pub fn from_base64(mime: &str, data: &str) -> Option<Inline> {
        // Clients use either alphabet (google-genai sends URL-safe base64).
        let data = data.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data))
            .ok()?;
        Some(Inline {
            mime: mime.to_ascii_lowercase(),
            bytes,
        })
    }

    /// `data:<mime>;base64,<data>`; None for other URLs.
    pub fn from_data_url(url: &str) -> Option<Inline> {
        let rest = url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        Inline::from_base64(mime, data)
    }

    pub fn is_pdf(&self) -> bool {
        self.mime == "application/pdf" || self.bytes.starts_with(b"%PDF")
    }

    /// The image's size, or [`UNKNOWN_IMAGE`] when its header cannot be read.
    pub fn image_size(&self) -> (u32, u32) {
        image_size(&self.bytes).unwrap_or(UNKNOWN_IMAGE)
    }
}

/// Width and height from a PNG, GIF, JPEG or WebP header.
pub fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let le16 = |at: usize| -> Option<u32> {
        Some(u32::from(u16::from_le_bytes(
            b.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return webp_size(b);
    }
    if b.starts_with(&[0xFF, 0xD8]) {
        return jpeg_size(b);
    }
    None
}

fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    let le24 = |at: usize| -> Option<u32> {
        let s = b.get(at..at + 3)?;
        Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
    };
    match b.get(12..16)? {
        b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
        b"VP8L" => {
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8 " => {
            let w = u16::from_le_bytes(b.get(26..28)?.try_into().ok()?) & 0x3FFF;
            let h = u16::from_le_bytes(b.get(28..30)?.try_into().ok()?) & 0x3FFF;
            Some((u32::from(w), u32::from(h)))
        }
        _ => None,
    }
}

/// Walks JPEG segments to the first start-of-frame marker, which holds the size.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        while *b.get(at)? != 0xFF {
            at += 1;
        }
        while *b.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *b.get(at)?;
        let length = usize::from(u16::from_be_bytes(b.get(at + 1..at + 3)?.try_into().ok()?));
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let h = u16::from_be_bytes(b.get(at + 4..at + 6)?.try_into().ok()?);
            let w = u16::from_be_bytes(b.get(at + 6..at + 8)?.try_into().ok()?);
            return Some((u32::from(w), u32::from(h)));
        }
        at += 1 + length;
    }
}

/// The pages of a PDF: its `/Type /Page` objects (not `/Pages`), at least one.
pub fn pdf_pages(b: &[u8]) -> u32 {
    let mut pages = 0u32;
    let mut i = 0;
    while let Some(found) = find(&b[i..], b"/Type") {
        let mut j = i + found + 5;
        while b.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
            j += 1;
        }
        let page = b.get(j..j + 5) == Some(b"/Page");
        let pages_tree = b.get(j + 5) == Some(&b's');
        if page && !pages_tree {
            pages += 1;
        }
        i = j;
    }
    pages.max(1)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `a / b` rounded up (0 when `b` is 0).
pub fn ceil_div(a: u32, b: u32) -> u32 {
    if b == 0 { 0 } else { a.div_ceil(b) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b
    }

    #[test]
    fn reads_image_sizes() {
        assert_eq!(image_size(&png(640, 480)), Some((640, 480)));
        assert_eq!(image_size(b"GIF89a\x10\x00\x20\x00"), Some((16, 32)));
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01,
            0x00, 0x02, 0x00,
        ];
        assert_eq!(image_size(&jpeg), Some((512, 256)));
        assert_eq!(image_size(b"nope"), None);
    }

    #[test]
    fn reads_data_urls_and_counts_pdf_pages() {
        let url = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png(3, 4))
        );
        assert_eq!(Inline::from_data_url(&url).unwrap().image_size(), (3, 4));
        let pdf = b"%PDF-1.4 /Type /Pages /Count 2 /Type /Page /Type/Page";
        assert_eq!(pdf_pages(pdf), 2);
        assert_eq!(pdf_pages(b"garbage"), 1);
    }
}
