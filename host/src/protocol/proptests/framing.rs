//! Framing properties: how the parsers cut a byte stream into records, whatever the reads.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::super::fuzz::{Parsed, parse_in_pieces};
use super::super::handshake::{HandshakeError, HandshakeRequest, parse_handshake};
use super::super::{HubMessage, Protocol, ProtocolError, varint};
use super::config;
use super::strategies::{conversation, hostile_bytes, mutated_stream, records, text};

/// Any stream: valid records (maybe followed by junk), a mutated valid stream, or junk.
fn any_stream() -> impl Strategy<Value = (Protocol, Vec<u8>)> {
    prop_oneof![
        2 => (conversation(), proptest::option::of(hostile_bytes())).prop_map(
            |((protocol, messages), junk)| {
                let mut data = records(protocol, &messages).concat();
                data.extend(junk.unwrap_or_default());
                (protocol, data)
            }
        ),
        2 => mutated_stream(),
        1 => (
            prop_oneof![Just(Protocol::Json), Just(Protocol::MessagePack)],
            hostile_bytes()
        ),
    ]
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![Just(usize::MAX), 0usize..64, 64usize..2048]
}

fn offsets(indexes: &[Index], len: usize) -> Vec<usize> {
    indexes.iter().map(|i| i.index(len + 1)).collect()
}

/// After a successful parse, what stays buffered is one partial record, so it is bounded by the
/// limit (plus a VarInt prefix for MessagePack).
fn assert_leftover_bounded(protocol: Protocol, parsed: &Parsed, max: usize) {
    if parsed.result.is_ok() {
        let bound = match protocol {
            Protocol::Json => max,
            Protocol::MessagePack => max.saturating_add(varint::MAX_LEN),
        };
        assert!(
            parsed.leftover.len() <= bound,
            "{protocol:?}: {} bytes left buffered with a limit of {max}",
            parsed.leftover.len()
        );
    }
}

/// The size of each record without its framing (JSON: without 0x1E; MessagePack: without the
/// VarInt), which is what the limit applies to.
fn body_sizes(protocol: Protocol, records: &[Vec<u8>]) -> Vec<usize> {
    records
        .iter()
        .map(|record| match protocol {
            Protocol::Json => record.len() - 1,
            Protocol::MessagePack => match varint::decode(record) {
                Ok(Some((len, _))) => len as usize,
                other => panic!("written record has a bad prefix: {other:?}"),
            },
        })
        .collect()
}

proptest! {
    #![proptest_config(config(512))]

    /// Whatever the reads, the records, the error and what stays buffered are the same as for
    /// one read of everything.
    #[test]
    fn split_feeding_matches_one_read(
        (protocol, data) in any_stream(),
        cuts in vec(any::<Index>(), 0..8),
        max in limit(),
    ) {
        let whole = parse_in_pieces(protocol, &data, &[], max);
        let pieces = parse_in_pieces(protocol, &data, &offsets(&cuts, data.len()), max);
        prop_assert_eq!(&whole, &pieces);
        assert_leftover_bounded(protocol, &whole, max);
    }

    /// The extreme split: one byte per read.
    #[test]
    fn one_byte_at_a_time_matches_one_read(
        (protocol, data) in any_stream(),
        max in limit(),
    ) {
        let every: Vec<usize> = (0..data.len()).collect();
        let whole = parse_in_pieces(protocol, &data, &[], max);
        let bytes = parse_in_pieces(protocol, &data, &every, max);
        prop_assert_eq!(&whole, &bytes);
    }

    /// Any prefix of a valid stream parses without error: the whole records in it come out, the
    /// partial one stays buffered byte for byte.
    #[test]
    fn every_prefix_of_a_valid_stream_is_clean(
        (protocol, messages) in conversation(),
        cut in any::<Index>(),
    ) {
        let records = records(protocol, &messages);
        let data = records.concat();
        let cut = cut.index(data.len() + 1);
        let mut complete = 0;
        let mut end = 0;
        for record in &records {
            if end + record.len() > cut {
                break;
            }
            end += record.len();
            complete += 1;
        }
        let parsed = parse_in_pieces(protocol, &data[..cut], &[], usize::MAX);
        prop_assert_eq!(parsed.result, Ok(()));
        prop_assert_eq!(parsed.messages.as_slice(), &messages[..complete]);
        prop_assert_eq!(parsed.leftover.as_slice(), &data[end..cut]);
    }

    /// The limit applies to each record, not to the read: a stream of records that are each
    /// within the limit parses however long it is; the first record over it is refused with
    /// `MessageTooLarge`, after the records before it, whatever the reads.
    #[test]
    fn the_size_limit_applies_per_record(
        (protocol, messages) in conversation(),
        pick in any::<Index>(),
        delta in 0usize..3,
        cuts in vec(any::<Index>(), 0..6),
    ) {
        let records = records(protocol, &messages);
        let sizes = body_sizes(protocol, &records);
        let max = if sizes.is_empty() {
            delta
        } else {
            (sizes[pick.index(sizes.len())] + delta).saturating_sub(1)
        };
        let first_too_big = sizes.iter().position(|&size| size > max);
        let expected_messages = &messages[..first_too_big.unwrap_or(messages.len())];
        let expected_result = match first_too_big {
            Some(_) => Err(ProtocolError::MessageTooLarge { limit: max }),
            None => Ok(()),
        };
        let data = records.concat();
        let parsed = parse_in_pieces(protocol, &data, &offsets(&cuts, data.len()), max);
        prop_assert_eq!(parsed.messages.as_slice(), expected_messages);
        prop_assert_eq!(parsed.result, expected_result);
    }

    /// The handshake parser: the same request, error and following bytes whatever the reads.
    #[test]
    fn handshake_split_feeding_matches_one_read(
        data in prop_oneof![handshake_bytes(), hostile_bytes()],
        cuts in vec(any::<Index>(), 0..8),
        max in prop_oneof![Just(usize::MAX), 0usize..128],
    ) {
        let whole = handshake_in_pieces(&data, &[], max);
        let pieces = handshake_in_pieces(&data, &offsets(&cuts, data.len()), max);
        prop_assert_eq!(whole, pieces);
    }

    /// A well-formed request reads back as sent, and the bytes after it are left for the hub
    /// protocol untouched.
    #[test]
    fn handshake_requests_read_back(
        (protocol, version, extra) in request_fields(),
        after in vec(any::<u8>(), 0..32),
    ) {
        let mut data = request_text(&protocol, version, &extra).into_bytes();
        data.push(0x1e);
        data.extend_from_slice(&after);
        let mut buf = BytesMut::from(&data[..]);
        let request = parse_handshake(&mut buf, usize::MAX);
        prop_assert_eq!(request, Ok(Some(HandshakeRequest { protocol, version })));
        prop_assert_eq!(&buf[..], &after[..]);
    }
}

