//! What to do after a failed `accept`: a peer that refused, aborted or reset
//! its connection before it was accepted is nothing; every other error
//! (running out of files, EMFILE and ENFILE, or memory, above all) waits,
//! longer each time in a row, and is logged at most once per [`LOG_EVERY`]
//! with the count since the last log. Waiting on an error not foreseen costs
//! at most a second; spinning on one would take a core.

use std::io;
use std::time::{Duration, Instant};

const FIRST_WAIT: Duration = Duration::from_millis(10);
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// At most one log line about failing accepts per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The state of the accept loop's backoff: the current wait and what is still to be logged.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    wait: Option<Duration>,
    last_log: Option<Instant>,
    unlogged: u64,
}

/// The verdict on one accept error.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Wait this long before accepting again.
    pub wait: Duration,
    /// Log now, with this many errors (this one included) since the last log.
    pub log: Option<u64>,
}

impl AcceptBackoff {
    /// An accept succeeded: the next error waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.wait = None;
    }

    /// What to do after `error` at `now`: one connection's failure (refused, aborted, reset) waits
    /// not at all; any other (out of files or memory, above all) waits 10 ms, doubling each time in a row up
    /// to 1 s.
    pub fn failed(&mut self, error: &io::Error, now: Instant) -> Verdict {
        if is_connection_error(error) {
            return Verdict {
                wait: Duration::ZERO,
                log: None,
            };
        }
        let wait = self.wait.map_or(FIRST_WAIT, |w| (w * 2).min(LONGEST_WAIT));
        self.wait = Some(wait);
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        let log = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        Verdict { wait, log }
    }
}

/// Errors of one connection that the listener itself survives untouched.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn out_of_files_waits_longer_each_time_and_logs_rarely() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let first = b.failed(&emfile(), t0);
        assert_eq!(
            first,
            Verdict {
                wait: FIRST_WAIT,
                log: Some(1)
            }
        );
        let mut waits = vec![first.wait];
        for i in 1..20 {
            let v = b.failed(&emfile(), t0 + Duration::from_millis(i));
            assert_eq!(v.log, None, "not logged again within {LOG_EVERY:?}");
            waits.push(v.wait);
        }
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(waits.last(), Some(&LONGEST_WAIT));
        let later = b.failed(&emfile(), t0 + LOG_EVERY);
        assert_eq!(later.log, Some(20), "the count since the last log");
        b.succeeded();
        assert_eq!(b.failed(&emfile(), t0 + LOG_EVERY).wait, FIRST_WAIT);
    }

    #[test]
    fn a_reset_peer_is_no_reason_to_wait() {
        let mut b = AcceptBackoff::default();
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(
            b.failed(&reset, Instant::now()),
            Verdict {
                wait: Duration::ZERO,
                log: None
            }
        );
    }
}
