//! Where a send goes: the node's index of its own connections, users and
//! groups per hub, and the decision of what must also travel over the
//! backplane to reach other nodes.
//!
//! `decide` and `Index` are pure (no I/O) so routing is unit-tested without
//! sockets; `Router` applies their decisions to live connections.

mod index;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tracing::{debug, warn};

use crate::address::{HubKey, MAX_NAME_LEN, OutboundInvocation, Target};
use crate::backplane::{Backplane, Envelope, EnvelopeKind, Fence, LocalIndex, Receipt};
use crate::durable::{JoinRefused, Step};
use crate::outbound::ConnectionHandle;

pub use index::Index;

/// What a send must do beyond this node's own connections.
#[derive(Debug, PartialEq, Eq)]
pub enum Remote {
    /// Nothing: every target is a connection held here.
    None,
    /// Publish the target unchanged: other nodes resolve it against their own index.
    Publish(Target),
}

/// Decides whether a send must also go to other nodes. A send to
/// connections this node holds never leaves it; anything addressed by user,
/// group or "all" might have members elsewhere.
pub fn decide(target: &Target, is_local: impl Fn(&str) -> bool) -> Remote {
    match target {
        Target::Connections(ids) => {
            let remote: Vec<String> = ids.iter().filter(|id| !is_local(id)).cloned().collect();
            if remote.is_empty() {
                Remote::None
            } else {
                Remote::Publish(Target::Connections(remote))
            }
        }
        other => Remote::Publish(other.clone()),
    }
}

/// Why a group change was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    /// The group name is empty or longer than [`MAX_NAME_LEN`].
    #[error("group names must be 1 to {MAX_NAME_LEN} bytes")]
    BadGroupName,
    /// The connection is in the most groups its tenant allows (carried).
    #[error("a connection may be in at most {0} groups")]
    TooManyGroups(usize),
    /// The group names of a durable connection would pass this many bytes.
    #[error(
        "the group names of a connection that can resume on another node may hold at most {0} bytes"
    )]
    GroupsTooLarge(usize),
}

/// Most groups one connection may be a member of.
pub const MAX_GROUPS_PER_CONNECTION: usize = 1000;

/// What the router needs of tenants: their groups-per-connection limit,
/// and a place to report reaching it (see `tenant::limits`).
pub trait GroupLimits: Send + Sync {
    /// The most groups one connection of `hub` may be in.
    fn groups_per_connection(&self, hub: &HubKey) -> usize;
    /// A connection of `hub` was refused one more group.
    fn reached(&self, hub: &HubKey, max: usize);
}

/// The node's routing layer: local delivery plus the backplane.
pub struct Router {
    hubs: RwLock<HashMap<HubKey, Arc<RwLock<Index>>>>,
    /// The durable connections of each hub (also in its index), which get
    /// every record from the stream, in stream order (see `crate::durable`).
    durable: RwLock<Durables>,
    backplane: Arc<dyn Backplane>,
    /// Per-tenant group limits, once the node's tenants exist; until then
    /// (and in tests) [`MAX_GROUPS_PER_CONNECTION`].
    group_limits: std::sync::OnceLock<Box<dyn GroupLimits>>,
}

debug_fields!(Router {});

impl Router {
    /// A router with no connections yet, reaching other nodes through `backplane`.
    pub fn new(backplane: Arc<dyn Backplane>) -> Router {
        Router {
            hubs: RwLock::new(HashMap::new()),
            durable: RwLock::new(Durables::default()),
            backplane,
            group_limits: std::sync::OnceLock::new(),
        }
    }

    /// Applies tenants' groups-per-connection limits from now on (once).
    pub fn set_group_limits(&self, limits: Box<dyn GroupLimits>) {
        let _ = self.group_limits.set(limits);
    }

    /// The backplane, for durable connections' direct records.
    pub fn backplane(&self) -> Arc<dyn Backplane> {
        self.backplane.clone()
    }

    /// The most groups one connection of `hub` may be in.
    pub fn max_groups(&self, hub: &HubKey) -> usize {
        self.group_limits
            .get()
            .map_or(MAX_GROUPS_PER_CONNECTION, |l| l.groups_per_connection(hub))
    }

