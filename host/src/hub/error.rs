//! Why a hub invocation failed, and the text its client sees.
//!
//! As in ASP.NET Core, an error the hub method raises on purpose (a
//! `HubException` there, a plugin's `Err` here) reaches the client verbatim;
//! anything else that stopped the call (a panic, a trap, a result that is not
//! JSON, a send that could not be stored) reaches it as "An unexpected error
//! occurred invoking '...' on the server.", with the cause appended only when
//! the tenant turns on `detailed_errors` (ASP.NET's `EnableDetailedErrors`).
//! Limits are the tenant's own settings, so their errors always say which
//! limit was reached.

use crate::plugin::CallError;

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    /// The connection is draining and takes no new invocations.
    #[error("Server is shutting down.")]
    ShuttingDown,
    /// The hub has no plugin loaded (it was removed while connected).
    #[error("The hub '{0}' is not available.")]
    HubUnavailable(String),
    /// The plugin has no method of that name.
    #[error("Unknown hub method '{0}'")]
    UnknownMethod(String),
    /// A streaming method called with a plain invocation.
    #[error(
        "The client attempted to invoke the streaming '{0}' method with a non-streaming invocation."
    )]
    StreamingMethod(String),
    /// A plain method called with a stream invocation.
    #[error(
        "The client attempted to invoke the non-streaming '{0}' method with a streaming invocation."
    )]
    NotStreamingMethod(String),
    /// The call brought a different number of upload streams than the method takes.
    #[error(
        "An unexpected error occurred invoking '{target}' on the server. Client sent {sent} stream(s), Hub method expects {expected}."
    )]
    UploadCount {
        /// The method called.
        target: String,
        /// Upload streams the call brought.
        sent: u32,
        /// Upload streams the method takes.
        expected: u32,
    },
    /// An upload stream id that a live upload already has.
    #[error("Stream ID '{0}' is already in use.")]
    StreamIdInUse(String),
    /// An invocation id that a running call already has.
    #[error("Invocation ID '{0}' is already in use.")]
    InvocationIdInUse(String),
    /// The connection runs as many streaming calls as it may.
    #[error("Too many streaming invocations: a connection may run at most {0} at once.")]
    TooManyStreams(usize),
    /// A resumable connection's invocation id is longer than its session
    /// keeps: a node taking the connection over must know it.
    #[error(
        "Invocation ID is {0} bytes: a resumable connection's invocation ids are at most {max} bytes.",
        max = crate::durable::MAX_INVOCATION_ID_BYTES
    )]
    InvocationIdTooLong(usize),
    /// The connection is over the tenant's invocation rate.
    #[error(
        "Rate limit exceeded: the tenant allows at most {0} invocations per second per connection."
    )]
    RateLimited(u32),
    /// No invocation slot of the tenant came free in time.
    #[error(
        "Too many concurrent invocations: the tenant allows at most {0} at once on this server."
    )]
    TooManyInvocations(usize),
    /// The method's own error, as the plugin worded it for the client.
    #[error("{0}")]
    Hub(String),
    /// The plugin stopped: a limit, a panic, a trap, or it could not start.
    #[error("An unexpected error occurred invoking '{target}' on the server. {cause}")]
    Plugin {
        /// The method called.
        target: String,
        /// What stopped the plugin.
        cause: CallError,
    },
    /// The method returned a result that is not JSON.
    #[error(
        "An unexpected error occurred invoking '{target}' on the server. The plugin returned invalid JSON ({cause})."
    )]
    InvalidResult {
        /// The method called.
        target: String,
        /// The JSON parser's complaint.
        cause: String,
    },
    /// What the method sent could not be stored for other nodes, so its
    /// success cannot be reported.
    #[error(
        "An unexpected error occurred invoking '{target}' on the server. Its messages could not be stored: {cause}"
    )]
    NotStored {
        /// The method called.
        target: String,
        /// Why the cluster did not store them.
        cause: String,
    },
}

/// Why a connection was refused when it opened (the plugin's
/// `on-connected`); the text its client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The hub has no plugin loaded.
    #[error("The hub '{0}' is not available.")]
    HubUnavailable(String),
    /// The plugin refused the connection, in its own words.
    #[error("{0}")]
    Refused(String),
    /// The plugin stopped: a limit, a panic, a trap, or it could not start.
    #[error("OnConnected failed: {0}")]
    Plugin(CallError),
}

