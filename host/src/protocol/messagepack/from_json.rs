//! JSON text -> MessagePack, for everything a plugin sends to a MessagePack client.
//!
//! Mapping: `null` -> nil, booleans, integers that fit i64/u64 -> the smallest int/uint format,
//! every other number -> float 64, strings -> str, arrays -> array, objects -> map with str keys
//! (in input order).
//!
//! The input is a [`RawValue`], so it is already valid JSON; this is a single forward pass over
//! its text with an explicit stack (no recursion, so no depth limit and no stack risk), writing
//! straight into the output. Array and map headers get a 5-byte placeholder that shrinks once the
//! item count is known. Numbers are parsed with `std` (correctly rounded): serde_json's default
//! float parser may be one ULP off, which would change doubles on their way to the client.

use serde_json::value::RawValue;

use super::super::{ProtocolError, marked};
use super::encode::{
    header_bytes, too_long, write_bool, write_f64, write_int, write_nil, write_str, write_uint,
};

/// Appends the MessagePack form of one JSON value; on error `out` is unchanged.
pub fn json_to_msgpack(json: &RawValue, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    json_to_msgpack_with(json, out, Markers::Check)
}

/// Where [`json_to_msgpack_with`] looks for `$binary` / `$date` markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markers {
    /// Only in text that may hold one (what [`json_to_msgpack`] does): a payload without `"$`
    /// is converted without looking at its objects.
    Check,
    /// Nowhere: every object is a map.
    Never,
    /// At every object, whatever the text holds.
    Always,
}

/// [`json_to_msgpack`] with a choice of where markers are looked for, so the benchmarks can
/// weigh the marker check against the plain conversion and against looking everywhere.
pub fn json_to_msgpack_with(
    json: &RawValue,
    out: &mut Vec<u8>,
    markers: Markers,
) -> Result<(), ProtocolError> {
    let start = out.len();
    let result = Converter {
        text: json.get(),
        pos: 0,
        marked: match markers {
            Markers::Check => marked::may_have_markers(json.get()),
            Markers::Never => false,
            Markers::Always => true,
        },
        out: &mut *out,
    }
    .run();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// An open array or map.
struct Open {
    /// Where its 5-byte header placeholder starts.
    header_at: usize,
    /// Items (arrays) or pairs (maps) written so far.
    count: usize,
    is_map: bool,
}

struct Converter<'t, 'o> {
    text: &'t str,
    pos: usize,
    /// Whether the text may hold `$binary` / `$date` markers (see `marked`).
    marked: bool,
    out: &'o mut Vec<u8>,
}

fn syntax() -> ProtocolError {
    ProtocolError::InvalidJson("malformed JSON value".into())
}

impl Converter<'_, '_> {
    fn run(mut self) -> Result<(), ProtocolError> {
        let mut stack: Vec<Open> = Vec::new();
        'value: loop {
            // A value starts here.
            self.skip_whitespace();
            match self.peek() {
                Some(b'{') if self.marked && self.marker() => {}
                Some(b'[') => {
                    self.pos += 1;
                    stack.push(self.open(false));
                    self.skip_whitespace();
                    if self.peek() != Some(b']') {
                        continue 'value;
                    }
                    self.pos += 1;
                    self.close(stack.pop())?;
                }
                Some(b'{') => {
                    self.pos += 1;
                    stack.push(self.open(true));
                    self.skip_whitespace();
                    if self.peek() != Some(b'}') {
                        self.key()?;
                        continue 'value;
                    }
                    self.pos += 1;
                    self.close(stack.pop())?;
                }
                _ => self.scalar()?,
            }
            // A value just ended: continue or close its container(s).
            loop {
                let Some(top) = stack.last_mut() else {
                    self.skip_whitespace();
                    return if self.pos == self.text.len() {
                        Ok(())
                    } else {
                        Err(syntax())
                    };
                };
                top.count += 1;
                let is_map = top.is_map;
                self.skip_whitespace();
                match (self.peek(), is_map) {
                    (Some(b','), _) => {
                        self.pos += 1;
                        if is_map {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (Some(b']'), false) | (Some(b'}'), true) => {
                        self.pos += 1;
                        self.close(stack.pop())?;
                    }
                    _ => return Err(syntax()),
                }
            }
        }
    }

    /// Writes the marked value (bin, timestamp) whose object starts here, if it is one.
    fn marker(&mut self) -> bool {
        match marked::write_msgpack(self.text, self.pos, self.out) {
            Some(end) => {
                self.pos = end;
                true
            }
            None => false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn open(&mut self, is_map: bool) -> Open {
        let header_at = self.out.len();
        self.out.extend_from_slice(&[0; 5]);
        Open {
            header_at,
            count: 0,
            is_map,
        }
    }

    /// Writes the real header over the placeholder and closes the gap.
    fn close(&mut self, open: Option<Open>) -> Result<(), ProtocolError> {
        let open = open.ok_or_else(syntax)?;
        let len = u32::try_from(open.count).map_err(|_| too_long())?;
        let (bytes, n) = header_bytes(if open.is_map { 0x80 } else { 0x90 }, len);
        let start = open.header_at;
        let header = self.out.get_mut(start..start + n).ok_or_else(syntax)?;
        header.copy_from_slice(bytes.get(..n).unwrap_or_default());
        if n < 5 {
            let end = self.out.len();
            self.out.copy_within(start + 5..end, start + n);
            self.out.truncate(end - (5 - n));
        }
        Ok(())
    }

    /// An object key and its `:`.
    fn key(&mut self) -> Result<(), ProtocolError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(syntax());
        }
        self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(syntax());
        }
        self.pos += 1;
        Ok(())
    }

    fn scalar(&mut self) -> Result<(), ProtocolError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'n') => self.literal("null", write_nil),
            Some(b't') => self.literal("true", |out| write_bool(out, true)),
            Some(b'f') => self.literal("false", |out| write_bool(out, false)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(syntax()),
        }
    }

    fn literal(
        &mut self,
        word: &str,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), ProtocolError> {
        let rest = self.text.get(self.pos..).ok_or_else(syntax)?;
        if !rest.starts_with(word) {
            return Err(syntax());
        }
        self.pos += word.len();
        write(self.out);
        Ok(())
    }

    /// A quoted string at `pos`, unescaped and written as str.
    fn string(&mut self) -> Result<(), ProtocolError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut at = start + 1;
        let mut escaped = false;
        loop {
            match bytes.get(at) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    at += 2;
                }
                Some(_) => at += 1,
                None => return Err(syntax()),
            }
        }
        self.pos = at + 1;
        if escaped {
            let lexeme = self.text.get(start..at + 1).ok_or_else(syntax)?;
            let text: String = serde_json::from_str(lexeme)
                .map_err(|e| ProtocolError::InvalidJson(e.to_string()))?;
            write_str(self.out, &text)
        } else {
            // Quotes are ASCII, so these are char boundaries.
            let text = self.text.get(start + 1..at).ok_or_else(syntax)?;
            write_str(self.out, text)
        }
    }

    fn number(&mut self) -> Result<(), ProtocolError> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.pos += 1;
        }
        let lexeme = self.text.get(start..self.pos).ok_or_else(syntax)?;
        if !lexeme.contains(['.', 'e', 'E']) {
            if let Ok(v) = lexeme.parse::<u64>() {
                write_uint(self.out, v);
                return Ok(());
            }
            if let Ok(v) = lexeme.parse::<i64>() {
                write_int(self.out, v);
                return Ok(());
            }
        }
        let v: f64 = lexeme.parse().map_err(|_| syntax())?;
        write_f64(self.out, v);
        Ok(())
    }
}