    /// Adds to a group in `index`, reporting a refusal for the limit.
    fn add_held(
        &self,
        index: &mut Index,
        hub: &HubKey,
        connection_id: &str,
        group: &str,
    ) -> Result<(), RouteError> {
        let max = self.max_groups(hub);
        let added = index.add_to_group(connection_id, group, max);
        if added.is_err()
            && let Some(limits) = self.group_limits.get()
        {
            limits.reached(hub, max);
        }
        added
    }

    fn index(&self, hub: &HubKey) -> Arc<RwLock<Index>> {
        if let Some(index) = self.hubs.read().get(hub) {
            return index.clone();
        }
        self.hubs
            .write()
            .entry(hub.clone())
            .or_insert_with(|| Arc::new(RwLock::new(Index::default())))
            .clone()
    }

    fn existing_index(&self, hub: &HubKey) -> Option<Arc<RwLock<Index>>> {
        self.hubs.read().get(hub).cloned()
    }

    /// Makes a connection reachable. Called once its handshake succeeded.
    pub fn register(&self, handle: Arc<ConnectionHandle>) {
        let index = self.index(&handle.hub);
        if let Some(partition) = handle.durable_partition() {
            // Under the lock the apply task takes per record: the connection
            // starts right after the last record applied, and gets every later one.
            let mut durable = self.durable.write();
            let applied = durable.applied.get(&partition).copied().unwrap_or(0);
            handle.begin_durable(applied);
            durable.hold(&handle);
        }
        index.write().insert(handle);
    }

    /// Makes a durable connection taken over from another node reachable for
    /// lookups; its records come from its catch-up until [`Router::join_durable`].
    pub fn register_taken(&self, handle: Arc<ConnectionHandle>) {
        self.index(&handle.hub).write().insert(handle);
    }

    /// A taken-over connection whose catch-up has applied the stream up to
    /// `cursor` gets the stream from the router from now on, if the router
    /// has applied no more of it than that; false: catch up further first.
    pub fn join_durable(&self, handle: &Arc<ConnectionHandle>, cursor: u64) -> bool {
        let Some(partition) = handle.durable_partition() else {
            return true;
        };
        let mut durable = self.durable.write();
        if durable.applied.get(&partition).copied().unwrap_or(0) > cursor {
            return false;
        }
        durable.hold(handle);
        drop(durable);
        // Its groups as the stream left them.
        if let (Some(index), Some(mark)) = (self.existing_index(&handle.hub), handle.durable_mark())
        {
            let mut index = index.write();
            index.leave_all(&handle.id);
            for group in mark.groups.iter() {
                let _ = self.add_held(&mut index, &handle.hub, &handle.id, group);
            }
        }
        true
    }

    /// Removes a connection and its group memberships (they die with it).
    /// Only this handle: a newer connection registered under the same id
    /// (its session claimed back onto this node) stays.
    pub fn unregister(&self, handle: &Arc<ConnectionHandle>) {
        let hub = &handle.hub;
        let Some(index) = self.existing_index(hub) else {
            return;
        };
        index
            .write()
            .remove_if(&handle.id, |held| Arc::ptr_eq(held, handle));
        if handle.is_durable() {
            self.durable.write().release(handle);
        }
    }

    /// How many connections this node holds.
    pub fn connection_count(&self) -> usize {
        self.hubs
            .read()
            .values()
            .map(|index| index.read().len())
            .sum()
    }

    /// A connection held by this node.
    pub fn local_connection(&self, hub: &HubKey, id: &str) -> Option<Arc<ConnectionHandle>> {
        self.existing_index(hub)?.read().connection(id).cloned()
    }

