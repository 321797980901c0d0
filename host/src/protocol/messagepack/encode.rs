//! MessagePack primitives written into a `Vec<u8>`, always in the smallest format (as `rmp`
//! and ASP.NET's writer do). Infallible except for lengths over `u32::MAX`.

use super::super::ProtocolError;

pub(crate) fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

pub(crate) fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.push(if value { 0xc3 } else { 0xc2 });
}

pub(crate) fn write_uint(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8);
    } else if let Ok(v) = u8::try_from(value) {
        out.extend_from_slice(&[0xcc, v]);
    } else if let Ok(v) = u16::try_from(value) {
        out.push(0xcd);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(0xce);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub(crate) fn write_int(out: &mut Vec<u8>, value: i64) {
    if let Ok(v) = u64::try_from(value) {
        write_uint(out, v);
    } else if value >= -32 {
        out.push(value as u8);
    } else if let Ok(v) = i8::try_from(value) {
        out.push(0xd0);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i16::try_from(value) {
        out.push(0xd1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(value) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub(crate) fn write_f64(out: &mut Vec<u8>, value: f64) {
    out.push(0xcb);
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn too_long() -> ProtocolError {
    ProtocolError::InvalidMessage("A value is too long for MessagePack.".into())
}

pub(crate) fn write_str(out: &mut Vec<u8>, value: &str) -> Result<(), ProtocolError> {
    let len = u32::try_from(value.len()).map_err(|_| too_long())?;
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if let Ok(n) = u8::try_from(len) {
        out.extend_from_slice(&[0xd9, n]);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

/// Array or map header: `fix` is 0x90 (array) or 0x80 (map).
pub(crate) fn header_bytes(fix: u8, len: u32) -> ([u8; 5], usize) {
    let (b16, b32) = if fix == 0x90 {
        (0xdc, 0xdd)
    } else {
        (0xde, 0xdf)
    };
    let mut bytes = [0u8; 5];
    if len < 16 {
        bytes[0] = fix | len as u8;
        (bytes, 1)
    } else if let Ok(n) = u16::try_from(len) {
        let [hi, lo] = n.to_be_bytes();
        bytes[..3].copy_from_slice(&[b16, hi, lo]);
        (bytes, 3)
    } else {
        bytes[0] = b32;
        bytes[1..].copy_from_slice(&len.to_be_bytes());
        (bytes, 5)
    }
}

pub(crate) fn write_array_len(out: &mut Vec<u8>, len: usize) -> Result<(), ProtocolError> {
    write_header(out, 0x90, len)
}

pub(crate) fn write_map_len(out: &mut Vec<u8>, len: usize) -> Result<(), ProtocolError> {
    write_header(out, 0x80, len)
}

/// An array or map header ([`header_bytes`]) of `len` items.
fn write_header(out: &mut Vec<u8>, fix: u8, len: usize) -> Result<(), ProtocolError> {
    let len = u32::try_from(len).map_err(|_| too_long())?;
    let (bytes, n) = header_bytes(fix, len);
    out.extend_from_slice(bytes.get(..n).unwrap_or_default());
    Ok(())
}
