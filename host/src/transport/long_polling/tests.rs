use std::collections::VecDeque;

use super::*;
use crate::address::HubKey;

/// A long-polling connection that polls `rx`, and what it reads.
fn polled_connection(
    rx: mpsc::Receiver<OutFrame>,
) -> (
    Arc<LongPoll>,
    Arc<HttpConnection>,
    impl futures_util::Stream,
) {
    let long_poll = Arc::new(LongPoll::new(rx));
    let (connection, inbound) = HttpConnection::with_posts(
        TransportKind::LongPolling,
        HubKey::new("t", "h"),
        Arc::from("c"),
        None,
        Some(long_poll.clone()),
        Vec::new(),
    );
    (long_poll, Arc::new(connection), inbound)
}

fn data(text: &'static str) -> OutFrame {
    OutFrame::Data {
        data: Bytes::from_static(text.as_bytes()),
        binary: false,
    }
}

/// `drain` over a queue: `Empty` when it runs out, `Disconnected` when `closed`.
fn drain_queue(
    first: &'static str,
    rest: Vec<OutFrame>,
    closed: bool,
    max: usize,
) -> (Bytes, bool) {
    let mut queue: VecDeque<OutFrame> = rest.into();
    drain(
        Bytes::from_static(first.as_bytes()),
        || match queue.pop_front() {
            Some(frame) => Ok(frame),
            None if closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        },
        max,
    )
}

#[test]
fn a_poll_takes_everything_queued() {
    let (body, over) = drain_queue("a\x1e", vec![data("b\x1e"), data("c\x1e")], false, 1024);
    assert_eq!(&body[..], b"a\x1eb\x1ec\x1e");
    assert!(!over);
    let (body, over) = drain_queue("a\x1e", vec![], false, 1024);
    assert_eq!(&body[..], b"a\x1e");
    assert!(!over);
}

#[test]
fn a_poll_stops_at_about_max_bytes_with_whole_frames() {
    let (body, over) = drain_queue("aaaa", vec![data("bbbb"), data("cccc")], false, 6);
    assert_eq!(
        &body[..],
        b"aaaabbbb",
        "the frame that crosses the limit is kept whole"
    );
    assert!(!over);
}

#[test]
fn the_end_of_the_queue_is_noticed() {
    let (body, over) = drain_queue(
        "a",
        vec![data("b"), OutFrame::Close, data("never")],
        false,
        1024,
    );
    assert_eq!(&body[..], b"ab");
    assert!(over, "a Close frame ends the transport");
    let (body, over) = drain_queue("a", vec![], true, 1024);
    assert_eq!(&body[..], b"a");
    assert!(over, "a closed queue ends the transport");
}

#[test]
fn responses_as_asp_net_answers_polls() {
    let r = respond(PollOutcome::Data(Bytes::from_static(b"{}\x1e")));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache, no-store");
    assert_eq!(r.headers()[header::PRAGMA], "no-cache");
    assert_eq!(
        r.headers()[header::EXPIRES],
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
    let r = respond(PollOutcome::TimedOut);
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a timed-out poll is an empty 200, never 204"
    );
    let r = respond(PollOutcome::Over);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = first_poll();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
}

#[test]
fn liveness_counts_from_the_end_of_the_last_poll() {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(15);
    let mut l = Liveness::new(t0);
    assert_eq!(l.expires_at(timeout), Some(t0 + timeout));
    l.poll_started();
    assert_eq!(l.expires_at(timeout), None, "never while a poll is held");
    l.poll_started(); // a newer poll arrives before the older one is answered
    l.poll_ended(t0 + Duration::from_secs(40));
    assert_eq!(l.expires_at(timeout), None, "the newer poll is still held");
    l.poll_ended(t0 + Duration::from_secs(41));
    assert_eq!(l.expires_at(timeout), Some(t0 + Duration::from_secs(56)));
    l.poll_ended(t0 + Duration::from_secs(42));
    assert_eq!(
        l.expires_at(timeout),
        Some(t0 + Duration::from_secs(57)),
        "no underflow"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn polls_wait_supersede_time_out_and_end() {
    let (tx, rx) = mpsc::channel(8);
    let (long_poll, connection, _inbound) = polled_connection(rx);
    let timeout = Duration::from_secs(90);

    // Nothing queued: an empty 200 after the poll timeout.
    assert_eq!(
        long_poll.next(&connection, timeout).await,
        PollOutcome::TimedOut
    );

    // Queued data is answered at once, joined.
    tx.send(data("a\x1e")).await.expect("queued");
    tx.send(data("b\x1e")).await.expect("queued");
    assert_eq!(
        long_poll.next(&connection, timeout).await,
        PollOutcome::Data(Bytes::from_static(b"a\x1eb\x1e"))
    );

    // A newer poll ends the older one with 204 and gets the data.
    let older = tokio::spawn({
        let (long_poll, connection) = (long_poll.clone(), connection.clone());
        async move { long_poll.next(&connection, timeout).await }
    });
    tokio::task::yield_now().await;
    let newer = tokio::spawn({
        let (long_poll, connection) = (long_poll.clone(), connection.clone());
        async move { long_poll.next(&connection, timeout).await }
    });
    tokio::task::yield_now().await;
    tx.send(data("c\x1e")).await.expect("queued");
    assert_eq!(older.await.expect("joined"), PollOutcome::Over);
    assert_eq!(
        newer.await.expect("joined"),
        PollOutcome::Data(Bytes::from_static(b"c\x1e"))
    );

    // The connection ends: its last frames, then 204 and the transport is over.
    tx.send(data("bye\x1e")).await.expect("queued");
    drop(tx);
    assert_eq!(
        long_poll.next(&connection, timeout).await,
        PollOutcome::Data(Bytes::from_static(b"bye\x1e"))
    );
    assert!(!connection.ended().is_cancelled());
    assert_eq!(
        long_poll.next(&connection, timeout).await,
        PollOutcome::Over
    );
    assert!(
        connection.ended().is_cancelled(),
        "after the final 204 the connection is forgotten"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn idle_resolves_only_after_the_disconnect_timeout_without_polls() {
    let (_tx, rx) = mpsc::channel::<OutFrame>(1);
    let long_poll = LongPoll::new(rx);
    let timeout = Duration::from_secs(15);
    let start = Instant::now();
    {
        let _held = long_poll.begin().expect("not drained");
        // Held for 60 s: never idle meanwhile.
        let idle = tokio::time::timeout(Duration::from_secs(60), long_poll.idle(timeout)).await;
        assert!(idle.is_err(), "a held poll keeps the connection alive");
    }
    long_poll.idle(timeout).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(75));
}

#[tokio::test(flavor = "current_thread")]
async fn delete_ends_a_pending_poll_with_204() {
    let (_tx, rx) = mpsc::channel::<OutFrame>(1);
    let (long_poll, connection, _inbound) = polled_connection(rx);
    let pending = tokio::spawn({
        let (long_poll, connection) = (long_poll.clone(), connection.clone());
        async move { long_poll.next(&connection, Duration::from_secs(90)).await }
    });
    tokio::task::yield_now().await;
    connection.end();
    let outcome = tokio::time::timeout(Duration::from_secs(1), pending)
        .await
        .expect("answered at once")
        .expect("joined");
    assert_eq!(outcome, PollOutcome::Over);
}
