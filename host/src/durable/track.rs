//! The sequence ids of one durable connection as a pure function of its
//! hub's stream. A live owner and a node taking the connection over apply the
//! same records in the same (stream) order through a [`Track`], so they give
//! every record the same id; the owner pushes each delivered record into the
//! connection's outbox, whose writer numbers in push order.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Mark;
use crate::address::{OutboundInvocation, Target};
use crate::backplane::EnvelopeKind;

/// One record of a hub's stream, as far as a durable connection is concerned.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// An envelope as every node publishes it (sends, group changes, closes).
    Envelope(&'a EnvelopeKind),
    /// A takeover: from here on the owner of `epoch` speaks for `connection`.
    Claim {
        /// Id of the connection claimed.
        connection: &'a str,
        /// The new owner's epoch.
        epoch: u64,
    },
    /// A record for one connection only (a Completion, StreamItem or client
    /// invocation), published by its owner of `epoch`; `completes` names the
    /// client invocation it ends, if it does. `received`: a receipt stored
    /// with it, `(up_to, opens)` as in [`Record::Receipt`], applied first.
    Direct {
        /// Id of the connection it is for.
        connection: &'a str,
        /// Epoch of the owner that published it.
        epoch: u64,
        /// Invocation id of the client invocation it ends, if it does.
        completes: Option<&'a str>,
        /// A receipt stored with it, `(up_to, opens)`.
        received: Option<(u64, &'a [String])>,
    },
    /// The owner of `epoch` stored what the client sent, up to its sequence
    /// id `up_to`, before handling it; `opens` are the invocations among it
    /// that expect a Completion.
    Receipt {
        /// Id of the connection it is for.
        connection: &'a str,
        /// Epoch of the owner that stored it.
        epoch: u64,
        /// Highest sequence id of the client's messages stored.
        up_to: u64,
        /// Invocation ids among them that expect a Completion.
        opens: &'a [String],
    },
}

/// What one record means for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not about this connection.
    Skip,
    /// At or before the last cursor applied: already done.
    Repeat,
    /// A record for the connection, with this sequence id.
    Deliver {
        /// The id the client numbers it with, one above the last delivered.
        id: u64,
    },
    /// Its group memberships changed.
    Changed,
    /// The stream closes it; `reason` is its Close error.
    Close {
        /// Error text of the client's Close message (None: a clean close).
        reason: Option<String>,
    },
    /// A node claimed it with this (newer) epoch. An owner of an older epoch
    /// stops serving it at once, without writing to it.
    Claimed {
        /// The claiming owner's epoch.
        epoch: u64,
    },
    /// A direct record or receipt of an owner that was superseded: ignored.
    Stale,
    /// The client's messages up to this sequence id are stored.
    Received {
        /// Highest sequence id of the client's messages stored.
        up_to: u64,
    },
    /// A record the rules cannot explain (a newer epoch than any claim): the
    /// numbering can no longer be trusted, and the resume fails honestly.
    Inconsistent,
}

/// Most bytes of group names one durable connection's memberships may hold:
/// they travel in its checkpoint, inside a session of at most
/// [`MAX_SESSION_BYTES`](super::session::MAX_SESSION_BYTES).
pub const MAX_GROUPS_BYTES: usize = 16 * 1024;

/// Why a durable connection may not join one more group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefused {
    /// It is in the most groups allowed (this many).
    Count(usize),
    /// The names of its groups would take more than this many bytes.
    Bytes(usize),
}

/// The connection's groups; shared with checkpoint marks until it changes.
pub type Membership = Arc<BTreeSet<String>>;

/// One durable connection's place in its hub's stream.
#[derive(Debug, Clone)]
pub struct Track {
    connection: Arc<str>,
    user: Option<Arc<str>>,
    max_groups: usize,
    groups: Membership,
    /// Client invocations stored but not completed.
    open: Arc<BTreeSet<String>>,
    epoch: u64,
    /// The id of the last record delivered.
    last_id: u64,
    /// The stream sequence of the last record applied.
    cursor: u64,
    /// The client's highest sequence id stored in a receipt.
    inbound: u64,
    ended: bool,
}

