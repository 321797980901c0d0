//! Subject and key names on the wire. Every name a tenant or client chose is
//! encoded as unpadded base64url, whose alphabet (`A-Z a-z 0-9 - _`) holds
//! none of NATS's separators or wildcards (`.`, `*`, `>`, spaces), so no
//! name can form a wildcard or reach outside its tenant.
//!
//! Backplane subjects: `{prefix}.bp.{partition}.{tenant}.{hub}` in stream
//! `{PREFIX}_BP_{partition}`. Partitions are chosen by hub (a stable hash),
//! so every send of one sender to one target lands in one stream, in order.
//! A durable connection's own records (its Completions, stream items and
//! receipts), which only its owner applies live, go to
//! `{prefix}.bp.{partition}.{tenant}.{hub}.n.{node}`, `node` being the
//! owner's id (hex): each node's live consumer filters for the hub subjects
//! and its own, so the stream does not hand every node every such record.
//! A takeover's claim of a durable connection goes to
//! `{prefix}.bp.{partition}.{tenant}.{hub}.c.{connection}`, read by every
//! node: the owner's records are published on the condition that this
//! subject holds nothing after the claim that made it owner, so JetStream
//! itself refuses a fenced owner's writes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::address::HubKey;

/// One name as a subject token (never empty: an empty name becomes `_`).
pub fn token(name: &str) -> String {
    if name.is_empty() {
        return "_".to_owned();
    }
    URL_SAFE_NO_PAD.encode(name.as_bytes())
}

/// The name a token encodes, if it is one.
pub fn untoken(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

/// The partition of a hub: FNV-1a of tenant and hub, the same on every node
/// and every version.
pub fn partition(hub: &HubKey, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in hub.tenant.bytes().chain([0]).chain(hub.hub.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

/// Names of streams, subjects and buckets under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (`nats.prefix`).
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream of one partition.
    pub fn stream(&self, partition: u32) -> String {
        format!("{}_BP_{partition}", self.prefix.to_ascii_uppercase())
    }

    /// Every subject of one partition's stream.
    pub fn partition_wildcard(&self, partition: u32) -> String {
        format!("{}.bp.{partition}.>", self.prefix)
    }

    /// What a node's live consumer of `partition` reads: every hub's
    /// subject, the records of the durable connections `node` owns, and
    /// every claim.
    pub fn live_filters(&self, partition: u32, node: &str) -> Vec<String> {
        vec![
            format!("{}.bp.{partition}.*.*", self.prefix),
            format!("{}.bp.{partition}.*.*.n.{node}", self.prefix),
            format!("{}.bp.{partition}.*.*.c.*", self.prefix),
        ]
    }

    /// The subject of the claims of one durable connection: its owner's
    /// writes are conditional on its last sequence.
    pub fn claim_subject(&self, partition: u32, hub: &HubKey, connection: &str) -> String {
        format!("{}.c.{}", self.subject(partition, hub), token(connection))
    }

    /// The subject of a record only the durable connection's owner `node`
    /// applies live (others read it only when they take the connection over).
    pub fn owned_subject(&self, partition: u32, hub: &HubKey, node: &str) -> String {
        format!("{}.n.{node}", self.subject(partition, hub))
    }

    /// The subject of an envelope for `hub`.
    pub fn subject(&self, partition: u32, hub: &HubKey) -> String {
        format!(
            "{}.bp.{partition}.{}.{}",
            self.prefix,
            token(&hub.tenant),
            token(&hub.hub)
        )
    }

    /// The hub a backplane subject addresses.
    pub fn parse_subject(&self, subject: &str) -> Option<(u32, HubKey)> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".bp.")?;
        let mut parts = rest.split('.');
        let partition = parts.next()?.parse().ok()?;
        let tenant = untoken(parts.next()?)?;
        let hub = untoken(parts.next()?)?;
        match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => {}
            (Some("n" | "c"), Some(tail), None) if !tail.is_empty() => {}
            _ => return None,
        }
        Some((partition, HubKey::new(&tenant, &hub)))
    }

    /// The plugin key-value bucket of a tenant.
    pub fn kv_bucket(&self, tenant: &str) -> String {
        format!("{}_kv_{}", self.prefix, token(tenant))
    }

    /// Durable resume's sessions (see `crate::durable::session`).
    pub fn sessions_bucket(&self) -> String {
        format!("{}_sessions", self.prefix)
    }

    /// The cluster's registry of connections and users.
    pub fn registry_bucket(&self) -> String {
        format!("{}_registry", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Vec<String> {
        vec![
            "a.b".into(),
            "*".into(),
            ">".into(),
            "a b\tc\r\n".into(),
            "ünï©ødé 🚀".into(),
            "..".into(),
            "$JS.API.>".into(),
            "x".repeat(1024),
            "\u{0}".into(),
            "".into(),
        ]
    }

    #[test]
    fn tokens_never_hold_separators_or_wildcards_and_round_trip() {
        for name in hostile() {
            let t = token(&name);
            assert!(!t.is_empty());
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert_eq!(untoken(&t).as_deref(), Some(name.as_str()));
        }
        assert_eq!(untoken("not base64!"), None);
    }

    #[test]
    fn subjects_keep_tenant_and_hub_and_parse_back() {
        let names = Names::new("sb");
        for name in hostile() {
            let hub = HubKey::new("acme", &name);
            let subject = names.subject(3, &hub);
            assert_eq!(subject.split('.').count(), 5, "{subject}");
            assert!(subject.starts_with("sb.bp.3.YWNtZQ."));
            assert_eq!(names.parse_subject(&subject), Some((3, hub)));
        }
        let hub = HubKey::new("acme", "chat");
        let owned = names.owned_subject(2, &hub, "00ff");
        assert_eq!(names.parse_subject(&owned), Some((2, hub.clone())));
        let claims = names.claim_subject(2, &hub, "a.b*");
        assert_eq!(claims.split('.').count(), 7, "{claims}");
        assert_eq!(names.parse_subject(&claims), Some((2, hub)));
        let [all, mine, claimed] = names.live_filters(2, "00ff").try_into().expect("three");
        assert!(all.ends_with(".*.*") && mine.ends_with(".n.00ff") && claimed.ends_with(".c.*"));
        assert_eq!(names.parse_subject("sb.bp.1.YQ.Yg.n"), None);
        assert_eq!(names.parse_subject("sb.bp.1.YQ.Yg.x.00ff"), None);
        assert_eq!(names.parse_subject("sb.bp.1.YQ.Yg.n.00ff.z"), None);
        assert_eq!(names.parse_subject("sb.bp.1.a.b.c"), None);
        assert_eq!(names.parse_subject("other.bp.1.YQ.Yg"), None);
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        let hub = HubKey::new("demo", "chat");
        let p = partition(&hub, 8);
        assert!(p < 8);
        assert_eq!(p, partition(&hub, 8));
        assert_eq!(partition(&hub, 1), 0);
        // The tenant/hub boundary matters: ("ab","c") is not ("a","bc").
        let spread: std::collections::HashSet<u32> = (0..64)
            .map(|i| partition(&HubKey::new("t", &format!("hub{i}")), 8))
            .collect();
        assert!(spread.len() > 4, "hubs spread over partitions");
    }
}
