//! The test host's world: what the host calls of a native build read and
//! change while a [`super::TestHost`] runs a hub function on this thread.
//!
//! The host-call modules go through `host/native.rs`, which asks [`with`] for
//! the state installed on the current thread; without one every call fails
//! with the native build's "no host" error, as before there was a test host.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

use super::{ClientResults, GroupChange, Invoked, LogLine, Message, Sent, To};
use crate::bindings::switchboard::hub::streaming::UploadError as WitUploadError;
use crate::bindings::types::{LogLevel, Target};

thread_local! {
    /// The state of the test host running a hub function on this thread, if any.
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// Runs `f` on the current thread's test host state; `None` when no test host
/// is running a hub function here.
///
/// The state is borrowed only for `f`, never while plugin code runs, so host
/// calls made by a hub function cannot overlap.
pub(crate) fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let state = CURRENT.with(|current| current.borrow().clone())?;
    let mut state = state.borrow_mut();
    Some(f(&mut state))
}

/// Makes `state` the current thread's test host until dropped, then restores
/// whatever was current before (so test hosts nest, and a panicking hub
/// function does not leave its host installed).
pub(crate) struct Installed {
    previous: Option<Rc<RefCell<State>>>,
}

impl Installed {
    pub(crate) fn new(state: &Rc<RefCell<State>>) -> Self {
        let previous = CURRENT.with(|current| current.replace(Some(Rc::clone(state))));
        Self { previous }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| drop(current.replace(previous)));
    }
}

/// One connection the test host knows: it connected, or made a call.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    pub(crate) user_id: Option<String>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) cookies: Vec<(String, String)>,
    pub(crate) transport: Option<crate::connection::Transport>,
    pub(crate) items: BTreeMap<String, String>,
    /// What it received, in order.
    pub(crate) inbox: Vec<Message>,
    /// False after `disconnect`: it receives nothing more until it calls again.
    pub(crate) connected: bool,
}

/// A key-value entry, with the TTL it was set with.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: String,
    pub(crate) ttl: Option<Duration>,
}

/// The call being run: whose it is, its upload streams and its stream items.
#[derive(Debug, Default)]
pub(crate) struct Invocation {
    pub(crate) connection_id: String,
    /// Per upload stream: the items still to hand out, then how it ends.
    pub(crate) uploads: Vec<(VecDeque<String>, Option<String>)>,
    /// Items emitted so far (server-to-client stream).
    pub(crate) emitted: Vec<Value>,
    /// After this many items, `emit` fails as if the client cancelled.
    pub(crate) cancel_after: Option<usize>,
}

/// Everything a test host records and serves.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) kv: BTreeMap<String, Entry>,
    pub(crate) connections: BTreeMap<String, Connection>,
    pub(crate) groups: BTreeMap<String, BTreeSet<String>>,
    pub(crate) sent: Vec<Sent>,
    pub(crate) group_changes: Vec<GroupChange>,
    pub(crate) invoked: Vec<Invoked>,
    pub(crate) logs: Vec<LogLine>,
    /// Host calls made to fail, by name (`"kv.set"`), with the reason.
    pub(crate) failing: HashMap<String, String>,
    pub(crate) client_results: Option<ClientResults>,
    pub(crate) invocation: Option<Invocation>,
    /// Time hub functions slept, on the virtual clock.
    pub(crate) slept: Duration,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("kv", &self.kv)
            .field("connections", &self.connections)
            .field("groups", &self.groups)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The error of an upload or stream call made outside a call that has one.
const NO_INVOCATION: &str = "no invocation is running on the test host";

