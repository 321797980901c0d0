//! The version history of one hub: which plugin versions were deployed,
//! in order, and which of them serves. Pure bookkeeping, no I/O: the
//! registry keeps one per hub on each node, and a cluster keeps one per hub
//! in the plugin store (as the hub's manifest), so rollback is cluster-wide.
//!
//! A deploy appends a version and makes it current; a rollback moves
//! "current" back to an earlier version, which keeps its number (the later
//! versions stay listed, so an operator can roll forward by deploying again).
//! Only the last `keep` versions are kept; the current one is never dropped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How a version reached the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Built into the binary (the `demo` tenant's hubs).
    Bundled,
    /// A file in the plugin folder (`--plugins`).
    File,
    /// The admin API (`switchboard deploy`). In a cluster the history is
    /// shared, so every node shows how a version was deployed, wherever.
    Api,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Bundled => "bundled",
            Source::File => "file",
            Source::Api => "api",
        })
    }
}

/// One deployed version of a hub's plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// 1, 2, 3, ... per hub, in deploy order.
    pub version: u64,
    /// SHA-256 of the `.wasm` bytes, hex.
    pub sha256: String,
    /// Size of the `.wasm` file, in bytes.
    pub size: u64,
    /// When it was deployed, in milliseconds since the Unix epoch.
    pub deployed_at_ms: u64,
    /// How the version reached the node.
    pub source: Source,
}

impl VersionInfo {
    /// `deployed_at_ms` as RFC 3339 text (UTC), for people.
    pub fn deployed_at(&self) -> String {
        rfc3339(self.deployed_at_ms)
    }
}

/// Why a rollback cannot happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// A rollback without a target found no kept version older than the current
    /// one (carried).
    #[error("there is no version before version {0} to roll back to")]
    NoEarlier(u64),
    /// The requested version (carried) is not among the kept versions.
    #[error("version {0} is not among the kept versions")]
    UnknownVersion(u64),
    /// The requested version (carried) is the one that serves already.
    #[error("version {0} is already the current version")]
    AlreadyCurrent(u64),
}

/// The kept versions of one hub, oldest first, and the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubVersions {
    /// The kept versions, oldest first.
    pub versions: Vec<VersionInfo>,
    /// The `version` number of the one that serves.
    pub current: u64,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The version as recorded: the new one, or the current one when nothing changed.
    pub info: VersionInfo,
    /// False when the bytes equal the current version's: nothing changed.
    pub changed: bool,
    /// Versions dropped to keep at most `keep`.
    pub dropped: Vec<VersionInfo>,
}

impl HubVersions {
    /// A history whose first version is `sha256`.
    pub fn first(sha256: &str, size: u64, now_ms: u64, source: Source) -> HubVersions {
        HubVersions {
            versions: vec![VersionInfo {
                version: 1,
                sha256: sha256.to_owned(),
                size,
                deployed_at_ms: now_ms,
                source,
            }],
            current: 1,
        }
    }

