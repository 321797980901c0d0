//! A test host: run a hub's methods in a plain `cargo test`, without a
//! server, and assert on their results and on what they did.
//!
//! Only in native builds (it does not exist in the `wasm32-wasip2`
//! component), so the hub code itself stays exactly as it is deployed. While
//! a [`TestHost`] runs a hub function, the SDK's host calls on that thread go
//! to it instead of failing:
//!
//! - [`crate::kv`] reads and writes an in-memory store ([`TestHost::kv`],
//!   [`TestHost::set_kv`]);
//! - [`crate::clients`] sends are captured ([`TestHost::sent`]) and delivered
//!   to the connections the host knows, as the server would
//!   ([`TestHost::received`]); client results come from
//!   [`TestHost::answer_client_invocations`];
//! - [`crate::groups`] changes membership ([`TestHost::group_members`],
//!   [`TestHost::group_changes`]);
//! - [`crate::connection`] sees the [`Caller`]'s query, headers and items;
//! - [`crate::streaming`] collects a stream's items and serves upload streams
//!   ([`TestHost::call`]);
//! - [`crate::log`] lines are kept ([`TestHost::logs`]).
//!
//! ```
//! use serde_json::json;
//! use switchboard_guest::testing::{Caller, TestHost, To};
//! use switchboard_guest::{Context, Hub, HubError, Methods, clients, kv};
//!
//! struct Notify;
//!
//! impl Hub for Notify {
//!     fn methods(m: &mut Methods) {
//!         m.method("registerClient", register_client);
//!         m.method("notifyClient", notify_client);
//!     }
//! }
//!
//! fn register_client(ctx: &Context, (id,): (i64,)) -> Result<(), HubError> {
//!     kv::set(&format!("client:{id}"), ctx.connection_id())?;
//!     Ok(())
//! }
//!
//! fn notify_client(_: &Context, (id, text): (i64, String)) -> Result<(), HubError> {
//!     let connection = kv::get(&format!("client:{id}"))?.ok_or("Unable to find connection")?;
//!     clients::connection(&connection).send("addMessage", (text,))?;
//!     Ok(())
//! }
//!
//! let host = TestHost::new::<Notify>();
//! let phone = Caller::new("conn-1").user("ann");
//! let backend = Caller::new("conn-2");
//! host.connect(&phone).unwrap();
//!
//! assert_eq!(host.invoke(&phone, "registerClient", (42,)), Ok(None));
//! assert_eq!(host.kv("client:42").as_deref(), Some("conn-1"));
//!
//! host.invoke(&backend, "notifyClient", (42, "ready")).unwrap();
//! assert_eq!(host.sent()[0].to, To::Connections(vec!["conn-1".into()]));
//! assert_eq!(host.received(&phone)[0].args, json!(["ready"]));
//! assert!(host.received(&backend).is_empty());
//!
//! let e = host.invoke(&backend, "notifyClient", (7, "x")).unwrap_err();
//! assert_eq!(e.message(), "Unable to find connection");
//! ```
//!
//! The store never expires entries by itself: a test that depends on a TTL
//! reads it with [`TestHost::kv_ttl`] and ends it with [`TestHost::expire`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::bindings::types::{LogLevel, Target};
use crate::codec::encode_args;
use crate::{Context, Hub, HubError, Methods};

mod call;
pub(crate) mod state;

pub use call::{Call, Streamed};
use state::{Installed, State};

/// How a test answers a hub's [`crate::clients::Connection::invoke`]:
/// `(connection_id, method, args)` to the client's result or error.
pub(crate) type ClientResults = Rc<dyn Fn(&str, &str, &Value) -> Result<Value, String>>;