impl Track {
    /// A new connection, registered when the stream's last applied sequence
    /// was `cursor`, owned by `epoch`.
    pub fn new(
        connection: &str,
        user: Option<&str>,
        max_groups: usize,
        epoch: u64,
        cursor: u64,
    ) -> Track {
        Track {
            connection: Arc::from(connection),
            user: user.map(Arc::from),
            max_groups,
            groups: Membership::default(),
            open: Arc::default(),
            epoch,
            last_id: 0,
            cursor,
            inbound: 0,
            ended: false,
        }
    }

    /// A connection taken over from the checkpoint `mark`.
    pub fn resume(connection: &str, user: Option<&str>, max_groups: usize, mark: &Mark) -> Track {
        Track {
            connection: Arc::from(connection),
            user: user.map(Arc::from),
            max_groups,
            groups: mark.groups.clone(),
            open: mark.open.clone(),
            epoch: mark.epoch,
            last_id: mark.id,
            cursor: mark.cursor,
            inbound: mark.inbound,
            ended: false,
        }
    }

    /// Sets where a new connection starts in the stream: the last sequence
    /// applied when it was registered (set once, before any record).
    pub fn begin(&mut self, cursor: u64) {
        if self.last_id == 0 && self.inbound == 0 {
            self.cursor = cursor;
        }
    }

    /// Where the connection stands now, as a checkpoint candidate.
    pub fn mark(&self) -> Mark {
        Mark {
            id: self.last_id,
            cursor: self.cursor,
            epoch: self.epoch,
            inbound: self.inbound,
            groups: self.groups.clone(),
            open: self.open.clone(),
        }
    }

    /// The groups the connection is in now.
    pub fn groups(&self) -> &BTreeSet<String> {
        &self.groups
    }

    /// The epoch of the connection's owner, as far as the records applied tell.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sequence id of the last record delivered (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// The stream sequence of the last record applied.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether the stream closed the connection (a `Close` or `CloseMany` reaching it).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The client invocations stored and not completed, oldest id first
    /// (by string order). After a taker's catch-up these were running on the
    /// old owner: their outcome is unknown.
    pub fn open(&self) -> &BTreeSet<String> {
        &self.open
    }

    /// The client's highest sequence id stored in a receipt: what it resends
    /// up to there was handled (or was running) already.
    pub fn inbound(&self) -> u64 {
        self.inbound
    }

    /// Whether a send to `target` reaches this connection (the same rule as
    /// the router's index).
    pub fn targets(&self, target: &Target) -> bool {
        let me = &*self.connection;
        let named = |ids: &[String]| ids.iter().any(|id| id == me);
        match target {
            Target::All { except } => !named(except),
            Target::Connections(ids) => named(ids),
            Target::Users(users) => self
                .user
                .as_deref()
                .is_some_and(|user| users.iter().any(|u| u == user)),
            Target::Groups { groups, except } => {
                !named(except) && groups.iter().any(|g| self.groups.contains(g))
            }
        }
    }

    /// Applies the record at stream sequence `cursor`. A send is delivered
    /// when it targets the connection and `encodes` (the protocol can carry
    /// it: a message that cannot be encoded is dropped, on every node alike).
    pub fn apply(
        &mut self,
        cursor: u64,
        record: Record<'_>,
        encodes: impl FnOnce(&OutboundInvocation) -> bool,
    ) -> Step {
        if cursor <= self.cursor {
            return Step::Repeat;
        }
        self.cursor = cursor;
        if self.ended {
            return Step::Skip;
        }
        let me = &*self.connection;
        match record {
            Record::Envelope(kind) => self.apply_envelope(kind, encodes),
            Record::Claim { connection, epoch } if connection == me => {
                if epoch > self.epoch {
                    self.epoch = epoch;
                    Step::Claimed { epoch }
                } else {
                    Step::Stale
                }
            }
            Record::Direct {
                connection,
                epoch,
                completes,
                received,
            } if connection == me => match self.fence(epoch) {
                Some(step) => step,
                None => {
                    if let Some((up_to, opens)) = received {
                        self.receive(up_to, opens);
                    }
                    if let Some(id) = completes
                        && self.open.contains(id)
                    {
                        Arc::make_mut(&mut self.open).remove(id);
                    }
                    self.last_id += 1;
                    Step::Deliver { id: self.last_id }
                }
            },
            Record::Receipt {
                connection,
                epoch,
                up_to,
                opens,
            } if connection == me => match self.fence(epoch) {
                Some(step) => step,
                None if up_to <= self.inbound => Step::Skip,
                None => {
                    self.receive(up_to, opens);
                    Step::Received { up_to }
                }
            },
            Record::Claim { .. } | Record::Direct { .. } | Record::Receipt { .. } => Step::Skip,
        }
    }

