//! JSON text pieces appended straight to the output buffer: strings escaped by serde_json,
//! integers by `itoa`, floats by serde_json. Every JSON text
//! Switchboard writes therefore spells strings and numbers exactly as `serde_json::to_vec` does
//! (the tests here and in `wire_bytes_tests` check it byte for byte).

/// Appends `s` as a quoted, escaped JSON string.
pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a `str` into a `Vec` cannot fail: there is no I/O error to meet, and nothing
    // in a string that serde_json refuses.
    let _ = serde_json::to_writer(&mut *out, s);
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
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends the decimal digits of `n`, with a `-` when negative.
pub(crate) fn push_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends the shortest JSON number that reads back as `v` (`1.5`, `3.0`, `1e+300`), as
/// serde_json writes it, or `null` for NaN and the infinities (as JSON.stringify does).
pub(crate) fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        // A finite float into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &v);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// [`push_f64`] for a 32-bit float: the shortest text that reads back as the same `f32`.
pub(crate) fn push_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &v);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The escaping rule, one character at a time, written independently of any JSON library:
/// `"` and `\` get a backslash, the seven short escapes are used where they exist, every other
/// C0 control is `\u00XX` in lowercase hex, and everything else (DEL, non-ASCII) is verbatim.
#[cfg(test)]
pub(crate) fn spec_escape(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, s);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn escapes_every_ascii_character_by_the_rule() {
        for b in 0u8..=0x7f {
            let s = String::from(char::from(b));
            assert_eq!(escaped(&s), spec_escape(&s), "byte {b:#x}");
        }
    }

    #[test]
    fn escapes_mixed_text_by_the_rule() {
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
            assert_eq!(escaped(s), spec_escape(s), "{s:?}");
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
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for n in [0i64, -1, 1, i64::MIN, i64::MAX, -987654321] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for v in [
            0.0f64,
            -0.0,
            1.5,
            3.0,
            0.1,
            1e300,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut out = Vec::new();
            push_f64(&mut out, v);
            assert_eq!(out, serde_json::to_vec(&v).expect("finite"), "{v}");
        }
        for v in [0.1f32, 3.0, 16777216.0, f32::MAX, f32::MIN_POSITIVE] {
            let mut out = Vec::new();
            push_f32(&mut out, v);
            assert_eq!(out, serde_json::to_vec(&v).expect("finite"), "{v}");
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut out = Vec::new();
            push_f64(&mut out, v);
            assert_eq!(out, b"null");
        }
    }
}
