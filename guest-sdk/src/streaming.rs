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
/// client completes the stream. An error item (the client completed it with
/// an error, or an item did not decode) ends it too. The method must have been
/// registered with [`crate::MethodOptions::uploads`] of more than `index`.
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
    type Item = Result<T, HubError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match wit::next_upload(self.index) {
            Ok(Some(json)) => serde_json::from_str(&json).map_err(|e| {
                HubError::new(format!("invalid item in upload stream {}: {e}", self.index))
            }),
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(reason) => Err(host("streaming.next-upload")(reason).into()),
        };
        self.done = item.is_err();
        Some(item)
    }
}