    /// What the client sent up to `up_to` is stored; `opens` are running.
    fn receive(&mut self, up_to: u64, opens: &[String]) {
        if up_to <= self.inbound {
            return;
        }
        self.inbound = up_to;
        if !opens.is_empty() {
            Arc::make_mut(&mut self.open).extend(opens.iter().cloned());
        }
    }

    /// The step for a record of an owner of `epoch` other than the current one.
    fn fence(&self, epoch: u64) -> Option<Step> {
        match epoch.cmp(&self.epoch) {
            std::cmp::Ordering::Less => Some(Step::Stale),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(Step::Inconsistent),
        }
    }

    fn apply_envelope(
        &mut self,
        kind: &EnvelopeKind,
        encodes: impl FnOnce(&OutboundInvocation) -> bool,
    ) -> Step {
        let me = &*self.connection;
        let mine = |user: &str| self.user.as_deref() == Some(user);
        match kind {
            EnvelopeKind::Send { target, message } => {
                if self.targets(target) && encodes(message) {
                    self.last_id += 1;
                    Step::Deliver { id: self.last_id }
                } else {
                    Step::Skip
                }
            }
            EnvelopeKind::GroupAdd { connection, group } if connection == me => self.join(group),
            EnvelopeKind::UserGroupAdd { user, group } if mine(user) => self.join(group),
            EnvelopeKind::GroupRemove { connection, group } if connection == me => {
                self.leave(group)
            }
            EnvelopeKind::UserGroupRemove { user, group } if mine(user) => self.leave(group),
            EnvelopeKind::Close { connection, reason } if connection == me => {
                self.ended = true;
                Step::Close {
                    reason: reason.clone(),
                }
            }
            EnvelopeKind::CloseMany {
                target,
                except,
                reason,
            } if self.targets(target) && !except.iter().any(|id| id == me) => {
                self.ended = true;
                Step::Close {
                    reason: reason.clone(),
                }
            }
            EnvelopeKind::LeaveAllGroups { connection } if connection == me => self.leave_all(),
            EnvelopeKind::UserLeaveAllGroups { user } if mine(user) => self.leave_all(),
            _ => Step::Skip,
        }
    }

    /// Whether the connection may join `group`: it is in it already, or in
    /// fewer groups than allowed whose names, with this one, stay within
    /// [`MAX_GROUPS_BYTES`] (its groups travel in its checkpoint, whose size
    /// is bounded). The router refuses a local add alike, with an error.
    pub fn may_join(&self, group: &str) -> Result<(), JoinRefused> {
        if self.groups.contains(group) {
            return Ok(());
        }
        if self.groups.len() >= self.max_groups {
            return Err(JoinRefused::Count(self.max_groups));
        }
        let bytes: usize = self.groups.iter().map(String::len).sum();
        if bytes + group.len() > MAX_GROUPS_BYTES {
            return Err(JoinRefused::Bytes(MAX_GROUPS_BYTES));
        }
        Ok(())
    }

    /// Joins a group, unless in it already or refused by [`Track::may_join`].
    fn join(&mut self, group: &str) -> Step {
        if self.groups.contains(group) || self.may_join(group).is_err() {
            return Step::Skip;
        }
        Arc::make_mut(&mut self.groups).insert(group.to_owned());
        Step::Changed
    }