    /// The version that serves.
    pub fn current(&self) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.version == self.current)
    }

    /// Appends a version and makes it current, keeping at most `keep`
    /// versions (the current one always). Deploying the bytes that already
    /// serve changes nothing.
    pub fn deploy(
        &mut self,
        sha256: &str,
        size: u64,
        now_ms: u64,
        source: Source,
        keep: usize,
    ) -> Deployed {
        if let Some(current) = self.current().filter(|c| c.sha256 == sha256) {
            return Deployed {
                info: current.clone(),
                changed: false,
                dropped: Vec::new(),
            };
        }
        let version = self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let info = VersionInfo {
            version,
            sha256: sha256.to_owned(),
            size,
            deployed_at_ms: now_ms,
            source,
        };
        self.versions.push(info.clone());
        self.current = version;
        let dropped = self.prune(keep);
        Deployed {
            info,
            changed: true,
            dropped,
        }
    }

    /// Makes `to` (or, without it, the version before the current one) current.
    pub fn rollback(&mut self, to: Option<u64>) -> Result<VersionInfo, RollbackError> {
        let target = match to {
            Some(version) => {
                if version == self.current {
                    return Err(RollbackError::AlreadyCurrent(version));
                }
                self.versions
                    .iter()
                    .find(|v| v.version == version)
                    .ok_or(RollbackError::UnknownVersion(version))?
            }
            None => self
                .versions
                .iter()
                .rev()
                .find(|v| v.version < self.current)
                .ok_or(RollbackError::NoEarlier(self.current))?,
        }
        .clone();
        self.current = target.version;
        Ok(target)
    }

    /// Drops the oldest versions beyond `keep`, never the current one.
    fn prune(&mut self, keep: usize) -> Vec<VersionInfo> {
        let keep = keep.max(1);
        let mut dropped = Vec::new();
        while self.versions.len() > keep {
            let Some(at) = self.versions.iter().position(|v| v.version != self.current) else {
                break;
            };
            dropped.push(self.versions.remove(at));
        }
        dropped
    }

    /// Whether some kept version has these bytes.
    pub fn has(&self, sha256: &str) -> bool {
        self.versions.iter().any(|v| v.sha256 == sha256)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// `ms` since the Unix epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: u64) -> HubVersions {
        let mut h = HubVersions::first("h1", 10, 1_000, Source::File);
        for i in 2..=n {
            h.deploy(&format!("h{i}"), 10, 1_000 * i, Source::Api, 100);
        }
        h
    }

    #[test]
    fn deploy_appends_and_becomes_current() {
        let mut h = history(1);
        let d = h.deploy("h2", 20, 2_000, Source::Api, 5);
        assert!(d.changed);
        assert_eq!((d.info.version, h.current), (2, 2));
        assert_eq!(h.current().map(|c| c.sha256.as_str()), Some("h2"));
        assert!(d.dropped.is_empty());
    }

    #[test]
    fn same_bytes_again_change_nothing() {
        let mut h = history(2);
        let d = h.deploy("h2", 20, 9_000, Source::Api, 5);
        assert!(!d.changed);
        assert_eq!((d.info.version, h.versions.len()), (2, 2));
        // The bytes of an older version come back as a new version.
        let d = h.deploy("h1", 10, 9_000, Source::Api, 5);
        assert!(d.changed);
        assert_eq!(d.info.version, 3);
    }

    #[test]
    fn keeps_the_last_versions_and_never_drops_current() {
        let mut h = history(1);
        for i in 2..=7 {
            h.deploy(&format!("h{i}"), 10, i, Source::Api, 3);
        }
        let kept: Vec<u64> = h.versions.iter().map(|v| v.version).collect();
        assert_eq!(kept, [5, 6, 7]);
        h.rollback(Some(5)).expect("rollback");
        let d = h.deploy("h8", 10, 8, Source::Api, 3);
        assert_eq!(d.dropped.iter().map(|v| v.version).collect::<Vec<_>>(), [5]);
        let d = h.deploy("h9", 10, 9, Source::Api, 1);
        assert_eq!(h.versions.len(), 1);
        assert_eq!(d.dropped.len(), 3);
        assert_eq!(h.current, 9);
    }

    #[test]
    fn rollback_goes_to_the_previous_version() {
        let mut h = history(3);
        assert_eq!(h.rollback(None).map(|v| v.version), Ok(2));
        assert_eq!(h.rollback(None).map(|v| v.version), Ok(1));
        assert_eq!(h.rollback(None), Err(RollbackError::NoEarlier(1)));
        assert_eq!(h.current, 1);
        assert_eq!(h.rollback(Some(3)).map(|v| v.version), Ok(3));
        assert_eq!(h.rollback(Some(3)), Err(RollbackError::AlreadyCurrent(3)));
        assert_eq!(h.rollback(Some(9)), Err(RollbackError::UnknownVersion(9)));
    }

    #[test]
    fn manifest_round_trips_as_json() {
        let h = history(2);
        let text = serde_json::to_string(&h).expect("json");
        assert!(text.contains(r#""source":"api""#), "{text}");
        let back: HubVersions = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, h);
    }

    #[test]
    fn deploy_times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
