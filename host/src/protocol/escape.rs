//! JSON string escaping straight into the output buffer, infallible and allocation-free.
//!
//! The output is byte-for-byte what `serde_json::to_string(&str)` produces (the tests check it),
//! so every JSON text Switchboard writes escapes strings the same way.

/// Something JSON text can be appended to: the wire buffer (`Vec<u8>`) or a `String`.
pub(crate) trait Sink {
    fn push_text(&mut self, s: &str);
}

impl Sink for Vec<u8> {
    fn push_text(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl Sink for String {
    fn push_text(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// Appends `s` as a quoted, escaped JSON string.
pub(crate) fn push_json_string<S: Sink>(out: &mut S, s: &str) {
    out.push_text("\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so `start..i` and `i + 1..` are char boundaries.
        out.push_text(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            push_unicode_escape(out, b);
        } else {
            out.push_text(escape);
        }
        start = i + 1;
    }
    out.push_text(s.get(start..).unwrap_or_default());
    out.push_text("\"");
}

fn push_unicode_escape<S: Sink>(out: &mut S, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
    let lo = HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0');
    let text = [b'\\', b'u', b'0', b'0', hi, lo];
    out.push_text(std::str::from_utf8(&text).unwrap_or_default());
}

/// Appends the decimal digits of `n`.
pub(crate) fn push_u64<S: Sink>(out: &mut S, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        if let Some(slot) = digits.get_mut(at) {
            *slot = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.push_text(std::str::from_utf8(digits.get(at..).unwrap_or_default()).unwrap_or_default());
}

/// Appends the decimal digits of `n`, with a `-` when negative.
pub(crate) fn push_i64<S: Sink>(out: &mut S, n: i64) {
    if n < 0 {
        out.push_text("-");
    }
    push_u64(out, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    #[test]
    fn matches_serde_json_for_every_ascii_byte() {
        for b in 0u8..=0x7f {
            let s = String::from(char::from(b));
            assert_eq!(
                escaped(&s),
                serde_json::to_string(&s).expect("string"),
                "byte {b:#x}"
            );
        }
    }

    #[test]
    fn matches_serde_json_for_mixed_text() {
        let samples = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "line\nfeed\r\ttab\u{8}\u{c}",
            "\u{0}\u{1f}\u{1e}",
            "héllo wörld ✓ 😀 \u{2028}\u{2029}",
            "\"\"\\\\",
        ];
        for s in samples {
            assert_eq!(escaped(s), serde_json::to_string(s).expect("string"));
            let mut bytes = Vec::new();
            push_json_string(&mut bytes, s);
            assert_eq!(bytes, serde_json::to_vec(s).expect("string"));
        }
    }

    #[test]
    fn numbers() {
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for n in [0i64, -1, 1, i64::MIN, i64::MAX, -987654321] {
            let mut out = String::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
