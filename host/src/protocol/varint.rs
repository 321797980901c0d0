//! The VarInt length prefix of MessagePack framing (HubProtocol.md "Binary encoding").
//!
//! 7-bit groups, least significant group first, high bit set on every byte but the last; at most
//! 5 bytes, and at most 0x7fff_ffff (2 GB), so the fifth byte may hold at most 0x07.

use super::ProtocolError;

/// The longest prefix: 0x7fff_ffff is `FF FF FF FF 07`.
pub(crate) const MAX_LEN: usize = 5;

/// The largest length a prefix may carry.
pub(crate) const MAX_VALUE: u32 = 0x7fff_ffff;

/// Encodes `value` into `buf`, returning how many bytes were used (1–5).
pub(crate) fn encode(value: u32, buf: &mut [u8; MAX_LEN]) -> usize {
    let mut rest = value;
    let mut used = 0;
    for slot in buf.iter_mut() {
        let group = (rest & 0x7f) as u8;
        rest >>= 7;
        used += 1;
        if rest == 0 {
            *slot = group;
            break;
        }
        *slot = group | 0x80;
    }
    used
}

/// Reads a prefix at the start of `buf`: `Ok(None)` while it is incomplete, otherwise the value
/// and the number of prefix bytes. Non-minimal encodings are accepted, as ASP.NET does.
pub(crate) fn decode(buf: &[u8]) -> Result<Option<(u32, usize)>, ProtocolError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().take(MAX_LEN).enumerate() {
        if i == MAX_LEN - 1 && byte > 0x07 {
            return Err(too_big());
        }
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Ok(None)
}

fn too_big() -> ProtocolError {
    ProtocolError::InvalidMessagePack("Messages over 2GB in size are not supported.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(value: u32) -> Vec<u8> {
        let mut buf = [0u8; MAX_LEN];
        let n = encode(value, &mut buf);
        buf[..n].to_vec()
    }

    #[test]
    fn edge_values_encode_exactly() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(5248), [0x80, 0x29]); // the spec's example
        assert_eq!(enc(16383), [0xff, 0x7f]);
        assert_eq!(enc(16384), [0x80, 0x80, 0x01]);
        assert_eq!(enc(2_097_151), [0xff, 0xff, 0x7f]);
        assert_eq!(enc(2_097_152), [0x80, 0x80, 0x80, 0x01]);
        assert_eq!(enc(1 << 28), [0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(enc(MAX_VALUE), [0xff, 0xff, 0xff, 0xff, 0x07]);
    }

    #[test]
    fn round_trips_and_reports_length() {
        for value in [
            0,
            1,
            127,
            128,
            255,
            16383,
            16384,
            1 << 21,
            (1 << 28) - 1,
            1 << 28,
            MAX_VALUE,
        ] {
            let bytes = enc(value);
            assert_eq!(
                decode(&bytes),
                Ok(Some((value, bytes.len()))),
                "value {value}"
            );
            // Trailing body bytes don't matter.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[0xff, 0x00]);
            assert_eq!(decode(&longer), Ok(Some((value, bytes.len()))));
            // Every strict prefix is incomplete.
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "value {value} cut {cut}");
            }
        }
    }

    #[test]
    fn rejects_over_two_gigabytes() {
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0x08]).is_err());
        assert!(decode(&[0x80, 0x80, 0x80, 0x80, 0x80]).is_err());
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn accepts_non_minimal_encodings() {
        assert_eq!(decode(&[0x80, 0x00]), Ok(Some((0, 2))));
        assert_eq!(decode(&[0x81, 0x80, 0x00]), Ok(Some((1, 3))));
    }
}