impl State {
    /// The reason `call` was made to fail, if it was.
    pub(crate) fn check(&self, call: &str) -> Result<(), String> {
        match self.failing.get(call) {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// Records a send and delivers it to every known, connected recipient
    /// as membership stands now.
    pub(crate) fn send(&mut self, target: &Target, method: &str, args_json: &str) {
        let args = parse(args_json);
        let to = To::from(target);
        let recipients: Vec<String> = self
            .connections
            .iter()
            .filter(|(id, c)| c.connected && self.receives(&to, id, c))
            .map(|(id, _)| id.clone())
            .collect();
        for id in recipients {
            if let Some(connection) = self.connections.get_mut(&id) {
                connection.inbox.push(Message {
                    method: method.to_owned(),
                    args: args.clone(),
                });
            }
        }
        self.sent.push(Sent {
            to,
            method: method.to_owned(),
            args,
        });
    }

    fn receives(&self, to: &To, id: &str, connection: &Connection) -> bool {
        let member = |group: &String| self.groups.get(group).is_some_and(|m| m.contains(id));
        match to {
            To::All { except } => !except.iter().any(|e| e == id),
            To::Connections(ids) => ids.iter().any(|c| c == id),
            To::Users(users) => connection
                .user_id
                .as_ref()
                .is_some_and(|u| users.contains(u)),
            To::Groups { groups, except } => {
                groups.iter().any(member) && !except.iter().any(|e| e == id)
            }
        }
    }

    pub(crate) fn add_to_group(&mut self, connection_id: &str, group: &str) {
        self.groups
            .entry(group.to_owned())
            .or_default()
            .insert(connection_id.to_owned());
        self.group_changes.push(GroupChange::Added {
            connection_id: connection_id.to_owned(),
            group: group.to_owned(),
        });
    }

    pub(crate) fn remove_from_group(&mut self, connection_id: &str, group: &str) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(connection_id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
        self.group_changes.push(GroupChange::Removed {
            connection_id: connection_id.to_owned(),
            group: group.to_owned(),
        });
    }

    /// The connection a call runs for, if it is one the host knows.
    pub(crate) fn caller(&self) -> Option<&Connection> {
        let id = &self.invocation.as_ref()?.connection_id;
        self.connections.get(id)
    }

    pub(crate) fn caller_mut(&mut self) -> Option<&mut Connection> {
        let id = &self.invocation.as_ref()?.connection_id;
        self.connections.get_mut(id)
    }

    pub(crate) fn set_kv(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) {
        self.kv.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                ttl: ttl_ms.map(Duration::from_millis),
            },
        );
    }

    /// Whether the running call's client has cancelled it (its stream got
    /// the items `cancel_after` allows).
    pub(crate) fn cancelled(&self) -> bool {
        self.invocation
            .as_ref()
            .is_some_and(|i| i.cancel_after.is_some_and(|n| i.emitted.len() >= n))
    }

    /// A sleep on the virtual clock: counted, never waited.
    pub(crate) fn sleep(&mut self, ms: u32) -> Result<(), String> {
        if self.cancelled() {
            return Err("the call was cancelled".to_owned());
        }
        self.slept += Duration::from_millis(u64::from(ms));
        Ok(())
    }

    pub(crate) fn emit(&mut self, item_json: &str) -> Result<(), String> {
        if self.cancelled() {
            return Err("the client cancelled the stream".to_owned());
        }
        let invocation = self.invocation.as_mut().ok_or(NO_INVOCATION)?;
        invocation.emitted.push(parse(item_json));
        Ok(())
    }

    pub(crate) fn next_upload(&mut self, index: u32) -> Result<Option<String>, WitUploadError> {
        if self.cancelled() {
            return Err(WitUploadError::Cancelled);
        }
        let invocation = self
            .invocation
            .as_mut()
            .ok_or_else(|| WitUploadError::Host(NO_INVOCATION.to_owned()))?;
        let Some((items, end)) = usize::try_from(index)
            .ok()
            .and_then(|i| invocation.uploads.get_mut(i))
        else {
            return Err(WitUploadError::Host(format!(
                "the invocation has no upload stream {index}"
            )));
        };
        match items.pop_front() {
            Some(item) => Ok(Some(item)),
            None => match end.take() {
                Some(error) => Err(WitUploadError::Client(error)),
                None => Ok(None),
            },
        }
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push(LogLine {
            level: level.into(),
            message: message.to_owned(),
        });
    }
}

/// JSON the SDK encoded, as a value (text that is not JSON stays a string).
fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_owned()))
}
