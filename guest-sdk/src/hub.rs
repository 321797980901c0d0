//! [`Hub`]: the trait a plugin implements.

use crate::{Context, HubError, Methods};

/// A SignalR hub written as a plugin.
///
/// The host keeps no plugin state between calls (it may use a fresh instance
/// for every call), so a hub is a type with associated functions, not an
/// object: keep state in [`crate::kv`] and [`crate::groups`].
///
/// Export it with [`crate::export_hub!`]`(Chat)`:
///
/// ```
/// use switchboard_guest::{Context, Hub, HubError, Methods, clients};
///
/// struct Chat;
///
/// impl Hub for Chat {
///     fn methods(m: &mut Methods) {
///         m.method("send", send);
///     }
/// }
///
/// fn send(_: &Context, (name, text): (String, String)) -> Result<(), HubError> {
///     clients::all().send("addNewMessageToPage", (name, text))?;
///     Ok(())
/// }
/// ```
pub trait Hub {
    /// Registers the hub's methods under their SignalR names.
    fn methods(m: &mut Methods);

    /// A client finished its handshake. An error refuses the connection, and
    /// its text is the error the client sees.
    fn on_connected(ctx: &Context) -> Result<(), HubError> {
        let _ = ctx;
        Ok(())
    }

    /// A connection ended; `error` says why when it did not end cleanly.
    /// Its groups are already gone with it.
    fn on_disconnected(ctx: &Context, error: Option<&str>) {
        let _ = (ctx, error);
    }
}
