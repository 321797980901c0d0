//! The two error types of the SDK: what a hub method returns ([`HubError`])
//! and what a host call returns ([`HostError`]).

use std::fmt;

/// The error a hub method (or `on_connected`) returns.
///
/// Its message is the error text the client sees, verbatim: SignalR clients
/// show it as the `error` of the completion (or of the refused connection), so
/// write it for them and leave internals to [`crate::log`].
///
/// Anything string-like converts with `?` or `.into()`, and so do
/// [`HostError`] and `serde_json::Error`:
///
/// ```
/// use switchboard_guest::HubError;
///
/// fn check(status: &str) -> Result<(), HubError> {
///     match status {
///         "Confirmed" | "Failed" => Ok(()),
///         other => Err(format!("Unknown status '{other}'").into()),
///     }
/// }
/// assert_eq!(check("Maybe").unwrap_err().message(), "Unknown status 'Maybe'");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    /// The client's error text.
    message: String,
}

impl HubError {
    /// An error whose client-facing text is `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The client-facing text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The client-facing text, by value (what crosses the WIT boundary).
    pub fn into_message(self) -> String {
        self.message
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HubError {}

impl From<String> for HubError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for HubError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<HostError> for HubError {
    fn from(error: HostError) -> Self {
        Self::new(error.to_string())
    }
}

impl From<serde_json::Error> for HubError {
    fn from(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }
}

/// A host call failed: the host refused it (its text says why), or its
/// arguments could not be encoded, or its result could not be decoded.
///
/// Converts into [`HubError`] with `?`, so a handler can simply propagate it;
/// the client then sees `"<call> failed: <reason>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// The WIT function that failed, e.g. `"kv.set"`, so the text says which
    /// of a handler's several host calls it was.
    call: &'static str,
    /// Why, in the host's words (or the encoder's).
    reason: String,
}

impl HostError {
    pub(crate) fn new(call: &'static str, reason: impl Into<String>) -> Self {
        Self {
            call,
            reason: reason.into(),
        }
    }

    /// The host function that failed, as `interface.function` (e.g. `"clients.send"`).
    pub fn call(&self) -> &'static str {
        self.call
    }

    /// Why it failed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.reason)
    }
}

impl std::error::Error for HostError {}

/// Tags a raw WIT error string with the call it came from.
pub(crate) fn host(call: &'static str) -> impl FnOnce(String) -> HostError {
    move |reason| HostError::new(call, reason)
}