impl InvocationError {
    /// The Completion's error text. Without `detailed`, a failure of the
    /// plugin or the node says which call failed and, for a limit, which
    /// limit, but nothing of the host's or the plugin's internals.
    pub fn client_message(&self, detailed: bool) -> String {
        if detailed {
            return self.to_string();
        }
        match self {
            InvocationError::Plugin { target, cause } => match cause {
                CallError::CpuLimit(_) | CallError::MemoryLimit(_) | CallError::WallLimit(_) => {
                    self.to_string()
                }
                _ => unexpected(target),
            },
            InvocationError::InvalidResult { target, .. }
            | InvocationError::NotStored { target, .. } => unexpected(target),
            _ => self.to_string(),
        }
    }

    /// The outcome label of `switchboard_invocations_total` for a call that
    /// ran and failed this way.
    pub fn outcome(&self) -> &'static str {
        match self {
            InvocationError::RateLimited(_)
            | InvocationError::TooManyInvocations(_)
            | InvocationError::TooManyStreams(_) => "rejected",
            InvocationError::UnknownMethod(_) => "unknown_method",
            InvocationError::Plugin { cause, .. } => cause.kind(),
            _ => "error",
        }
    }
}

/// ASP.NET's text for a call that failed for a reason the client is not told.
fn unexpected(target: &str) -> String {
    format!("An unexpected error occurred invoking '{target}' on the server.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(cause: CallError) -> InvocationError {
        InvocationError::Plugin {
            target: "Send".into(),
            cause,
        }
    }

    #[test]
    fn a_refused_connection_says_why() {
        for (error, text) in [
            (
                ConnectError::HubUnavailable("chat".into()),
                "The hub 'chat' is not available.".to_owned(),
            ),
            (
                ConnectError::Refused("Go away".into()),
                "Go away".to_owned(),
            ),
            (
                ConnectError::Plugin(CallError::WallLimit(5)),
                format!("OnConnected failed: {}", CallError::WallLimit(5)),
            ),
        ] {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn a_plugin_error_reaches_the_client_verbatim() {
        let error = InvocationError::Hub("Unknown status 'Maybe'".into());
        assert_eq!(error.client_message(false), "Unknown status 'Maybe'");
        assert_eq!(error.client_message(true), "Unknown status 'Maybe'");
    }

    #[test]
    fn a_panic_is_hidden_unless_the_tenant_wants_details() {
        let error = plugin(CallError::Panicked(
            "index out of bounds at src/lib.rs:3".into(),
        ));
        let hidden = error.client_message(false);
        assert_eq!(
            hidden,
            "An unexpected error occurred invoking 'Send' on the server."
        );
        let shown = error.client_message(true);
        assert!(shown.starts_with(&hidden), "{shown}");
        assert!(shown.contains("src/lib.rs:3"), "{shown}");
    }

    #[test]
    fn traps_bad_results_and_storage_failures_are_hidden_too() {
        let hidden = [
            plugin(CallError::Trapped("wasm backtrace: ...".into())),
            plugin(CallError::Instantiate("out of slots".into())),
            InvocationError::InvalidResult {
                target: "Send".into(),
                cause: "expected value at line 1".into(),
            },
            InvocationError::NotStored {
                target: "Send".into(),
                cause: "nats: timed out".into(),
            },
        ];
        for error in hidden {
            assert_eq!(
                error.client_message(false),
                "An unexpected error occurred invoking 'Send' on the server.",
                "{error:?}"
            );
            assert_ne!(error.client_message(true), error.client_message(false));
        }
    }

    #[test]
    fn a_limit_always_says_which_limit() {
        for (cause, words) in [
            (CallError::CpuLimit(200), "CPU time limit of 200 ms"),
            (CallError::MemoryLimit(32), "memory limit of 32 MiB"),
            (CallError::WallLimit(5000), "time limit of 5000 ms"),
        ] {
            let message = plugin(cause).client_message(false);
            assert!(message.contains(words), "{message}");
            assert!(message.contains("'Send'"), "{message}");
        }
    }

    #[test]
    fn outcomes_match_the_metric_labels() {
        assert_eq!(InvocationError::RateLimited(5).outcome(), "rejected");
        assert_eq!(
            InvocationError::UnknownMethod("x".into()).outcome(),
            "unknown_method"
        );
        assert_eq!(plugin(CallError::CpuLimit(1)).outcome(), "timeout");
        assert_eq!(plugin(CallError::Panicked(String::new())).outcome(), "trap");
        assert_eq!(InvocationError::Hub("no".into()).outcome(), "error");
    }
}
