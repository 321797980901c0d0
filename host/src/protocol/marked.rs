//! MessagePack types in a plugin's JSON: binary data and timestamps, marked.
//!
//! Plugins speak JSON, which has neither. What a MessagePack client sends as bin reaches a plugin
//! as a base64 string and a timestamp (extension -1) as an ISO 8601 UTC string (see
//! `messagepack/to_json.rs`), just as a JSON client would send them. Going out, a plugin marks a
//! value with a one-key object, as MongoDB's extended JSON does:
//!
//! - `{"$binary":"<base64>"}`: standard alphabet, padded;
//! - `{"$date":"<ISO 8601>"}`: `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `±HH:MM`, at most
//!   nine fraction digits (years beyond 0000-9999 as `+YYYYYY` / `-YYYYYY`).
//!
//! A MessagePack client gets bin and a timestamp extension for them, a JSON client the plain
//! string (the base64 as written; the date in UTC, `2024-01-02T03:04:05.5Z`, as ASP.NET writes a
//! `DateTime` and as a timestamp from a MessagePack client reads). Exactly that shape is a marker:
//! the key written literally, the value a string without escapes that decodes; any other object,
//! including one with more keys or a value that does not decode, goes out as it is.
//!
//! Payloads without `"$` are not walked at all ([`may_have_markers`]), so unmarked values keep
//! the plain copy (JSON) or the single conversion pass (MessagePack).

use base64::Engine;
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

use super::messagepack;

/// Whether `json` may hold a marker: a cheap substring search that rules out nearly every
/// payload before any walk.
pub(crate) fn may_have_markers(json: &str) -> bool {
    json.contains("\"$")
}

/// A marked value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marked<'a> {
    /// The bytes, and the base64 text they came from.
    Binary(Vec<u8>, &'a str),
    /// Seconds and nanoseconds since the Unix epoch, UTC.
    Date(i64, u32),
}

/// The marker object starting at `pos` (its `{`), and where it ends; none when the object there
/// is not exactly a marker.
fn marker_at(text: &str, pos: usize) -> Option<(Marked<'_>, usize)> {
    let bytes = text.as_bytes();
    let mut at = pos;
    let expect = |at: &mut usize, token: &[u8]| -> Option<()> {
        skip_whitespace(bytes, at);
        let end = at.checked_add(token.len())?;
        (bytes.get(*at..end)? == token).then(|| *at = end)
    };
    expect(&mut at, b"{")?;
    skip_whitespace(bytes, &mut at);
    let binary = match bytes.get(at..)? {
        rest if rest.starts_with(b"\"$binary\"") => true,
        rest if rest.starts_with(b"\"$date\"") => false,
        _ => return None,
    };
    at += if binary { 9 } else { 7 };
    expect(&mut at, b":")?;
    expect(&mut at, b"\"")?;
    let start = at;
    let len = bytes.get(start..)?.iter().position(|&b| b == b'"')?;
    let value = text.get(start..start + len)?;
    if value.contains('\\') {
        return None;
    }
    at = start + len + 1;
    expect(&mut at, b"}")?;
    let marked = if binary {
        let data = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        Marked::Binary(data, value)
    } else {
        let (secs, nanos) = parse_iso8601(value)?;
        Marked::Date(secs, nanos)
    };
    Some((marked, at))
}

fn skip_whitespace(bytes: &[u8], at: &mut usize) {
    while matches!(bytes.get(*at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        *at += 1;
    }
}

/// Appends `json` for a JSON client: each marker becomes its plain string.
pub fn push_json(out: &mut Vec<u8>, json: &str) {
    if !may_have_markers(json) {
        out.extend_from_slice(json.as_bytes());
        return;
    }
    push_json_walked(out, json);
}

/// [`push_json`] without the check that spares payloads without `"$` the walk: public for the
/// benchmarks, which weigh the two.
pub fn push_json_walked(out: &mut Vec<u8>, json: &str) {
    let bytes = json.as_bytes();
    // Copied in runs: from `copied` up to where a marker starts.
    let mut copied = 0;
    let mut at = 0;
    let mut in_string = false;
    while let Some(&b) = bytes.get(at) {
        if in_string {
            match b {
                b'\\' => at += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{'
            && let Some((marked, end)) = marker_at(json, at)
        {
            out.extend_from_slice(bytes.get(copied..at).unwrap_or_default());
            out.push(b'"');
            match marked {
                Marked::Binary(_, text) => out.extend_from_slice(text.as_bytes()),
                Marked::Date(secs, nanos) => {
                    // A payload from `timestamp_payload` always decodes.
                    let _ = messagepack::push_timestamp(out, &timestamp_payload(secs, nanos));
                }
            }
            out.push(b'"');
            copied = end;
            at = end;
            continue;
        }
        at += 1;
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
}

/// Writes the MessagePack form of the marker object at `pos` of `text` (its `{`), if it is one:
/// bin, or the timestamp extension. Returns where the marker ends.
pub(crate) fn write_msgpack(text: &str, pos: usize, out: &mut Vec<u8>) -> Option<usize> {
    let (marked, end) = marker_at(text, pos)?;
    match marked {
        Marked::Binary(data, _) => write_bin(out, &data)?,
        Marked::Date(secs, nanos) => write_timestamp(out, secs, nanos),
    }
    Some(end)
}

/// bin 8/16/32 with `data`; none when it is longer than MessagePack allows.
fn write_bin(out: &mut Vec<u8>, data: &[u8]) -> Option<()> {
    let len = data.len();
    if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[0xc4, len]);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xc5);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        let len = u32::try_from(len).ok()?;
        out.push(0xc6);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(data);
    Some(())
}

/// The timestamp extension (type -1) in its smallest form: timestamp 32, 64 or 96.
fn write_timestamp(out: &mut Vec<u8>, secs: i64, nanos: u32) {
    let payload = timestamp_payload(secs, nanos);
    match payload.len() {
        4 => out.extend_from_slice(&[0xd6, 0xff]),
        8 => out.extend_from_slice(&[0xd7, 0xff]),
        _ => out.extend_from_slice(&[0xc7, 12, 0xff]),
    }
    out.extend_from_slice(&payload);
}

/// The timestamp extension's payload (the MessagePack spec's 4-, 8- or 12-byte forms).
fn timestamp_payload(secs: i64, nanos: u32) -> Vec<u8> {
    if secs >> 34 == 0 {
        let word = (u64::from(nanos) << 34) | secs as u64;
        if word >> 32 == 0 {
            return (word as u32).to_be_bytes().to_vec();
        }
        return word.to_be_bytes().to_vec();
    }
    let mut payload = nanos.to_be_bytes().to_vec();
    payload.extend_from_slice(&secs.to_be_bytes());
    payload
}

/// Reads an ISO 8601 date and time with its offset (`Z` or `±HH:MM`; years past 9999 as
/// `+YYYYYY`) into seconds and nanoseconds since the epoch, UTC; none for anything else or
/// a date that does not exist.
fn parse_iso8601(text: &str) -> Option<(i64, u32)> {
    let at = OffsetDateTime::parse(text, &Iso8601::DEFAULT).ok()?;
    Some((at.unix_timestamp(), at.nanosecond()))
}

#[cfg(test)]
mod tests;