    /// Every connection this node holds, in every hub (for the cluster registry).
    pub fn local_connections(&self) -> Vec<Arc<ConnectionHandle>> {
        let indexes: Vec<_> = self.hubs.read().values().cloned().collect();
        indexes
            .iter()
            .flat_map(|index| index.read().connections().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The connections of `user` this node holds.
    pub fn local_user_connections(&self, hub: &HubKey, user: &str) -> Vec<Arc<ConnectionHandle>> {
        match self.existing_index(hub) {
            Some(index) => index.read().resolve(&Target::Users(vec![user.to_owned()])),
            None => Vec::new(),
        }
    }

    /// Whether this node holds a connection of `user`.
    pub fn has_local_user(&self, hub: &HubKey, user: &str) -> bool {
        self.existing_index(hub)
            .is_some_and(|index| index.read().has_user(user))
    }

    /// Whether a connection of `user` this node holds is in `group`.
    pub fn has_local_user_in_group(&self, hub: &HubKey, user: &str, group: &str) -> bool {
        self.existing_index(hub)
            .is_some_and(|index| index.read().user_in_group(user, group))
    }

    /// Whether this node holds a member of `group`.
    pub fn has_local_group(&self, hub: &HubKey, group: &str) -> bool {
        self.existing_index(hub)
            .is_some_and(|index| index.read().has_group(group))
    }

    /// Sends `message` to `target`: to this node's matching connections now,
    /// and over the backplane to other nodes where they may hold more. The
    /// receipt is ready at once unless other nodes are involved; then it
    /// says when the cluster has the message (or that it refused it).
    pub fn send(&self, hub: &HubKey, target: &Target, message: Arc<OutboundInvocation>) -> Receipt {
        let remote = match self.existing_index(hub) {
            Some(index) => {
                let index = index.read();
                deliver(hub, &index, target, &message);
                // A durable connection held here gets the send on read-back.
                decide(target, |id| {
                    index.connection(id).is_some_and(|c| !c.is_durable())
                })
            }
            None => decide(target, |_| false),
        };
        match remote {
            Remote::Publish(target) => self.backplane.publish(Envelope::new(
                hub.clone(),
                EnvelopeKind::Send { target, message },
            )),
            Remote::None => Receipt::done(),
        }
    }

    /// Sends `message` to `target` for an invocation, under the caller's
    /// `fence` when its connection is durable (else as [`Router::send`]):
    /// then stored first and delivered to everyone (here too) only as read
    /// back from the stream, so an owner another node has claimed meanwhile
    /// (a paused one that woke) reaches nobody.
    pub fn send_under(
        &self,
        hub: &HubKey,
        target: &Target,
        message: Arc<OutboundInvocation>,
        fence: Option<Fence>,
    ) -> Receipt {
        let Some(fence) = fence else {
            return self.send(hub, target, message);
        };
        let kind = EnvelopeKind::Send {
            target: target.clone(),
            message,
        };
        self.backplane
            .publish(Envelope::new(hub.clone(), kind).fenced(Some(fence)))
    }

    /// Adds a connection to a group (`add`) or removes it, for an
    /// invocation, under the caller's `fence` as for [`Router::send_under`]
    /// (else as [`Router::add_to_group`] or [`Router::remove_from_group`]).
    pub fn change_group_under(
        &self,
        hub: &HubKey,
        connection_id: &str,
        group: &str,
        add: bool,
        fence: Option<Fence>,
    ) -> Result<Receipt, RouteError> {
        let Some(fence) = fence else {
            return if add {
                self.add_to_group(hub, connection_id, group)
            } else {
                self.remove_from_group(hub, connection_id, group)
            };
        };
        check_name(group)?;
        if add
            && let Some(index) = self.existing_index(hub)
            && let Some(held) = index.read().connection(connection_id)
        {
            self.may_join(hub, held, group)?;
        }
        Ok(self.publish_group_change(hub, add, connection_id, group, Some(fence)))
    }

    /// Tells every node to add `connection_id` to `group` (`add`) or remove it.
    fn publish_group_change(
        &self,
        hub: &HubKey,
        add: bool,
        connection_id: &str,
        group: &str,
        fence: Option<Fence>,
    ) -> Receipt {
        let (connection, group) = (connection_id.to_owned(), group.to_owned());
        let kind = if add {
            EnvelopeKind::GroupAdd { connection, group }
        } else {
            EnvelopeKind::GroupRemove { connection, group }
        };
        self.backplane
            .publish(Envelope::new(hub.clone(), kind).fenced(fence))
    }

    /// Whether `connection`, held here, may join `group`: a durable one is
    /// checked against what it carries (a plain one when it is added).
    fn may_join(
        &self,
        hub: &HubKey,
        connection: &ConnectionHandle,
        group: &str,
    ) -> Result<(), RouteError> {
        match connection.durable_may_join(group) {
            Ok(()) => Ok(()),
            Err(JoinRefused::Count(max)) => {
                if let Some(limits) = self.group_limits.get() {
                    limits.reached(hub, max);
                }
                Err(RouteError::TooManyGroups(max))
            }
            Err(JoinRefused::Bytes(max)) => Err(RouteError::GroupsTooLarge(max)),
        }
    }

    /// Adds a connection to a group, wherever the connection is. Like a
    /// send's, the receipt says when another node holding the connection
    /// will apply the change (ready at once when this node holds it).
    pub fn add_to_group(
        &self,
        hub: &HubKey,
        connection_id: &str,
        group: &str,
    ) -> Result<Receipt, RouteError> {
        check_name(group)?;
        let index = self.index(hub);
        let mut index = index.write();
        match index.connection(connection_id) {
            Some(c) if !c.is_durable() => {
                return self
                    .add_held(&mut index, hub, connection_id, group)
                    .map(|()| Receipt::done());
            }
            // A durable connection joins on read-back, where a refusal would
            // be silent: refused here, alike, with an error for the caller.
            Some(c) => self.may_join(hub, c, group)?,
            None => {}
        }
        drop(index);
        Ok(self.publish_group_change(hub, true, connection_id, group, None))
    }

    /// Removes a connection from a group, wherever the connection is (the
    /// receipt as for [`Router::add_to_group`]).
    pub fn remove_from_group(
        &self,
        hub: &HubKey,
        connection_id: &str,
        group: &str,
    ) -> Result<Receipt, RouteError> {
        check_name(group)?;
        if let Some(index) = self.existing_index(hub) {
            let mut index = index.write();
            if index
                .connection(connection_id)
                .is_some_and(|c| !c.is_durable())
            {
                index.remove_from_group(connection_id, group);
                return Ok(Receipt::done());
            }
        }
        Ok(self.publish_group_change(hub, false, connection_id, group, None))
    }

    /// Adds every connection `user` has now, on every node, to `group`; the
    /// receipt says when the other nodes will apply it.
    pub fn add_user_to_group(
        &self,
        hub: &HubKey,
        user: &str,
        group: &str,
    ) -> Result<Receipt, RouteError> {
        self.change_user_group(hub, user, group, true)
    }

    /// Removes every connection of `user`, on every node, from `group`.
    pub fn remove_user_from_group(
        &self,
        hub: &HubKey,
        user: &str,
        group: &str,
    ) -> Result<Receipt, RouteError> {
        self.change_user_group(hub, user, group, false)
    }

    /// A user-group change here, then on the other nodes.
    fn change_user_group(
        &self,
        hub: &HubKey,
        user: &str,
        group: &str,
        add: bool,
    ) -> Result<Receipt, RouteError> {
        check_name(group)?;
        self.apply_user_group(hub, user, group, add, Held::Plain);
        let (user, group) = (user.to_owned(), group.to_owned());
        let kind = if add {
            EnvelopeKind::UserGroupAdd { user, group }
        } else {
            EnvelopeKind::UserGroupRemove { user, group }
        };
        Ok(self.backplane.publish(Envelope::new(hub.clone(), kind)))
    }

    /// A user-group change for the connections of `user` this node holds.
    fn apply_user_group(&self, hub: &HubKey, user: &str, group: &str, add: bool, which: Held) {
        self.each_user_connection(hub, user, which, |index, id| {
            if add {
                if let Err(e) = self.add_held(index, hub, id, group) {
                    debug!(connection = %id, %group, error = %e, "user group add refused");
                }
            } else {
                index.remove_from_group(id, group);
            }
        });
    }

    /// Runs `each` for every connection of `user` this node holds that
    /// `which` includes, with the hub's index locked for writing.
    fn each_user_connection(
        &self,
        hub: &HubKey,
        user: &str,
        which: Held,
        mut each: impl FnMut(&mut Index, &str),
    ) {
        let Some(index) = self.existing_index(hub) else {
            return;
        };
        let mut index = index.write();
        let ids: Vec<Arc<str>> = index
            .resolve(&Target::Users(vec![user.to_owned()]))
            .iter()
            .filter(|c| which.includes(c))
            .map(|c| c.id.clone())
            .collect();
        for id in &ids {
            each(&mut index, id);
        }
    }

    /// Closes a connection this node holds or, when it holds none by that
    /// id, asks the other nodes to; the receipt says when they will (ready
    /// at once for a local close). `reason` becomes the error of the
    /// client's Close message; without one the close is clean.
    pub fn close_connection(&self, hub: &HubKey, id: &str, reason: Option<&str>) -> Receipt {
        if let Some(connection) = self.local_connection(hub, id) {
            close_held(&connection, reason);
            return Receipt::done();
        }
        self.backplane.publish(Envelope::new(
            hub.clone(),
            EnvelopeKind::Close {
                connection: id.to_owned(),
                reason: reason.map(str::to_owned),
            },
        ))
    }

    /// Closes every connection `target` reaches but those in `except`: the
    /// ones held here now, and on the other nodes (the receipt says when
    /// they will). `reason` as for [`Router::close_connection`].
    pub fn close_many(
        &self,
        hub: &HubKey,
        target: Target,
        except: Vec<String>,
        reason: Option<&str>,
    ) -> Receipt {
        self.close_held_many(hub, &target, &except, reason);
        self.backplane.publish(Envelope::new(
            hub.clone(),
            EnvelopeKind::CloseMany {
                target,
                except,
                reason: reason.map(str::to_owned),
            },
        ))
    }

    fn close_held_many(
        &self,
        hub: &HubKey,
        target: &Target,
        except: &[String],
        reason: Option<&str>,
    ) {
        let Some(index) = self.existing_index(hub) else {
            return;
        };
        let held = index.read().resolve(target);
        for connection in held {
            if !except.iter().any(|id| *id == *connection.id) {
                close_held(&connection, reason);
            }
        }
    }

    /// Removes a connection from every group it is in, wherever it is (the
    /// receipt as for [`Router::add_to_group`]).
    pub fn connection_leave_all_groups(&self, hub: &HubKey, connection_id: &str) -> Receipt {
        if let Some(index) = self.existing_index(hub) {
            let mut index = index.write();
            if index
                .connection(connection_id)
                .is_some_and(|c| !c.is_durable())
            {
                index.leave_all(connection_id);
                return Receipt::done();
            }
        }
        self.backplane.publish(Envelope::new(
            hub.clone(),
            EnvelopeKind::LeaveAllGroups {
                connection: connection_id.to_owned(),
            },
        ))
    }

    /// Removes every connection of `user`, on every node, from every group.
    pub fn user_leave_all_groups(&self, hub: &HubKey, user: &str) -> Receipt {
        self.apply_user_leave_all(hub, user, Held::Plain);
        self.backplane.publish(Envelope::new(
            hub.clone(),
            EnvelopeKind::UserLeaveAllGroups {
                user: user.to_owned(),
            },
        ))
    }

    fn apply_user_leave_all(&self, hub: &HubKey, user: &str, which: Held) {
        self.each_user_connection(hub, user, which, |index, id| index.leave_all(id));
    }

    /// Applies what the stream brought: another node's envelope to every
    /// connection held here, and this node's own (read back) to its durable
    /// connections only, which get every record in stream order.
    pub fn apply_remote(&self, envelope: Envelope) {
        let durable = envelope.cursor.and_then(|cursor| {
            let mut durable = self.durable.write();
            if envelope.broken {
                durable.break_partition(cursor.partition);
            }
            durable.applied.insert(cursor.partition, cursor.sequence);
            let held = durable.concerned(&envelope.hub, named_connection(&envelope.kind))?;
            Some((cursor.sequence, held))
        });
        let Some(index) = self.existing_index(&envelope.hub) else {
            return;
        };
        if let Some((cursor, held)) = durable {
            self.apply_durable(&envelope, cursor, &held, &index);
        }
        if envelope.own {
            return;
        }
        match envelope.kind {
            EnvelopeKind::Send { target, message } => {
                deliver(&envelope.hub, &index.read(), &target, &message);
            }
            EnvelopeKind::GroupAdd { connection, group } => {
                let mut index = index.write();
                if index.connection(&connection).is_some()
                    && let Err(e) = self.add_held(&mut index, &envelope.hub, &connection, &group)
                {
                    debug!(%connection, %group, error = %e, "remote group add refused");
                }
            }
            EnvelopeKind::GroupRemove { connection, group } => {
                index.write().remove_from_group(&connection, &group);
            }
            EnvelopeKind::Close { connection, reason } => {
                let held = index.read().connection(&connection).cloned();
                if let Some(held) = held {
                    close_held(&held, reason.as_deref());
                }
            }
            EnvelopeKind::UserGroupAdd { user, group } => {
                drop(index);
                self.apply_user_group(&envelope.hub, &user, &group, true, Held::All);
            }
            EnvelopeKind::UserGroupRemove { user, group } => {
                drop(index);
                self.apply_user_group(&envelope.hub, &user, &group, false, Held::All);
            }
            EnvelopeKind::CloseMany {
                target,
                except,
                reason,
            } => {
                drop(index);
                self.close_held_many(&envelope.hub, &target, &except, reason.as_deref());
            }
            EnvelopeKind::LeaveAllGroups { connection } => {
                index.write().leave_all(&connection);
            }
            EnvelopeKind::UserLeaveAllGroups { user } => {
                drop(index);
                self.apply_user_leave_all(&envelope.hub, &user, Held::All);
            }
            // Applied above, to the durable connection it is for.
            EnvelopeKind::Direct { .. }
            | EnvelopeKind::Claim { .. }
            | EnvelopeKind::Receipt { .. } => {}
        }
    }

    /// Applies a stream record to the hub's durable connections held here.
    /// Their own index entries follow their membership (for presence
    /// questions and lookups); another node's group change is mirrored by
    /// the caller, as for any connection.
    fn apply_durable(
        &self,
        envelope: &Envelope,
        cursor: u64,
        held: &[Arc<ConnectionHandle>],
        index: &RwLock<Index>,
    ) {
        for connection in held {
            match connection.apply_durable(cursor, &envelope.kind) {
                Step::Changed if envelope.own => {
                    self.mirror_membership(&envelope.hub, index, connection, &envelope.kind)
                }
                Step::Close { reason } => close_held(connection, reason.as_deref()),
                Step::Claimed { epoch } if epoch > connection.durable_epoch() => {
                    warn!(connection = %connection.id, epoch, "another node took the connection over; dropping it here");
                    connection.fence();
                }
                Step::Inconsistent => {
                    warn!(connection = %connection.id, cursor, "durable connection's stream cannot be explained; closing it");
                    connection.abort_allow_reconnect(crate::durable::honest::UNRECOVERABLE);
                }
                _ => {}
            }
        }
    }

    /// Follows a durable connection's own group change in the index.
    fn mirror_membership(
        &self,
        hub: &HubKey,
        index: &RwLock<Index>,
        connection: &ConnectionHandle,
        kind: &EnvelopeKind,
    ) {
        let mut index = index.write();
        match kind {
            EnvelopeKind::GroupAdd { group, .. } | EnvelopeKind::UserGroupAdd { group, .. } => {
                let _ = self.add_held(&mut index, hub, &connection.id, group);
            }
            EnvelopeKind::GroupRemove { group, .. }
            | EnvelopeKind::UserGroupRemove { group, .. } => {
                index.remove_from_group(&connection.id, group)
            }
            EnvelopeKind::LeaveAllGroups { .. } | EnvelopeKind::UserLeaveAllGroups { .. } => {
                index.leave_all(&connection.id)
            }
            _ => {}
        }
    }
}

/// The connection a record is for, when it is for one only (its own
/// records, receipts and claims), not for whoever a hub's change reaches.
fn named_connection(kind: &EnvelopeKind) -> Option<&str> {
    match kind {
        EnvelopeKind::Direct { connection, .. }
        | EnvelopeKind::Receipt { connection, .. }
        | EnvelopeKind::Claim { connection, .. } => Some(connection.as_str()),
        _ => None,
    }
}

/// The durable connections held here, and where the stream's apply is.
#[derive(Debug, Default)]
struct Durables {
    by_hub: HashMap<HubKey, HubDurables>,
    /// The last sequence applied from each partition.
    applied: HashMap<u32, u64>,
}

/// One hub's durable connections held here: all of them for its changes,
/// and by id for the records of one connection, which are the most common
/// (a completion, a receipt) and must not cost a look at every connection.
#[derive(Debug, Default)]
struct HubDurables {
    all: Vec<Arc<ConnectionHandle>>,
    /// Usually one each; two while an ended handle and a newer one of the
    /// same id (its session claimed back here) are both held.
    by_id: HashMap<Arc<str>, Vec<Arc<ConnectionHandle>>>,
}

impl Durables {
    fn hold(&mut self, handle: &Arc<ConnectionHandle>) {
        let hub = self.by_hub.entry(handle.hub.clone()).or_default();
        hub.all.push(handle.clone());
        hub.by_id
            .entry(handle.id.clone())
            .or_default()
            .push(handle.clone());
    }

    fn release(&mut self, handle: &Arc<ConnectionHandle>) {
        let Some(hub) = self.by_hub.get_mut(&handle.hub) else {
            return;
        };
        hub.all.retain(|c| !Arc::ptr_eq(c, handle));
        if let Some(same_id) = hub.by_id.get_mut(&handle.id) {
            same_id.retain(|c| !Arc::ptr_eq(c, handle));
            if same_id.is_empty() {
                hub.by_id.remove(&handle.id);
            }
        }
        if hub.all.is_empty() {
            self.by_hub.remove(&handle.hub);
        }
    }

    /// The durable connections of `hub` a record concerns: the one it
    /// names, or all of them.
    fn concerned(&self, hub: &HubKey, named: Option<&str>) -> Option<Vec<Arc<ConnectionHandle>>> {
        let held = self.by_hub.get(hub)?;
        match named {
            Some(id) => held.by_id.get(id).cloned(),
            None => Some(held.all.clone()),
        }
    }

    /// The stream of `partition` lost records: its durable connections may
    /// have missed some, so each is told it cannot go on (honestly, with a
    /// reconnect allowed) rather than left with a silent gap.
    fn break_partition(&mut self, partition: u32) {
        for held in self.by_hub.values() {
            for connection in &held.all {
                if connection.durable_partition() == Some(partition) {
                    warn!(connection = %connection.id, partition, "backplane records lost; closing the durable connection");
                    metrics::counter!(
                        crate::durable::honest::METRIC,
                        "reason" => crate::durable::honest::Unrecoverable::Retention.as_str()
                    )
                    .increment(1);
                    connection.abort_allow_reconnect(crate::durable::honest::UNRECOVERABLE);
                }
            }
        }
    }
}

/// Which connections held here a change applies to.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// All of them (another node's change).
    All,
    /// Those that are not durable (a change made here: durable connections
    /// get it from the stream).
    Plain,
}

impl Held {
    fn includes(self, connection: &ConnectionHandle) -> bool {
        match self {
            Held::All => true,
            Held::Plain => !connection.is_durable(),
        }
    }
}

/// Longest close reason passed on to a client.
const MAX_CLOSE_REASON: usize = 1024;

fn close_held(connection: &ConnectionHandle, reason: Option<&str>) {
    match reason.filter(|r| !r.is_empty()) {
        Some(reason) => connection.abort(crate::error_text::truncate(reason, MAX_CLOSE_REASON)),
        None => connection.close(),
    }
}

fn check_name(name: &str) -> Result<(), RouteError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(RouteError::BadGroupName);
    }
    Ok(())
}

