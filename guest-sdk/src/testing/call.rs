//! [`Call`]: one invocation on a [`TestHost`], with what a shortcut like
//! [`TestHost::invoke`] leaves out (raw JSON arguments, upload streams, a
//! client that cancels its stream).

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

use super::{Caller, TestHost, encode};
use crate::HubError;

/// An invocation being set up; finish it with [`Call::invoke`] or
/// [`Call::stream`].
///
/// ```
/// use switchboard_guest::testing::{Caller, TestHost};
/// use switchboard_guest::streaming::UploadError;
/// use switchboard_guest::{Context, Hub, Methods, Stream, streaming};
///
/// struct Numbers;
///
/// impl Hub for Numbers {
///     fn methods(m: &mut Methods) {
///         m.method("sum", |_: &Context, (): ()| {
///             streaming::upload::<i64>(0).sum::<Result<i64, UploadError>>()
///         })
///         .uploads(1);
///         m.stream("count", |_: &Context, (n,): (u32,), s: &Stream| {
///             (0..n).try_for_each(|i| s.emit(&i))
///         });
///     }
/// }
///
/// let host = TestHost::new::<Numbers>();
/// let ann = Caller::new("c-1");
/// let sum = host.call(&ann, "sum").upload([1, 2, 3]).invoke();
/// assert_eq!(sum, Ok(Some(6.into())));
///
/// let counted = host.call(&ann, "count").args((10,)).cancel_after(2).stream();
/// assert_eq!(counted.items, [0, 1]);
/// assert!(counted.result.is_err()); // emit failed: the client had cancelled
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until `invoke` or `stream`"]
pub struct Call<'h> {
    host: &'h TestHost,
    caller: Caller,
    method: String,
    /// The JSON argument array; `[]` until set.
    args_json: String,
    uploads: Vec<(VecDeque<String>, Option<String>)>,
    cancel_after: Option<usize>,
}

/// What a streaming method did: the items it emitted, then its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Streamed {
    /// Every item emitted, in order.
    pub items: Vec<Value>,
    /// `Ok(())` completed the stream; an error completed it with that text.
    pub result: Result<(), HubError>,
}

impl<'h> Call<'h> {
    pub(super) fn new(host: &'h TestHost, caller: &Caller, method: &str) -> Self {
        Self {
            host,
            caller: caller.clone(),
            method: method.to_owned(),
            args_json: "[]".to_owned(),
            uploads: Vec::new(),
            cancel_after: None,
        }
    }

    /// The arguments: anything that encodes as a JSON array (a tuple such as
    /// `(42, "text")`); `()` for none. Panics if it is not an array.
    pub fn args(mut self, args: impl Serialize) -> Self {
        self.args_json = encode(&args);
        self
    }

    /// The argument array as raw JSON text, exactly as the host passes it on
    /// (to test what a hub does with malformed or unexpected arguments).
    pub fn args_json(mut self, args_json: impl Into<String>) -> Self {
        self.args_json = args_json.into();
        self
    }

    /// Adds the next upload stream (index 0, then 1, ...): the client sends
    /// these items, then completes the stream.
    pub fn upload<I>(mut self, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        self.uploads.push((json_items(items), None));
        self
    }

    /// Adds the next upload stream, which the client completes with `error`
    /// after these items.
    pub fn upload_failing<I>(mut self, items: I, error: &str) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        self.uploads
            .push((json_items(items), Some(error.to_owned())));
        self
    }

    /// The client cancels a server-to-client stream after receiving `count`
    /// items: the next [`crate::Stream::emit`] fails.
    pub fn cancel_after(mut self, count: usize) -> Self {
        self.cancel_after = Some(count);
        self
    }

    /// Runs the method: `Ok(None)` for a void completion, `Ok(Some(value))`
    /// for a result, or the error text the client would see.
    pub fn invoke(self) -> Result<Option<Value>, HubError> {
        self.run().0.map(|reply| {
            reply.map(|json| serde_json::from_str(&json).unwrap_or(Value::String(json)))
        })
    }

    /// Runs a streaming method: the items it emitted and how it completed.
    pub fn stream(self) -> Streamed {
        let (result, items) = self.run();
        Streamed {
            items,
            result: result.map(|_| ()),
        }
    }

    fn run(self) -> (Result<Option<String>, HubError>, Vec<Value>) {
        self.host.dispatch(
            &self.caller,
            &self.method,
            &self.args_json,
            self.uploads,
            self.cancel_after,
        )
    }
}

fn json_items<I>(items: I) -> VecDeque<String>
where
    I: IntoIterator,
    I::Item: Serialize,
{
    items
        .into_iter()
        .map(|item| {
            serde_json::to_string(&item).unwrap_or_else(|e| panic!("test upload item: {e}"))
        })
        .collect()
}
