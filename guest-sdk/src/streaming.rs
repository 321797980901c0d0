//! Streams: items a server-streaming method sends to its caller ([`Stream`]),
//! and items a client uploads to a method ([`upload`]).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::host;
use crate::host::streaming as wit;
use crate::{HostError, HubError};

/// The caller's stream, handed to a method registered with
/// [`crate::Methods::stream`].
///
/// It is a handle, not a buffer: each [`Stream::emit`] goes to the host at once.
#[derive(Debug)]
pub struct Stream {
    /// Only the SDK makes one, so `emit` is only called during a stream call.
    _private: (),
}

impl Stream {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// Sends one item to the caller.
    ///
    /// Fails once the client has cancelled the stream or disconnected; the
    /// method should then stop and return (propagating the error with `?` is
    /// fine: nobody is listening for it).
    pub fn emit<T: Serialize + ?Sized>(&self, item: &T) -> Result<(), HostError> {
        let json = serde_json::to_string(item)
            .map_err(|e| HostError::new("streaming.emit", e.to_string()))?;
        wit::emit(&json).map_err(host("streaming.emit"))
    }
}

/// The caller's `index`-th upload stream (client-to-server), as an iterator
/// of items decoded into `T`.
///
/// Each `next()` waits for the client's next item; the iterator ends when the
/// client completes the stream. An error item ends it too, and says why
/// ([`UploadError`]): the client completed the stream with an error, the call
/// was cancelled, an item did not decode, or the host failed. The method must
/// have been registered with [`crate::MethodOptions::uploads`] of more than
/// `index`.
///
/// ```
/// use switchboard_guest::streaming::{self, UploadError};
/// use switchboard_guest::{Context, HubError};
///
/// fn total(_: &Context, (): ()) -> Result<String, HubError> {
///     let mut sum = 0i64;
///     for item in streaming::upload::<i64>(0) {
///         match item {
///             Ok(n) => sum += n,
///             // The client's own error text, as it sent it.
///             Err(UploadError::Client(why)) => return Ok(format!("stopped at {sum}: {why}")),
///             // Anything else: fail the call (`?` works too).
///             Err(other) => return Err(other.into()),
///         }
///     }
///     Ok(sum.to_string())
/// }
/// ```
pub fn upload<T: DeserializeOwned>(index: u32) -> Upload<T> {
    Upload {
        index,
        done: false,
        item: PhantomData,
    }
}

/// Iterator over one upload stream; see [`upload`].
#[derive(Debug)]
pub struct Upload<T> {
    /// Which of the method's upload streams this is.
    index: u32,
    /// Set at the end or after an error, so the host is not asked again.
    done: bool,
    item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for Upload<T> {
    type Item = Result<T, UploadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match wit::next_upload_item(self.index) {
            Ok(Some(json)) => serde_json::from_str(&json).map_err(|e| {
                UploadError::Invalid(format!("invalid item in upload stream {}: {e}", self.index))
            }),
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(wit::UploadError::Client(text)) => Err(UploadError::Client(text)),
            Err(wit::UploadError::Cancelled) => Err(UploadError::Cancelled),
            Err(wit::UploadError::Host(reason)) => {
                Err(UploadError::Host(host("streaming.next-upload")(reason)))
            }
        };
        self.done = item.is_err();
        Some(item)
    }
}

/// Why an upload stream ended with an error instead of its normal end.
///
/// Converts into [`HubError`] with `?`: the client then sees the text of
/// [`UploadError`]'s `Display`, which for [`UploadError::Client`] is the
/// client's own error text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadError {
    /// The client completed the stream with an error; its text, as sent.
    Client(String),
    /// The call was cancelled: the client sent CancelInvocation, or its
    /// connection ended. Nobody waits for the method's result any more.
    Cancelled,
    /// An item did not decode into the stream's item type.
    Invalid(String),
    /// The host failed the read (e.g. the method has no such upload stream).
    Host(HostError),
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Client(text) | UploadError::Invalid(text) => f.write_str(text),
            UploadError::Cancelled => f.write_str("the call was cancelled"),
            UploadError::Host(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for UploadError {}

impl From<UploadError> for HubError {
    fn from(error: UploadError) -> Self {
        HubError::new(error.to_string())
    }
}