impl LocalIndex for Router {
    fn connection_count(&self) -> usize {
        Router::connection_count(self)
    }

    fn each_connection(&self, visit: &mut dyn FnMut(&HubKey, &str, Option<&str>)) {
        for connection in self.local_connections() {
            visit(&connection.hub, &connection.id, connection.user.as_deref());
        }
    }

    fn has_group(&self, hub: &HubKey, group: &str) -> bool {
        self.has_local_group(hub, group)
    }

    fn has_user_in_group(&self, hub: &HubKey, user: &str, group: &str) -> bool {
        self.has_local_user_in_group(hub, user, group)
    }

    fn apply(&self, envelope: Envelope) {
        let span = tracing::debug_span!(
            "backplane.deliver",
            tenant = %envelope.hub.tenant,
            hub = %envelope.hub.hub,
            partition = envelope.cursor.map(|c| c.partition),
            sequence = envelope.cursor.map(|c| c.sequence),
        );
        span.in_scope(|| self.apply_remote(envelope));
    }
}

/// Queues `message` on each connection; a connection whose queue is full is
/// too slow to keep up and is closed, so it cannot stall everyone else.
fn deliver(hub: &HubKey, index: &Index, target: &Target, message: &Arc<OutboundInvocation>) {
    let mut delivered = 0u64;
    index.for_each(target, |connection| {
        if connection.is_durable() {
            // It gets the send from the stream, in stream order.
            return;
        }
        delivered += 1;
        if let Err(slow) = connection.deliver(message) {
            connection.close_slow(slow);
        }
    });
    if delivered > 0 {
        metrics::counter!(
            crate::metrics::MESSAGES_OUT,
            "tenant" => hub.tenant.clone(),
            "hub" => hub.hub.clone()
        )
        .increment(delivered);
    }
}

#[cfg(test)]
mod tests;