/// An in-memory Switchboard host for one hub, for native unit tests.
///
/// It runs the hub's methods as the server would: by SignalR name (any
/// casing), with the arguments encoded as a JSON array and the result decoded
/// back, and with every host call served from its own state. Each test makes
/// its own; two hosts never share anything.
pub struct TestHost {
    /// What the hub registered, dispatched exactly as in the component.
    methods: Methods,
    on_connected: fn(&Context) -> Result<(), HubError>,
    on_disconnected: fn(&Context, Option<&str>),
    tenant: String,
    hub: String,
    /// Shared with the thread-local slot while a hub function runs.
    state: Rc<RefCell<State>>,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost")
            .field("methods", &self.methods)
            .field("tenant", &self.tenant)
            .field("hub", &self.hub)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TestHost {
    /// A host for hub `H`, as tenant `"tenant"`'s hub `"hub"` (see
    /// [`TestHost::named`]), with an empty store and no connections.
    pub fn new<H: Hub>() -> Self {
        Self {
            methods: Methods::of::<H>(),
            on_connected: H::on_connected,
            on_disconnected: H::on_disconnected,
            tenant: "tenant".to_owned(),
            hub: "hub".to_owned(),
            state: Rc::default(),
        }
    }

    /// The same host with other tenant and hub names, as
    /// [`Context::tenant`] and [`Context::hub`] report them.
    pub fn named(mut self, tenant: impl Into<String>, hub: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self.hub = hub.into();
        self
    }

    /// The [`Context`] the hub sees for calls from `caller`.
    pub fn context(&self, caller: &Caller) -> Context {
        let ctx = Context::new(&*self.tenant, &*self.hub, &*caller.connection_id)
            .with_claims(&Value::Object(caller.claims.clone()));
        match &caller.user_id {
            Some(user) => ctx.with_user(user),
            None => ctx,
        }
    }

    /// Connects `caller`: runs the hub's `on_connected`. On success the
    /// connection receives sends; an error is the refusal the client sees.
    pub fn connect(&self, caller: &Caller) -> Result<(), HubError> {
        let ctx = self.context(caller);
        self.run(caller, Vec::new(), None, || (self.on_connected)(&ctx))
            .0
            .inspect_err(|_| self.forget(caller))
    }

    /// Disconnects `caller`: runs the hub's `on_disconnected` with `error`,
    /// then drops its groups and items, as the server does. Its received
    /// messages stay readable.
    pub fn disconnect(&self, caller: &Caller, error: Option<&str>) {
        let ctx = self.context(caller);
        self.run(caller, Vec::new(), None, || {
            (self.on_disconnected)(&ctx, error)
        });
        self.forget(caller);
    }

    /// Calls `method` as `caller` with `args` (anything that encodes as a
    /// JSON array: a tuple such as `(42, "text")`, or `()` for none).
    ///
    /// `Ok(None)` is a void completion, `Ok(Some(value))` a result; the error
    /// is the text the client would see. Panics if `args` is not an array.
    pub fn invoke(
        &self,
        caller: &Caller,
        method: &str,
        args: impl Serialize,
    ) -> Result<Option<Value>, HubError> {
        self.call(caller, method).args(args).invoke()
    }

    /// Calls streaming `method` as `caller` with `args`: the items it emitted
    /// and how it completed.
    pub fn stream(&self, caller: &Caller, method: &str, args: impl Serialize) -> Streamed {
        self.call(caller, method).args(args).stream()
    }

    /// A call with more to set up: raw JSON arguments, upload streams, or a
    /// client that cancels its stream.
    pub fn call<'h>(&'h self, caller: &Caller, method: &str) -> Call<'h> {
        Call::new(self, caller, method)
    }

    /// How long the hub's functions have slept ([`crate::invocation::sleep`])
    /// so far. Time is virtual on the test host: a sleep returns at once.
    pub fn slept(&self) -> Duration {
        self.state.borrow().slept
    }

    /// Runs `f` as if `caller`'s hub function did: host calls made inside go
    /// to this host (for testing helpers that are not hub methods).
    pub fn enter<R>(&self, caller: &Caller, f: impl FnOnce() -> R) -> R {
        self.run(caller, Vec::new(), None, f).0
    }

    /// Runs a hub function for `caller` with this host installed, and returns
    /// what it returned and the stream items it emitted.
    fn run<R>(
        &self,
        caller: &Caller,
        uploads: Vec<(VecDeque<String>, Option<String>)>,
        cancel_after: Option<usize>,
        f: impl FnOnce() -> R,
    ) -> (R, Vec<Value>) {
        {
            let mut state = self.state.borrow_mut();
            let connection = state
                .connections
                .entry(caller.connection_id.clone())
                .or_default();
            connection.user_id.clone_from(&caller.user_id);
            connection.query.clone_from(&caller.query);
            connection.headers.clone_from(&caller.headers);
            connection.cookies.clone_from(&caller.cookies);
            connection.transport = caller.transport;
            connection.connected = true;
            state.invocation = Some(state::Invocation {
                connection_id: caller.connection_id.clone(),
                uploads,
                emitted: Vec::new(),
                cancel_after,
            });
        }
        let returned = {
            let _installed = Installed::new(&self.state);
            f()
        };
        let emitted = self
            .state
            .borrow_mut()
            .invocation
            .take()
            .map(|i| i.emitted)
            .unwrap_or_default();
        (returned, emitted)
    }

    /// Dispatches a call built by [`Call`].
    fn dispatch(
        &self,
        caller: &Caller,
        method: &str,
        args_json: &str,
        uploads: Vec<(VecDeque<String>, Option<String>)>,
        cancel_after: Option<usize>,
    ) -> (Result<Option<String>, HubError>, Vec<Value>) {
        let ctx = self.context(caller);
        self.run(caller, uploads, cancel_after, || {
            self.methods.invoke(&ctx, method, args_json)
        })
    }

    fn forget(&self, caller: &Caller) {
        let mut state = self.state.borrow_mut();
        let id = &caller.connection_id;
        if let Some(connection) = state.connections.get_mut(id) {
            connection.connected = false;
            connection.items.clear();
        }
        state.groups.retain(|_, members| {
            members.remove(id);
            !members.is_empty()
        });
    }

    /// Every send the hub made, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.borrow().sent.clone()
    }

    /// Returns the sends made so far and forgets them (and every
    /// connection's received messages), to assert on the next step alone.
    pub fn take_sent(&self) -> Vec<Sent> {
        let mut state = self.state.borrow_mut();
        for connection in state.connections.values_mut() {
            connection.inbox.clear();
        }
        std::mem::take(&mut state.sent)
    }

    /// What `caller`'s connection received, in order: sends that named it,
    /// its user, a group it was in at the time, or everyone, while it was
    /// connected (it connected or made a call, and did not disconnect).
    pub fn received(&self, caller: &Caller) -> Vec<Message> {
        self.state
            .borrow()
            .connections
            .get(&caller.connection_id)
            .map(|c| c.inbox.clone())
            .unwrap_or_default()
    }

    /// The client invocations (client results) the hub asked for, in order.
    pub fn client_invocations(&self) -> Vec<Invoked> {
        self.state.borrow().invoked.clone()
    }

    /// How clients answer the hub's [`crate::clients::Connection::invoke`]:
    /// `answer(connection_id, method, args)` returns the client's result, or
    /// the error the hub then gets. Without it those calls fail.
    pub fn answer_client_invocations(
        &self,
        answer: impl Fn(&str, &str, &Value) -> Result<Value, String> + 'static,
    ) {
        self.state.borrow_mut().client_results = Some(Rc::new(answer));
    }

    /// The members of `group`, sorted.
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.state
            .borrow()
            .groups
            .get(group)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The groups `caller`'s connection is in, sorted.
    pub fn groups_of(&self, caller: &Caller) -> Vec<String> {
        self.state
            .borrow()
            .groups
            .iter()
            .filter(|(_, members)| members.contains(&caller.connection_id))
            .map(|(group, _)| group.clone())
            .collect()
    }

    /// Every `groups::add` and `groups::remove` the hub made, in order.
    pub fn group_changes(&self) -> Vec<GroupChange> {
        self.state.borrow().group_changes.clone()
    }

    /// The value of `key` in the store.
    pub fn kv(&self, key: &str) -> Option<String> {
        self.state.borrow().kv.get(key).map(|e| e.value.clone())
    }

    /// The TTL `key` was last set with; `None` when absent or set without one.
    pub fn kv_ttl(&self, key: &str) -> Option<Duration> {
        self.state.borrow().kv.get(key).and_then(|e| e.ttl)
    }

    /// Every key in the store, sorted, with its value.
    pub fn kv_entries(&self) -> Vec<(String, String)> {
        self.state
            .borrow()
            .kv
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// Sets `key` as a hub would, with no expiry (to prepare a test).
    pub fn set_kv(&self, key: &str, value: &str) {
        self.state.borrow_mut().set_kv(key, value, None);
    }

    /// Ends `key` as if its TTL ran out (or it was deleted elsewhere).
    pub fn expire(&self, key: &str) {
        self.state.borrow_mut().kv.remove(key);
    }

    /// An item of `caller`'s connection ([`crate::connection::item`]).
    pub fn item(&self, caller: &Caller, key: &str) -> Option<String> {
        self.state
            .borrow()
            .connections
            .get(&caller.connection_id)
            .and_then(|c| c.items.get(key).cloned())
    }

    /// Makes every host call named `call` (`"kv.set"`, `"clients.send"`,
    /// `"groups.add"`, ... as [`crate::HostError::call`] names them) fail
    /// with `reason` until [`TestHost::heal`], to test a hub's error paths.
    pub fn fail(&self, call: &str, reason: &str) {
        self.state
            .borrow_mut()
            .failing
            .insert(call.to_owned(), reason.to_owned());
    }

    /// Makes `call` succeed again after [`TestHost::fail`].
    pub fn heal(&self, call: &str) {
        self.state.borrow_mut().failing.remove(call);
    }

    /// The lines the hub logged, in order (they also go to stderr).
    pub fn logs(&self) -> Vec<LogLine> {
        self.state.borrow().logs.clone()
    }
}

