use bytes::BytesMut;

use super::{Event, FrameReader, Violation};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: `first` is FIN/RSV/opcode, the payload masked with [`MASK`].
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    masked_frame(first, payload, MASK)
}

/// One client frame masked with `mask`, its length in the shortest form (the property tests
/// build theirs with it too).
pub(super) fn masked_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

const TEXT: u8 = 0x01;
const BINARY: u8 = 0x02;
const CONT: u8 = 0x00;
const FIN: u8 = 0x80;

/// Feeds `chunks` one after another; the events, with adjacent data joined.
fn read(chunks: &[&[u8]]) -> Result<Vec<Event>, Violation> {
    let mut reader = FrameReader::new();
    let mut buf = BytesMut::new();
    let mut events: Vec<Event> = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(event) = reader.next(&mut buf)? {
            match (events.last_mut(), event) {
                (Some(Event::Data(joined)), Event::Data(more)) => {
                    let mut all = joined.to_vec();
                    all.extend_from_slice(&more);
                    *joined = all.into();
                }
                (_, event) => events.push(event),
            }
        }
    }
    Ok(events)
}

fn violation(bytes: &[u8]) -> Violation {
    match read(&[bytes]) {
        Err(v) => v,
        Ok(events) => panic!("expected a violation, got {events:?}"),
    }
}

#[test]
fn a_masked_text_frame_is_its_payload() {
    let events = read(&[&frame(FIN | TEXT, b"{\"protocol\":\"json\"}\x1e")]).expect("valid");
    assert_eq!(
        events,
        vec![Event::Data("{\"protocol\":\"json\"}\x1e".into())]
    );
}

#[test]
fn split_at_every_offset_gives_the_same_events() {
    // A text message in three fragments, a multi-byte character cut between
    // two of them, a ping in between, then a 70 000-byte binary message and a close.
    let text = "héllo wörld €uro 𝄞 end".as_bytes();
    let cut = text.iter().position(|&b| b == 0xe2).expect("€") + 1;
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = Vec::new();
    stream.extend(frame(TEXT, &text[..3]));
    stream.extend(frame(FIN | 0x09, b"ping!"));
    stream.extend(frame(CONT, &text[3..cut]));
    stream.extend(frame(CONT, b""));
    stream.extend(frame(FIN | CONT, &text[cut..]));
    stream.extend(frame(FIN | BINARY, &big));
    stream.extend(frame(FIN | 0x08, &[0x03, 0xe8, b'o', b'k']));
    let whole = read(&[&stream]).expect("valid");
    assert_eq!(
        whole,
        vec![
            Event::Data(text[..3].to_vec().into()),
            Event::Ping("ping!".into()),
            Event::Data([&text[3..], &big[..]].concat().into()),
            Event::Close(Some(1000)),
        ]
    );
    for at in 1..stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(read(&[a, b]).expect("valid"), whole, "split at {at}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(read(&bytes).expect("valid"), whole, "byte by byte");
}

#[test]
fn an_unfinished_message_is_handed_on_not_kept() {
    let mut reader = FrameReader::new();
    let mut buf = BytesMut::new();
    let payload = vec![b'x'; 64_000];
    buf.extend_from_slice(&frame(BINARY, &payload));
    for _ in 0..15 {
        buf.extend_from_slice(&frame(CONT, &payload));
    }
    let mut total = 0;
    while let Some(event) = reader.next(&mut buf).expect("valid") {
        match event {
            Event::Data(piece) => total += piece.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(total, 16 * 64_000);
    assert!(buf.is_empty(), "nothing kept: {} bytes", buf.len());
}

#[test]
fn protocol_violations_close_with_1002() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", vec![FIN | TEXT, 0x02, b'h', b'i']),
        ("rsv1", frame(FIN | 0x40 | TEXT, b"hi")),
        ("rsv3", frame(FIN | 0x10 | BINARY, b"hi")),
        ("reserved data opcode", frame(FIN | 0x03, b"hi")),
        ("reserved control opcode", frame(FIN | 0x0b, b"hi")),
        ("orphan continuation", frame(FIN | CONT, b"hi")),
        ("control over 125", frame(FIN | 0x09, &[0; 126])),
        ("fragmented ping", frame(0x09, b"hi")),
        (
            "new message inside one",
            [frame(TEXT, b"a"), frame(FIN | BINARY, b"b")].concat(),
        ),
        ("close of one byte", frame(FIN | 0x08, &[0x03])),
        ("close code 1005", frame(FIN | 0x08, &[0x03, 0xed])),
        ("close code 999", frame(FIN | 0x08, &[0x03, 0xe7])),
    ];
    for (name, bytes) in cases {
        let v = violation(&bytes);
        assert_eq!(v.code(), 1002, "{name}: {v}");
    }
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad byte", frame(FIN | TEXT, b"a\xffb")),
        ("surrogate", frame(FIN | TEXT, b"\xed\xa0\x80")),
        ("cut at the end", frame(FIN | TEXT, b"ab\xe2\x82")),
        (
            "bad across frames",
            [frame(TEXT, b"\xe2"), frame(FIN | CONT, b"\x28\xa1")].concat(),
        ),
        ("close reason", frame(FIN | 0x08, b"\x03\xe8\xff")),
    ];
    for (name, bytes) in cases {
        assert_eq!(violation(&bytes), Violation::InvalidUtf8, "{name}");
        assert_eq!(Violation::InvalidUtf8.code(), 1007);
    }
    // Binary messages are not text: any bytes.
    assert!(read(&[&frame(FIN | BINARY, b"\xff\xfe")]).is_ok());
}

#[test]
fn empty_close_and_pong() {
    let stream = [frame(FIN | 0x0a, b"x"), frame(FIN | 0x08, b"")].concat();
    assert_eq!(
        read(&[&stream]).expect("valid"),
        vec![Event::Pong, Event::Close(None)]
    );
}
