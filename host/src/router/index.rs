//! One hub's index of the connections this node holds: by id, by user, by
//! group. Pure data structure; `resolve` is the routing decision for a target.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{RouteError, Target};
use crate::outbound::ConnectionHandle;

/// What the index needs to know of a connection.
pub trait Routable: Clone {
    fn id(&self) -> &str;
    fn user(&self) -> Option<&str>;
}

impl Routable for Arc<ConnectionHandle> {
    fn id(&self) -> &str {
        &self.id
    }
    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

/// One hub's connections held by this node, by id, by user and by group.
#[derive(Debug)]
pub struct Index<C = Arc<ConnectionHandle>> {
    connections: HashMap<Arc<str>, C>,
    users: HashMap<Arc<str>, HashSet<Arc<str>>>,
    groups: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// The groups of each connection, so they can die with it.
    member_of: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

impl<C> Default for Index<C> {
    fn default() -> Self {
        Index {
            connections: HashMap::new(),
            users: HashMap::new(),
            groups: HashMap::new(),
            member_of: HashMap::new(),
        }
    }
}

impl<C: Routable> Index<C> {
    /// Holds `connection`, listed under its user if it has one.
    /// A connection held under its id already is replaced, and no longer
    /// listed under its user when the new one has another.
    pub fn insert(&mut self, connection: C) {
        let id: Arc<str> = Arc::from(connection.id());
        if let Some(user) = connection.user() {
            self.users
                .entry(Arc::from(user))
                .or_default()
                .insert(id.clone());
        }
        if let Some(old) = self.connections.insert(id.clone(), connection)
            && let Some(old_user) = old.user()
            && self.connections.get(&id).and_then(Routable::user) != Some(old_user)
        {
            self.unlist(old_user, &id);
        }
    }

    /// Takes connection `id` off `user`'s list, and the list off the index once empty.
    fn unlist(&mut self, user: &str, id: &str) {
        if let Some(set) = self.users.get_mut(user) {
            set.remove(id);
            if set.is_empty() {
                self.users.remove(user);
            }
        }
    }

    /// Forgets the connection `id` and its group memberships; the connection, if held.
    pub fn remove(&mut self, id: &str) -> Option<C> {
        self.remove_if(id, |_| true)
    }

    /// [`Index::remove`], only when the connection held under `id` is the one
    /// `is_it` accepts: an ended connection must not take with it a newer one
    /// that came back under its id (a session claimed back onto this node).
    pub fn remove_if(&mut self, id: &str, is_it: impl FnOnce(&C) -> bool) -> Option<C> {
        if !is_it(self.connections.get(id)?) {
            return None;
        }
        let connection = self.connections.remove(id)?;
        if let Some(user) = connection.user() {
            self.unlist(user, id);
        }
        self.leave_all(id);
        Some(connection)
    }

    /// The held connection `id`.
    pub fn connection(&self, id: &str) -> Option<&C> {
        self.connections.get(id)
    }

    /// Every held connection.
    pub fn connections(&self) -> impl Iterator<Item = &C> {
        self.connections.values()
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Whether a held connection belongs to `user`.
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Whether a held connection is in `group`.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Adds a held connection to a group; adding twice is a no-op.
    pub fn add_to_group(
        &mut self,
        id: &str,
        group: &str,
        max_groups: usize,
    ) -> Result<(), RouteError> {
        let Some((id, _)) = self.connections.get_key_value(id) else {
            return Ok(());
        };
        let id = id.clone();
        let memberships = self.member_of.entry(id.clone()).or_default();
        if memberships.contains(group) {
            return Ok(());
        }
        if memberships.len() >= max_groups {
            return Err(RouteError::TooManyGroups(max_groups));
        }
        let group: Arc<str> = Arc::from(group);
        memberships.insert(group.clone());
        self.groups.entry(group).or_default().insert(id);
        Ok(())
    }

    /// Takes connection `id` out of `group`; a no-op when it is not in it.
    pub fn remove_from_group(&mut self, id: &str, group: &str) {
        if let Some(set) = self.member_of.get_mut(id) {
            set.remove(group);
        }
        if let Some(set) = self.groups.get_mut(group) {
            set.remove(id);
            if set.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// Removes a held connection from every group it is in.
    pub fn leave_all(&mut self, id: &str) {
        for group in self.member_of.remove(id).unwrap_or_default() {
            if let Some(set) = self.groups.get_mut(&group) {
                set.remove(id);
                if set.is_empty() {
                    self.groups.remove(&group);
                }
            }
        }
    }

    /// Whether a held connection of `user` is in `group`.
    pub fn user_in_group(&self, user: &str, group: &str) -> bool {
        let (Some(ids), Some(members)) = (self.users.get(user), self.groups.get(group)) else {
            return false;
        };
        ids.iter().any(|id| members.contains(id))
    }

    /// The held connections `target` reaches, each once.
    pub fn resolve(&self, target: &Target) -> Vec<C> {
        let mut out = Vec::new();
        self.for_each(target, |c| out.push(c.clone()));
        out
    }

    /// Calls `f` with each held connection `target` reaches, once each, in
    /// place: a broadcast then neither collects nor reference-counts its
    /// recipients.
    pub fn for_each(&self, target: &Target, mut f: impl FnMut(&C)) {
        match target {
            Target::All { except } => {
                for (id, c) in &self.connections {
                    if !except.iter().any(|e| e.as_str() == &**id) {
                        f(c);
                    }
                }
            }
            Target::Connections(ids) => {
                let mut seen = HashSet::new();
                for id in ids {
                    if seen.insert(id.as_str())
                        && let Some(c) = self.connections.get(id.as_str())
                    {
                        f(c);
                    }
                }
            }
            Target::Users(users) => self.for_each_in(
                users.iter().filter_map(|u| self.users.get(u.as_str())),
                &[],
                f,
            ),
            Target::Groups { groups, except } => self.for_each_in(
                groups.iter().filter_map(|g| self.groups.get(g.as_str())),
                except,
                f,
            ),
        }
    }

    /// Each connection in `sets` once, but none named in `except`.
    fn for_each_in<'a>(
        &self,
        sets: impl Iterator<Item = &'a HashSet<Arc<str>>>,
        except: &[String],
        mut f: impl FnMut(&C),
    ) {
        let mut seen: HashSet<&str> = except.iter().map(String::as_str).collect();
        for set in sets {
            for id in set {
                if seen.insert(id)
                    && let Some(c) = self.connections.get(id)
                {
                    f(c);
                }
            }
        }
    }
}
