//! A bounds-checked MessagePack reader over one message body (a byte slice).
//!
//! Hand-written rather than `rmpv::decode` so that nothing is allocated from a length the peer
//! declared (an array header claiming 4 billion items costs nothing here), strings and binaries
//! are borrowed, and nesting is limited before the stack is at risk.

use super::super::ProtocolError;

/// Deepest nesting of arrays and maps accepted (serde_json's default limit is the same).
pub(crate) const MAX_DEPTH: usize = 128;

/// One MessagePack item. Arrays and maps carry only their length; their items follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Token<'a> {
    Nil,
    Bool(bool),
    /// Positive fixint and `uint 8/16/32/64`.
    UInt(u64),
    /// Negative fixint and `int 8/16/32/64` (which may hold non-negative values too).
    Int(i64),
    F32(f32),
    F64(f64),
    /// `str` bytes, not yet checked to be UTF-8.
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(u32),
    Map(u32),
    Ext(i8, &'a [u8]),
}

impl Token<'_> {
    /// A short name for error texts.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Token::Nil => "Nil",
            Token::Bool(_) => "Boolean",
            Token::UInt(_) | Token::Int(_) => "Integer",
            Token::F32(_) | Token::F64(_) => "Float",
            Token::Str(_) => "String",
            Token::Bin(_) => "Binary",
            Token::Array(_) => "Array",
            Token::Map(_) => "Map",
            Token::Ext(..) => "Extension",
        }
    }
}

/// Reads tokens from a slice, front to back.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

pub(crate) fn truncated() -> ProtocolError {
    ProtocolError::InvalidMessagePack("Unexpected end of data.".into())
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { rest: body }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.rest.len() {
            return Err(truncated());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn len(&mut self, width: u8) -> Result<usize, ProtocolError> {
        Ok(match width {
            1 => usize::from(self.u8()?),
            2 => usize::from(self.u16()?),
            _ => self.u32()? as usize,
        })
    }

    /// Reads the next token (for arrays and maps, only the header).
    pub(crate) fn next(&mut self) -> Result<Token<'a>, ProtocolError> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Token::UInt(u64::from(marker)),
            0x80..=0x8f => Token::Map(u32::from(marker & 0x0f)),
            0x90..=0x9f => Token::Array(u32::from(marker & 0x0f)),
            0xa0..=0xbf => Token::Str(self.bytes(usize::from(marker & 0x1f))?),
            0xc0 => Token::Nil,
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (marker - 0xc4))?;
                Token::Bin(self.bytes(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (marker - 0xc7))?;
                let ty = i8::from_be_bytes(self.array()?);
                Token::Ext(ty, self.bytes(n)?)
            }
            0xca => Token::F32(f32::from_be_bytes(self.array()?)),
            0xcb => Token::F64(f64::from_be_bytes(self.array()?)),
            0xcc => Token::UInt(u64::from(self.u8()?)),
            0xcd => Token::UInt(u64::from(self.u16()?)),
            0xce => Token::UInt(u64::from(self.u32()?)),
            0xcf => Token::UInt(u64::from_be_bytes(self.array()?)),
            0xd0 => Token::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Token::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Token::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Token::Int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => {
                let ty = i8::from_be_bytes(self.array()?);
                Token::Ext(ty, self.bytes(1 << (marker - 0xd4))?)
            }
            0xd9..=0xdb => {
                let n = self.len(1 << (marker - 0xd9))?;
                Token::Str(self.bytes(n)?)
            }
            0xdc => Token::Array(u32::from(self.u16()?)),
            0xdd => Token::Array(self.u32()?),
            0xde => Token::Map(u32::from(self.u16()?)),
            0xdf => Token::Map(self.u32()?),
            0xe0..=0xff => Token::Int(i64::from(i8::from_be_bytes([marker]))),
            0xc1 => {
                return Err(ProtocolError::InvalidMessagePack(
                    "Byte 0xc1 is never used in MessagePack.".into(),
                ));
            }
        })
    }

    /// Skips one whole value (with everything nested in it), checking that it is well formed.
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), ProtocolError> {
        let items = match self.next()? {
            Token::Array(n) => u64::from(n),
            Token::Map(n) => u64::from(n) * 2,
            _ => return Ok(()),
        };
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        for _ in 0..items {
            self.skip_value(depth + 1)?;
        }
        Ok(())
    }
}

pub(crate) fn too_deep() -> ProtocolError {
    ProtocolError::InvalidMessagePack("Values are nested too deeply.".into())
}

/// Reads a `str` as UTF-8 text.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, ProtocolError> {
    std::str::from_utf8(bytes)
        .map_err(|_| ProtocolError::InvalidMessagePack("A string is not valid UTF-8.".into()))
}
