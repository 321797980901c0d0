//! The open-file limit: raised to the hard limit at start, and what it leaves
//! for connections once the node's own files are counted.
//!
//! Every TCP connection is one file. A node that runs out of files cannot
//! accept anyone, not even a health check, so the connection cap
//! ([`default_max_connections`]) stays below the limit by a reserve for what
//! else the node opens while it runs: NATS, plugin files, requests forwarded
//! to other nodes, and the few extra connections kept for health and admin.

use tracing::{info, warn};

/// Files kept free beside connections: NATS and its reconnects, plugin and
/// config files, forwarded requests, logs.
pub const FILE_RESERVE: usize = 64;

/// The soft open-file limit after raising it to the hard limit (where the
/// platform allows it); none where it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            info!(open_file_limit = limit, "open-file limit");
            Some(limit)
        }
        Err(e) => {
            let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|l| l.0);
            warn!(error = %e, open_file_limit = ?soft, "cannot raise the open-file limit");
            soft
        }
    }
}

/// Files the process has open now (Linux: `/proc/self/fd`); none elsewhere.
pub fn open_files() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count())
}

/// The connection cap a node with `limit` open files, `open` of them already
/// used, can keep: the rest less [`FILE_RESERVE`] and the `reserved`
/// connections kept for health and admin. At least one, even when the limit
/// leaves less (a warning then says so).
pub fn default_max_connections(limit: u64, open: usize, reserved: usize) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    limit
        .saturating_sub(open)
        .saturating_sub(FILE_RESERVE)
        .saturating_sub(reserved)
        .max(1)
}

/// Whether `max` connections plus what else the node needs fit in `limit`.
pub fn fits(limit: u64, open: usize, reserved: usize, max: usize) -> bool {
    let needed = (open + FILE_RESERVE + reserved).saturating_add(max);
    u64::try_from(needed).is_ok_and(|n| n <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_node_and_reserved_connections() {
        // `ulimit -n 256`, 30 files open at start, 16 reserved connections.
        assert_eq!(default_max_connections(256, 30, 16), 256 - 30 - 64 - 16);
        assert!(fits(256, 30, 16, default_max_connections(256, 30, 16)));
        assert!(!fits(256, 30, 16, 200));
        assert_eq!(default_max_connections(50, 30, 16), 1, "never zero");
        assert_eq!(default_max_connections(u64::MAX, 10, 16), usize::MAX - 90);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let limit = raise_open_file_limit().expect("readable on Linux");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        assert_eq!(limit, soft);
        assert!(soft == hard || hard == rlimit::INFINITY);
        assert!(open_files().expect("proc") >= 3);
    }
}