/// `protocol`, `version`, and extra properties (name, JSON text) placed before or after them.
fn request_fields() -> impl Strategy<Value = (String, u32, Vec<(String, String)>)> {
    (
        prop_oneof![
            Just("json".to_owned()),
            Just("messagepack".to_owned()),
            text()
        ],
        prop_oneof![0u32..3, any::<u32>()],
        vec(
            (
                "[a-z]{1,6}".prop_filter("not a known property", |k| {
                    k != "protocol" && k != "version"
                }),
                prop_oneof![
                    Just("null".to_owned()),
                    Just("[1,{\"a\":[]}]".to_owned()),
                    any::<i64>().prop_map(|n| n.to_string()),
                    text().prop_map(|t| serde_json::Value::String(t).to_string()),
                ],
            ),
            0..3,
        ),
    )
}

fn request_text(protocol: &str, version: u32, extra: &[(String, String)]) -> String {
    let mut fields = vec![
        format!("\"protocol\":{}", serde_json::Value::from(protocol)),
        format!("\"version\": {version}"),
    ];
    for (i, (key, value)) in extra.iter().enumerate() {
        fields.insert(i % (fields.len() + 1), format!("\"{key}\" : {value}"));
    }
    format!("{{{}}}", fields.join(","))
}

/// A handshake record followed by hub messages in either protocol.
fn handshake_bytes() -> impl Strategy<Value = Vec<u8>> {
    (request_fields(), conversation()).prop_map(|((protocol, version, extra), (hub, messages))| {
        let mut data = request_text(&protocol, version, &extra).into_bytes();
        data.push(0x1e);
        data.extend(records(hub, &messages).concat());
        data
    })
}

type HandshakeOutcome = (Result<Option<HandshakeRequest>, HandshakeError>, Vec<u8>);

/// Feeds `data` cut at `cuts`, calling the parser after each read until it returns a request or
/// an error, as the connection does.
fn handshake_in_pieces(data: &[u8], cuts: &[usize], max: usize) -> HandshakeOutcome {
    let mut ends: Vec<usize> = cuts.to_vec();
    ends.push(data.len());
    ends.sort_unstable();
    let mut buf = BytesMut::new();
    let mut result = Ok(None);
    let mut fed = 0;
    for end in ends {
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        if matches!(result, Ok(None)) {
            result = parse_handshake(&mut buf, max);
        }
    }
    (result, buf.to_vec())
}

#[test]
fn limits_count_the_record_without_its_framing() {
    // `{"type":6}` is 10 bytes and `0x91 0x06` is 2: exactly the limit passes, one over fails.
    let cases: [(Protocol, &[u8], usize); 2] = [
        (Protocol::Json, b"{\"type\":6}\x1e", 10),
        (Protocol::MessagePack, &[0x02, 0x91, 0x06], 2),
    ];
    for (protocol, ping, size) in cases {
        let parsed = parse_in_pieces(protocol, ping, &[], size);
        assert_eq!(parsed.messages, [HubMessage::Ping], "{protocol:?}");
        let parsed = parse_in_pieces(protocol, ping, &[], size - 1);
        assert_eq!(
            parsed.result,
            Err(ProtocolError::MessageTooLarge { limit: size - 1 }),
            "{protocol:?}"
        );
    }
}
