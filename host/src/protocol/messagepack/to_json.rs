//! MessagePack value -> JSON text, for everything a MessagePack client sends to a plugin.
//!
//! Mapping (plugins only see JSON):
//! - nil -> `null`; booleans; every integer format -> the exact decimal integer (u64 and i64 range
//!   kept); float 32/64 -> the shortest JSON number that reads back as the same float (`1.5`,
//!   `3.0`, `1e300`), NaN and infinities -> `null` (as JSON.stringify does).
//! - str -> JSON string (must be UTF-8).
//! - bin -> base64 string, standard alphabet with padding: that is the JSON form of `byte[]`
//!   in ASP.NET (System.Text.Json) and what a .NET hub method bound over JSON would receive.
//! - timestamp extension (type -1) -> ISO-8601 UTC string, `2024-01-02T03:04:05Z` or with a
//!   fraction trimmed of trailing zeros (`.5`, `.123`, `.123456789`); that is how a DateTime
//!   looks in JSON, and JS `Date` parses it. Years outside 0000–9999 use the expanded form
//!   `+010000` / `-000001`.
//! - arrays -> arrays; maps -> objects whose keys become strings: str keys as they are,
//!   integers/floats/booleans/nil as their JSON text (`1` -> `"1"`, like JS property keys),
//!   bin as base64. Array, map and extension keys are refused.
//! - any other extension type is refused (`Unsupported MessagePack extension type N.`), rather
//!   than inventing a JSON shape for it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::super::escape::{push_f32, push_f64, push_i64, push_json_string, push_u64};
use super::super::{Json, ProtocolError, RawValue};
use super::decode::{MAX_DEPTH, Reader, Token, too_deep, truncated, utf8};

/// Reads one value from `reader` and appends its JSON text to `out`.
pub(crate) fn value_to_json(
    reader: &mut Reader<'_>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), ProtocolError> {
    let token = reader.next()?;
    match token {
        Token::Array(_) | Token::Map(_) if depth >= MAX_DEPTH => return Err(too_deep()),
        Token::Array(n) => {
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                value_to_json(reader, out, depth + 1)?;
            }
            out.push(b']');
        }
        Token::Map(n) => {
            out.push(b'{');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                key_to_json(reader.next()?, out)?;
                out.push(b':');
                value_to_json(reader, out, depth + 1)?;
            }
            out.push(b'}');
        }
        scalar => scalar_to_json(scalar, out)?,
    }
    Ok(())
}

/// The JSON text [`value_to_json`] wrote, as a [`Json`] value. It is UTF-8 by construction:
/// ASCII, validated MessagePack strings and serde_json's escapes.
pub(crate) fn into_raw(text: Vec<u8>) -> Result<Json, ProtocolError> {
    let text = String::from_utf8(text).map_err(|e| ProtocolError::InvalidJson(e.to_string()))?;
    RawValue::from_string(text).map_err(|e| ProtocolError::InvalidJson(e.to_string()))
}

/// Appends the JSON text of a token that is not an array or map header.
fn scalar_to_json(token: Token<'_>, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match token {
        Token::Nil => out.extend_from_slice(b"null"),
        Token::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Token::UInt(v) => push_u64(out, v),
        Token::Int(v) => push_i64(out, v),
        Token::F32(v) => push_f32(out, v),
        Token::F64(v) => push_f64(out, v),
        Token::Str(bytes) => push_json_string(out, utf8(bytes)?),
        Token::Bin(bytes) => {
            out.push(b'"');
            push_base64(out, bytes);
            out.push(b'"');
        }
        Token::Ext(-1, data) => {
            out.push(b'"');
            push_timestamp(out, data)?;
            out.push(b'"');
        }
        Token::Ext(ty, _) => {
            return Err(ProtocolError::InvalidMessage(format!(
                "Unsupported MessagePack extension type {ty}."
            )));
        }
        Token::Array(_) | Token::Map(_) => return Err(truncated()),
    }
    Ok(())
}

fn key_to_json(key: Token<'_>, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match key {
        Token::Str(bytes) => push_json_string(out, utf8(bytes)?),
        Token::Bin(_) | Token::Ext(-1, _) => scalar_to_json(key, out)?,
        Token::Nil
        | Token::Bool(_)
        | Token::UInt(_)
        | Token::Int(_)
        | Token::F32(_)
        | Token::F64(_) => {
            // Their JSON text (digits, `-`, `.`, `e`, letters) needs no escaping as a string.
            out.push(b'"');
            scalar_to_json(key, out)?;
            out.push(b'"');
        }
        other => {
            return Err(ProtocolError::InvalidMessage(format!(
                "A MessagePack map key of type {} cannot become a JSON property name.",
                other.kind()
            )));
        }
    }
    Ok(())
}

// === base64 ===

/// Standard base64 (RFC 4648 section 4) with `=` padding.
pub(crate) fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    // 4 bytes for every 3 started; the length of a MessagePack bin (below 4 GiB) cannot overflow.
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = match out.get_mut(start..) {
        Some(slot) => STANDARD.encode_slice(bytes, slot).unwrap_or(0),
        None => 0,
    };
    out.truncate(start + written);
}

// === timestamp ===

/// Decodes the timestamp extension's 4-, 8- or 12-byte payload into (seconds, nanoseconds).
pub(crate) fn decode_timestamp(data: &[u8]) -> Result<(i64, u32), ProtocolError> {
    let bad = || ProtocolError::InvalidMessagePack("Invalid timestamp extension.".into());
    let (secs, nanos) = match data.len() {
        4 => {
            let secs: [u8; 4] = data.try_into().map_err(|_| bad())?;
            (i64::from(u32::from_be_bytes(secs)), 0)
        }
        8 => {
            let word: [u8; 8] = data.try_into().map_err(|_| bad())?;
            let word = u64::from_be_bytes(word);
            ((word & 0x3_ffff_ffff) as i64, (word >> 34) as u32)
        }
        12 => {
            let nanos: [u8; 4] = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            let secs: [u8; 8] = data
                .get(4..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            (i64::from_be_bytes(secs), u32::from_be_bytes(nanos))
        }
        _ => return Err(bad()),
    };
    if nanos >= 1_000_000_000 {
        return Err(bad());
    }
    Ok((secs, nanos))
}

/// Appends `YYYY-MM-DDTHH:MM:SS[.fraction]Z` for a timestamp payload.
pub(crate) fn push_timestamp(out: &mut Vec<u8>, data: &[u8]) -> Result<(), ProtocolError> {
    let (secs, nanos) = decode_timestamp(data)?;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if (0..=9999).contains(&year) {
        push_padded(out, year.unsigned_abs(), 4);
    } else {
        out.push(if year < 0 { b'-' } else { b'+' });
        push_padded(out, year.unsigned_abs(), 6);
    }
    out.push(b'-');
    push_padded(out, u64::from(month), 2);
    out.push(b'-');
    push_padded(out, u64::from(day), 2);
    out.push(b'T');
    push_padded(out, (of_day / 3600) as u64, 2);
    out.push(b':');
    push_padded(out, (of_day / 60 % 60) as u64, 2);
    out.push(b':');
    push_padded(out, (of_day % 60) as u64, 2);
    if nanos > 0 {
        let mut fraction = nanos;
        let mut width = 9;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        out.push(b'.');
        push_padded(out, u64::from(fraction), width);
    }
    out.push(b'Z');
    Ok(())
}

fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    for _ in digits.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(digits.as_bytes());
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`). Cannot overflow for any `secs / 86400`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
