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

/// The first `\uXXXX` escape in valid JSON text that is half of a UTF-16 surrogate pair without
/// its other half (`"\ud800"`), as its code unit. Such a string is not Unicode text: it cannot be
/// read as a string, nor carried by MessagePack, whose str must be UTF-8.
pub(crate) fn lone_surrogate(json: &str) -> Option<u16> {
    if !json.contains("\\u") {
        return None;
    }
    let bytes = json.as_bytes();
    let hex = |at: usize| -> Option<u16> {
        let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let is_high = |unit: u16| (0xd800..0xdc00).contains(&unit);
    let is_low = |unit: u16| (0xdc00..0xe000).contains(&unit);
    let mut from = 0;
    while let Some(offset) = bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        let at = from + offset;
        // In valid JSON a backslash always starts an escape: skip it whole, so that an escaped
        // backslash followed by the letter u is not taken for a `\u`.
        from = at + 2;
        if bytes.get(at + 1) != Some(&b'u') {
            continue;
        }
        let Some(unit) = hex(at + 2) else { continue };
        from = at + 6;
        if is_low(unit) {
            return Some(unit);
        }
        if is_high(unit) {
            let low = match bytes.get(at + 6..at + 8) {
                Some(b"\\u") => hex(at + 8),
                _ => None,
            };
            if !low.is_some_and(is_low) {
                return Some(unit);
            }
            from = at + 12;
        }
    }
    None
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
    fn finds_lone_surrogates_only() {
        for (text, lone) in [
            (r#""plain""#, None),
            (r#"["\ud83d\ude00", "\u00e9", "\uffff"]"#, None),
            (r#""\uD83D\uDE00""#, None),
            (r#""\\ud800""#, None),
            (r#""\\\\ud800""#, None),
            (r#""\ud800""#, Some(0xd800)),
            (r#""\uDBFF ""#, Some(0xdbff)),
            (r#""\udc00""#, Some(0xdc00)),
            (r#""\ud800\u0041""#, Some(0xd800)),
            (r#""\ud800\ud800""#, Some(0xd800)),
            (r#""\udc00\ud800""#, Some(0xdc00)),
            (r#"{"\ud83d\ude00":"x\\\udfff"}"#, Some(0xdfff)),
        ] {
            assert_eq!(lone_surrogate(text), lone, "{text}");
            // serde_json agrees on whether the text is readable as strings.
            let readable = serde_json::from_str::<serde_json::Value>(text).is_ok();
            assert_eq!(readable, lone.is_none(), "{text}");
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