    fn leave_all(&mut self) -> Step {
        if self.groups.is_empty() {
            return Step::Skip;
        }
        Arc::make_mut(&mut self.groups).clear();
        Step::Changed
    }

    fn leave(&mut self, group: &str) -> Step {
        if !self.groups.contains(group) {
            return Step::Skip;
        }
        Arc::make_mut(&mut self.groups).remove(group);
        Step::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::Ring;

    fn send(target: Target) -> EnvelopeKind {
        EnvelopeKind::Send {
            target,
            message: Arc::new(OutboundInvocation::new(
                "m".into(),
                serde_json::value::RawValue::from_string("[]".into()).expect("json"),
            )),
        }
    }

    fn group_add(connection: &str, group: &str) -> EnvelopeKind {
        EnvelopeKind::GroupAdd {
            connection: connection.into(),
            group: group.into(),
        }
    }

    fn to_group(group: &str) -> EnvelopeKind {
        send(Target::Groups {
            groups: vec![group.into()],
            except: Vec::new(),
        })
    }

    fn apply(track: &mut Track, cursor: u64, kind: &EnvelopeKind) -> Step {
        track.apply(cursor, Record::Envelope(kind), |_| true)
    }

    #[test]
    fn targets_follow_the_routers_rules() {
        let mut track = Track::new("c1", Some("ann"), 10, 1, 0);
        apply(&mut track, 1, &group_add("c1", "g"));
        let all_but = |ids: &[&str]| Target::All {
            except: ids.iter().map(|s| s.to_string()).collect(),
        };
        assert!(track.targets(&all_but(&[])));
        assert!(!track.targets(&all_but(&["c1"])));
        assert!(track.targets(&Target::Connections(vec!["c2".into(), "c1".into()])));
        assert!(!track.targets(&Target::Connections(vec!["c2".into()])));
        assert!(track.targets(&Target::Users(vec!["ann".into()])));
        assert!(!track.targets(&Target::Users(vec!["bob".into()])));
        let groups = |except: &[&str]| Target::Groups {
            groups: vec!["x".into(), "g".into()],
            except: except.iter().map(|s| s.to_string()).collect(),
        };
        assert!(track.targets(&groups(&[])));
        assert!(!track.targets(&groups(&["c1"])));
        let anonymous = Track::new("c1", None, 10, 1, 0);
        assert!(!anonymous.targets(&Target::Users(vec!["ann".into()])));
    }

    #[test]
    fn membership_changes_at_its_cursor_and_ids_count_deliveries_only() {
        let mut track = Track::new("c1", Some("ann"), 10, 1, 100);
        assert_eq!(apply(&mut track, 101, &to_group("g")), Step::Skip);
        assert_eq!(apply(&mut track, 102, &group_add("c2", "g")), Step::Skip);
        assert_eq!(apply(&mut track, 103, &group_add("c1", "g")), Step::Changed);
        assert_eq!(
            apply(&mut track, 104, &to_group("g")),
            Step::Deliver { id: 1 }
        );
        let to_ann = send(Target::Users(vec!["ann".into()]));
        assert_eq!(apply(&mut track, 105, &to_ann), Step::Deliver { id: 2 });
        let leave = EnvelopeKind::UserGroupRemove {
            user: "ann".into(),
            group: "g".into(),
        };
        assert_eq!(apply(&mut track, 106, &leave), Step::Changed);
        assert_eq!(apply(&mut track, 107, &to_group("g")), Step::Skip);
        assert_eq!(track.last_id(), 2);
        assert_eq!(track.cursor(), 107);
    }

    #[test]
    fn repeats_and_records_before_registration_are_not_applied() {
        let mut track = Track::new("c1", None, 10, 1, 50);
        let all = send(Target::All { except: Vec::new() });
        assert_eq!(apply(&mut track, 50, &all), Step::Repeat);
        assert_eq!(apply(&mut track, 51, &all), Step::Deliver { id: 1 });
        assert_eq!(apply(&mut track, 51, &all), Step::Repeat);
        assert_eq!(apply(&mut track, 52, &all), Step::Deliver { id: 2 });
    }

    #[test]
    fn a_message_the_protocol_cannot_carry_takes_no_id() {
        let mut track = Track::new("c1", None, 10, 1, 0);
        let all = send(Target::All { except: Vec::new() });
        assert_eq!(
            track.apply(1, Record::Envelope(&all), |_| false),
            Step::Skip
        );
        assert_eq!(apply(&mut track, 2, &all), Step::Deliver { id: 1 });
    }

    #[test]
    fn the_group_limit_refuses_like_the_router() {
        let mut track = Track::new("c1", None, 1, 1, 0);
        assert_eq!(apply(&mut track, 1, &group_add("c1", "a")), Step::Changed);
        assert_eq!(apply(&mut track, 2, &group_add("c1", "b")), Step::Skip);
        assert_eq!(apply(&mut track, 3, &to_group("b")), Step::Skip);
        assert_eq!(apply(&mut track, 4, &group_add("c1", "a")), Step::Skip);
    }

    #[test]
    fn group_names_are_bounded_in_bytes_alike_everywhere() {
        let mut track = Track::new("c1", None, 1000, 1, 0);
        let name = |i: usize| format!("{i:04}{}", "x".repeat(1020));
        let fit = MAX_GROUPS_BYTES / 1024;
        for i in 0..fit {
            assert_eq!(track.may_join(&name(i)), Ok(()));
            assert_eq!(
                apply(&mut track, i as u64 + 1, &group_add("c1", &name(i))),
                Step::Changed
            );
        }
        let over = name(fit);
        assert_eq!(
            track.may_join(&over),
            Err(JoinRefused::Bytes(MAX_GROUPS_BYTES))
        );
        assert_eq!(track.may_join(&name(0)), Ok(()), "a group it is in");
        assert_eq!(apply(&mut track, 100, &group_add("c1", &over)), Step::Skip);
        assert!(!track.groups().contains(&over));
        // A short name still fits only if the bytes allow it.
        assert_eq!(
            track.may_join("s"),
            Err(JoinRefused::Bytes(MAX_GROUPS_BYTES))
        );
        let mut count = Track::new("c1", None, 1, 1, 0);
        apply(&mut count, 1, &group_add("c1", "a"));
        assert_eq!(count.may_join("b"), Err(JoinRefused::Count(1)));
        // What the checkpoint of a full membership holds stays within the session's bound.
        let checkpoint = crate::durable::session::Checkpoint::from(&track.mark());
        let names: usize = checkpoint.groups.iter().map(String::len).sum();
        assert!(names <= MAX_GROUPS_BYTES);
    }

    #[test]
    fn a_close_ends_the_track() {
        let mut track = Track::new("c1", None, 10, 1, 0);
        let close = EnvelopeKind::Close {
            connection: "c1".into(),
            reason: Some("bye".into()),
        };
        assert_eq!(
            apply(&mut track, 1, &close),
            Step::Close {
                reason: Some("bye".into())
            }
        );
        assert!(track.is_ended());
        let all = send(Target::All { except: Vec::new() });
        assert_eq!(apply(&mut track, 2, &all), Step::Skip);
    }

    #[test]
    fn a_claim_fences_the_older_owners_later_records() {
        let mut track = Track::new("c1", None, 10, 1, 0);
        let direct = |epoch| Record::Direct {
            connection: "c1",
            epoch,
            completes: None,
            received: None,
        };
        assert_eq!(track.apply(1, direct(1), |_| true), Step::Deliver { id: 1 });
        let claim = Record::Claim {
            connection: "c1",
            epoch: 2,
        };
        assert_eq!(track.apply(2, claim, |_| true), Step::Claimed { epoch: 2 });
        // The paused old owner wakes and publishes: ignored, no id taken.
        assert_eq!(track.apply(3, direct(1), |_| true), Step::Stale);
        let receipt = Record::Receipt {
            connection: "c1",
            epoch: 1,
            up_to: 9,
            opens: &[],
        };
        assert_eq!(track.apply(4, receipt, |_| true), Step::Stale);
        assert_eq!(track.apply(5, direct(2), |_| true), Step::Deliver { id: 2 });
        // A second, older or equal claim changes nothing.
        assert_eq!(track.apply(6, claim, |_| true), Step::Stale);
        // An epoch no claim announced cannot be explained.
        assert_eq!(track.apply(7, direct(3), |_| true), Step::Inconsistent);
        // Records for other connections are not its business.
        let other = Record::Direct {
            connection: "c2",
            epoch: 9,
            completes: None,
            received: None,
        };
        assert_eq!(track.apply(8, other, |_| true), Step::Skip);
    }

    #[test]
    fn receipts_keep_the_inbound_high_water_and_the_open_invocations() {
        let mut track = Track::new("c1", None, 10, 1, 0);
        let opens = ["1".to_owned(), "2".to_owned()];
        let receipt = |up_to, opens| Record::Receipt {
            connection: "c1",
            epoch: 1,
            up_to,
            opens,
        };
        assert_eq!(
            track.apply(1, receipt(3, &opens), |_| true),
            Step::Received { up_to: 3 }
        );
        assert_eq!(track.apply(2, receipt(2, &[]), |_| true), Step::Skip);
        let completion = Record::Direct {
            connection: "c1",
            epoch: 1,
            completes: Some("1"),
            received: None,
        };
        assert_eq!(
            track.apply(3, completion, |_| true),
            Step::Deliver { id: 1 }
        );
        let mark = track.mark();
        assert_eq!(mark.inbound, 3);
        assert_eq!(mark.open.iter().collect::<Vec<_>>(), ["2"]);
    }

    /// What a taker ends with "outcome unknown": the invocations stored and
    /// not completed before the claim; a Completion that landed before the
    /// claim closes its id, one after it (a paused owner's) does not; the
    /// taker's own error Completion closes the id, so a second takeover does
    /// not send it again, and gives it the same id on any node.
    #[test]
    fn open_invocations_end_once_across_takeovers() {
        let receipt = Record::Receipt {
            connection: "c1",
            epoch: 1,
            up_to: 3,
            opens: &["1".to_owned(), "2".to_owned(), "3".to_owned()],
        };
        let completes = |epoch, id| Record::Direct {
            connection: "c1",
            epoch,
            completes: Some(id),
            received: None,
        };
        let claim = |epoch| Record::Claim {
            connection: "c1",
            epoch,
        };
        // The stream as the old owner (epoch 1) and two takers wrote it.
        let stream = [
            (11, receipt),
            (12, completes(1, "1")),
            (13, claim(2)),
            (14, completes(1, "2")),
            (15, completes(2, "2")),
            (16, claim(3)),
        ];
        let owner = Track::new("c1", None, 10, 1, 10);
        let start = owner.mark();
        let replay = |upto: u64| {
            let mut track = Track::resume("c1", None, 10, &start);
            let steps: Vec<_> = stream
                .iter()
                .filter(|(c, _)| *c <= upto)
                .map(|(c, r)| track.apply(*c, *r, |_| true))
                .collect();
            (track, steps)
        };
        // The first taker caught up to its claim: 2 and 3 were running.
        let (first, steps) = replay(13);
        assert_eq!(steps[1], Step::Deliver { id: 1 });
        assert_eq!(first.open().iter().collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(first.inbound(), 3);
        // The old owner's late Completion is fenced: no id, 2 stays open.
        let (_, steps) = replay(14);
        assert_eq!(steps[3], Step::Stale);
        // The first taker's error Completion of 2 made it; then it died.
        let (second, steps) = replay(16);
        assert_eq!(steps[4], Step::Deliver { id: 2 });
        assert_eq!(steps[5], Step::Claimed { epoch: 3 });
        assert_eq!(
            second.open().iter().collect::<Vec<_>>(),
            ["3"],
            "only what nobody ended yet"
        );
        // The checkpoint carries them too.
        let mark = second.mark();
        assert_eq!(mark.open.iter().collect::<Vec<_>>(), ["3"]);
        assert_eq!(mark.inbound, 3);
    }

    /// The property the design rests on: a node that takes over from any
    /// checkpoint the client has acknowledged gives every later record the
    /// id the owner gave it.
    #[test]
    fn a_taker_from_any_acknowledged_checkpoint_numbers_like_the_owner() {
        let kinds = [
            group_add("c1", "g"),
            to_group("g"),
            send(Target::All {
                except: vec!["c1".into()],
            }),
            to_group("h"),
            send(Target::Users(vec!["ann".into()])),
            EnvelopeKind::UserGroupAdd {
                user: "ann".into(),
                group: "h".into(),
            },
            to_group("h"),
            EnvelopeKind::GroupRemove {
                connection: "c1".into(),
                group: "g".into(),
            },
            to_group("g"),
            send(Target::Connections(vec!["c1".into()])),
        ];
        // Records at cursors 11.. ; the stream repeats the pattern with
        // direct records mixed in.
        let mut stream: Vec<(u64, usize)> = Vec::new();
        for round in 0..5u64 {
            for k in 0..kinds.len() {
                stream.push((11 + round * 20 + 2 * k as u64, k));
            }
        }
        let run = |track: &mut Track, from: u64, ring: Option<&mut Ring>| {
            let mut ids = Vec::new();
            let mut ring = ring;
            for &(cursor, k) in stream.iter().filter(|(c, _)| *c > from) {
                if let Step::Deliver { id } = apply(track, cursor, &kinds[k]) {
                    ids.push((cursor, id));
                }
                let direct = Record::Direct {
                    connection: "c1",
                    epoch: 1,
                    completes: None,
                    received: None,
                };
                if k % 3 == 0
                    && let Step::Deliver { id } = track.apply(cursor + 1, direct, |_| true)
                {
                    ids.push((cursor + 1, id));
                }
                if let Some(ring) = ring.as_deref_mut() {
                    ring.push(track.mark());
                }
            }
            ids
        };
        let mut owner = Track::new("c1", Some("ann"), 10, 1, 10);
        let mut ring = Ring::new(8);
        let owned = run(&mut owner, 0, Some(&mut ring));
        let ids: Vec<u64> = owned.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
        for acked in [0, 1, 5, 17, ids.len() as u64 / 2, ids.len() as u64] {
            let Some(mark) = ring.at_or_below(acked) else {
                continue;
            };
            assert!(mark.id <= acked);
            let mut taker = Track::resume("c1", Some("ann"), 10, mark);
            let replayed = run(&mut taker, mark.cursor, None);
            let expected: Vec<_> = owned
                .iter()
                .filter(|(cursor, _)| *cursor > mark.cursor)
                .cloned()
                .collect();
            assert_eq!(replayed, expected, "from the mark at or below {acked}");
            assert!(replayed.first().is_none_or(|(_, id)| *id == mark.id + 1));
        }
    }

    #[test]
    fn a_receipt_carried_by_a_direct_record_counts_as_one_stored_before_it() {
        let mut track = Track::new("c1", None, 10, 1, 0);
        let opens = ["a".to_owned(), "b".to_owned()];
        let answer = |epoch, up_to, completes| Record::Direct {
            connection: "c1",
            epoch,
            completes,
            received: Some((up_to, &opens[..])),
        };
        // Both calls stored with the first answer, which completes one of them.
        assert_eq!(
            track.apply(1, answer(1, 2, Some("a")), |_| true),
            Step::Deliver { id: 1 }
        );
        assert_eq!(track.inbound(), 2);
        assert_eq!(track.open().iter().collect::<Vec<_>>(), ["b"]);
        // A receipt already applied (a lower or equal up_to) opens nothing again.
        assert_eq!(
            track.apply(2, answer(1, 2, Some("b")), |_| true),
            Step::Deliver { id: 2 }
        );
        assert!(track.open().is_empty());
        // An older owner's record carries nothing, receipt included.
        let claim = Record::Claim {
            connection: "c1",
            epoch: 2,
        };
        assert_eq!(track.apply(3, claim, |_| true), Step::Claimed { epoch: 2 });
        assert_eq!(track.apply(4, answer(1, 9, None), |_| true), Step::Stale);
        assert_eq!(track.inbound(), 2);
        assert!(track.open().is_empty());
    }
}
