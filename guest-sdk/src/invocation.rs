//! The running call: whether its caller still wants it ([`cancelled`]), and
//! waiting without spending the CPU budget ([`sleep`]).
//!
//! A paced stream sleeps between items instead of spinning, and stops when
//! the client cancels (ASP.NET's `CancellationToken`):
//!
//! ```no_run
//! use std::time::Duration;
//! use switchboard_guest::{Context, HubError, Stream, invocation};
//!
//! fn ticks(_: &Context, (count,): (u32,), stream: &Stream) -> Result<(), HubError> {
//!     for tick in 0..count {
//!         stream.emit(&tick)?;
//!         // Fails at once when the client cancels or disconnects.
//!         invocation::sleep(Duration::from_millis(100))?;
//!     }
//!     Ok(())
//! }
//! ```

use std::time::Duration;

use crate::HostError;
use crate::error::host;
use crate::host::invocation as wit;

/// Whether the call is cancelled: the client sent CancelInvocation for this
/// stream, or the caller's connection ended. A cancelled method should
/// return; what it returns is not sent.
pub fn cancelled() -> bool {
    wit::cancelled()
}

/// Waits `duration` (to the millisecond, at most about 49 days). Waiting
/// holds no thread and does not count against the tenant's CPU limit; the
/// wall-clock limit of the call still applies.
///
/// Fails at once when the call is cancelled, so `?` ends the method.
pub fn sleep(duration: Duration) -> Result<(), HostError> {
    let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
    wit::sleep(ms).map_err(host("invocation.sleep"))
}
