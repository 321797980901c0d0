//! [`Methods`]: the registry a hub fills in [`crate::Hub::methods`], mapping
//! SignalR method names to type-erased handlers.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode_args, encode_reply};
use crate::streaming::Stream;
use crate::{Context, Hub, HubError};

/// How a method is called by clients (the WIT `method-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Invocation`: one result, or a void completion.
    Unary,
    /// `StreamInvocation`: items emitted through a [`Stream`], then completion.
    ServerStream,
}

/// Why an erased handler failed; [`crate::dispatch`] turns it into the
/// client's error text, adding the method name where SignalR would.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The argument array did not decode into the handler's argument type.
    Args(String),
    /// The handler's return value did not encode as JSON.
    Reply(String),
    /// The handler returned an error: its text goes to the client as is.
    Hub(HubError),
}

/// A handler with its argument and result types erased: JSON array in, WIT
/// result out (`None` is a void completion).
type Handler = Box<dyn Fn(&Context, &str) -> Result<Option<String>, Failure>>;

/// One registered method.
pub(crate) struct Method {
    /// The SignalR name, as registered (and as reported by `describe`).
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: Kind,
    /// How many of the method's parameters are client-to-server streams.
    pub(crate) uploads: u32,
    pub(crate) handler: Handler,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("uploads", &self.uploads)
            .finish_non_exhaustive()
    }
}

/// The methods of a hub, filled in by [`crate::Hub::methods`].
///
/// Names are SignalR method names (`"registerClient"`); clients' calls match
/// them case-insensitively, as in ASP.NET Core. Registering one name twice
/// (in any casing) is a bug in the plugin and panics, which the host reports
/// when it loads the plugin.
///
/// A handler is a function or closure `Fn(&Context, Args) -> Result<R, E>`:
/// - `Args` is what serde decodes the client's argument array into: a tuple
///   such as `(i64, String)`, a `Vec<serde_json::Value>`, or `()` for a method
///   that takes no arguments.
/// - `R` is any `Serialize` value sent back as the result; `()` makes a void
///   completion, while `Option::None` or `Value::Null` reach the client as `null`.
/// - `E` is anything convertible into [`HubError`] (`String`, `&str`,
///   [`crate::HostError`], `serde_json::Error`).
///
/// ```
/// use switchboard_guest::{Context, HubError, Methods};
///
/// fn echo(_: &Context, (value,): (serde_json::Value,)) -> Result<serde_json::Value, HubError> {
///     Ok(value)
/// }
///
/// fn register(m: &mut Methods) {
///     m.method("echo", echo);
///     m.method("add", |_: &Context, (a, b): (i64, i64)| Ok::<_, HubError>(a + b));
///     m.method("ping", |_: &Context, (): ()| Ok::<_, HubError>("pong"));
/// }
/// # let mut m = Methods::new();
/// # register(&mut m);
/// ```
#[derive(Default)]
pub struct Methods {
    entries: Vec<Method>,
}

impl std::fmt::Debug for Methods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|m| &m.name))
            .finish()
    }
}

impl Methods {
    /// An empty registry. Plugins get one from the SDK; this is public for
    /// native unit tests (see [`Methods::of`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The methods hub `H` registers: what the SDK dispatches to. Together
    /// with [`Methods::invoke`] it lets a plugin test its handlers natively,
    /// as long as they make no host calls.
    pub fn of<H: Hub>() -> Self {
        let mut methods = Self::new();
        H::methods(&mut methods);
        methods
    }

    /// Registers a unary method (a SignalR `Invocation`).
    pub fn method<A, R, E, F>(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        handler: F,
    ) -> MethodOptions<'_>
    where
        F: Fn(&Context, A) -> Result<R, E> + 'static,
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
        E: Into<HubError>,
    {
        let handler = move |ctx: &Context, args_json: &str| {
            let args = decode_args::<A>(args_json).map_err(Failure::Args)?;
            let reply = handler(ctx, args).map_err(|e| Failure::Hub(e.into()))?;
            encode_reply(&reply).map_err(Failure::Reply)
        };
        self.push(name.into(), Kind::Unary, Box::new(handler))
    }

    /// Registers a server-streaming method (a SignalR `StreamInvocation`).
    ///
    /// The handler emits items through the [`Stream`] it is given, then
    /// returns `Ok(())` to complete the stream or an error to complete it with
    /// that error. When [`Stream::emit`] fails the client has gone or
    /// cancelled, and the handler should return.
    ///
    /// ```
    /// use switchboard_guest::{Context, HubError, Methods, Stream};
    ///
    /// fn counter(_: &Context, (count,): (u32,), stream: &Stream) -> Result<(), HubError> {
    ///     for i in 0..count {
    ///         stream.emit(&i)?;
    ///     }
    ///     Ok(())
    /// }
    /// # let mut m = Methods::new();
    /// m.stream("counter", counter);
    /// ```
    pub fn stream<A, E, F>(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        handler: F,
    ) -> MethodOptions<'_>
    where
        F: Fn(&Context, A, &Stream) -> Result<(), E> + 'static,
        A: DeserializeOwned + 'static,
        E: Into<HubError>,
    {
        let handler = move |ctx: &Context, args_json: &str| {
            let args = decode_args::<A>(args_json).map_err(Failure::Args)?;
            handler(ctx, args, &Stream::new()).map_err(|e| Failure::Hub(e.into()))?;
            Ok(None)
        };
        self.push(name.into(), Kind::ServerStream, Box::new(handler))
    }

    /// Every method, in registration order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Method> {
        self.entries.iter()
    }

    /// The method clients call as `name`, ignoring ASCII case as SignalR does.
    pub(crate) fn find(&self, name: &str) -> Option<&Method> {
        self.entries
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    fn push(&mut self, name: Cow<'static, str>, kind: Kind, handler: Handler) -> MethodOptions<'_> {
        if let Some(existing) = self.find(&name) {
            panic!(
                "hub method '{name}' is registered twice (as '{}'); method names match case-insensitively",
                existing.name
            );
        }
        self.entries.push(Method {
            name,
            kind,
            uploads: 0,
            handler,
        });
        let last = self.entries.len() - 1;
        MethodOptions {
            method: &mut self.entries[last],
        }
    }
}

/// Further settings of a method just registered.
#[derive(Debug)]
pub struct MethodOptions<'a> {
    method: &'a mut Method,
}

impl MethodOptions<'_> {
    /// Declares that `count` of the method's parameters are client-to-server
    /// streams (SignalR upload streams). They are not in the argument array:
    /// the handler reads them with [`crate::streaming::upload`], by index
    /// `0..count` in the order of the client's stream ids.
    ///
    /// ```
    /// use switchboard_guest::{Context, HubError, Methods, streaming};
    ///
    /// fn sum(_: &Context, (): ()) -> Result<i64, HubError> {
    ///     let mut total = 0;
    ///     for item in streaming::upload::<i64>(0) {
    ///         total += item?;
    ///     }
    ///     Ok(total)
    /// }
    /// # let mut m = Methods::new();
    /// m.method("sum", sum).uploads(1);
    /// ```
    pub fn uploads(self, count: u32) -> Self {
        self.method.uploads = count;
        self
    }
}

#[cfg(test)]
mod tests;