/// The connection a test calls from: its id, user, token claims and the
/// request that opened it.
#[derive(Debug, Clone)]
pub struct Caller {
    connection_id: String,
    user_id: Option<String>,
    claims: Map<String, Value>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    transport: Option<crate::connection::Transport>,
}

impl Caller {
    /// An anonymous connection with this id.
    pub fn new(connection_id: impl Into<String>) -> Self {
        Self {
            connection_id: connection_id.into(),
            user_id: None,
            claims: Map::new(),
            query: Vec::new(),
            headers: Vec::new(),
            cookies: Vec::new(),
            transport: Some(crate::connection::Transport::WebSockets),
        }
    }

    /// The same caller, authenticated as `user_id` (also its `sub` claim,
    /// unless a claim says otherwise).
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        let user_id = user_id.into();
        self.claims
            .entry("sub")
            .or_insert_with(|| Value::String(user_id.clone()));
        self.user_id = Some(user_id);
        self
    }

    /// The same caller with token claim `name` set to `value`.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// The same caller with query parameter `name=value` on its request.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// The same caller with header `name: value` on its request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same caller with cookie `name=value` on its request (as a cookie
    /// the tenant's `plugin_cookies` allows).
    pub fn cookie(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cookies.push((name.into(), value.into()));
        self
    }

    /// The same caller on another transport (WebSockets unless set).
    pub fn transport(mut self, transport: crate::connection::Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The connection id.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

/// A send the hub made: to whom, which client method, which arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The recipients as the hub named them.
    pub to: To,
    /// The client method invoked.
    pub method: String,
    /// The arguments, a JSON array.
    pub args: Value,
}

/// Recipients of a send, as the hub named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// `clients::all()`, `others(ctx)`, `all_except(ids)`.
    All {
        /// Connections left out.
        except: Vec<String>,
    },
    /// `clients::caller(ctx)`, `connection(id)`, `connections(ids)`.
    Connections(Vec<String>),
    /// `clients::user(id)`, `users(ids)`.
    Users(Vec<String>),
    /// `clients::group(g)`, `groups(gs)`, `others_in_group(ctx, g)`.
    Groups {
        /// The groups whose members receive it.
        groups: Vec<String>,
        /// Connections left out.
        except: Vec<String>,
    },
}

impl From<&Target> for To {
    fn from(target: &Target) -> Self {
        match target {
            Target::All(except) => Self::All {
                except: except.clone(),
            },
            Target::Connections(ids) => Self::Connections(ids.clone()),
            Target::Users(ids) => Self::Users(ids.clone()),
            Target::Groups(g) => Self::Groups {
                groups: g.groups.clone(),
                except: g.except.clone(),
            },
        }
    }
}

/// A message one connection received.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The client method invoked.
    pub method: String,
    /// The arguments, a JSON array.
    pub args: Value,
}

/// A client result the hub asked one connection for.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    /// The connection asked.
    pub connection_id: String,
    /// The client method invoked.
    pub method: String,
    /// The arguments, a JSON array.
    pub args: Value,
}

/// A group membership change the hub made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// `groups::add(connection_id, group)`.
    Added {
        /// The connection added.
        connection_id: String,
        /// The group.
        group: String,
    },
    /// `groups::remove(connection_id, group)`.
    Removed {
        /// The connection removed.
        connection_id: String,
        /// The group.
        group: String,
    },
}

/// A line the hub wrote to the tenant log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// Its text.
    pub message: String,
}

/// A log level, as [`crate::log`]'s functions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// [`crate::log::trace`].
    Trace,
    /// [`crate::log::debug`].
    Debug,
    /// [`crate::log::info`].
    Info,
    /// [`crate::log::warn`].
    Warn,
    /// [`crate::log::error`].
    Error,
}

impl From<LogLevel> for Level {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Trace => Self::Trace,
            LogLevel::Debug => Self::Debug,
            LogLevel::Info => Self::Info,
            LogLevel::Warn => Self::Warn,
            LogLevel::Error => Self::Error,
        }
    }
}

/// Encodes a test's arguments as the client would send them.
fn encode(args: &impl Serialize) -> String {
    encode_args(args).unwrap_or_else(|e| panic!("test arguments: {e}"))
}

#[cfg(test)]
mod tests;
