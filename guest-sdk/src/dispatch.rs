//! Calling a method by the name a client sent, and the error texts clients
//! see when that goes wrong.

use crate::methods::Failure;
use crate::{Context, HubError, Methods};

impl Methods {
    /// Calls the method clients know as `method` (any casing) with the JSON
    /// argument array `args_json`, exactly as the host's `invoke` does.
    ///
    /// `Ok(None)` is a void completion, `Ok(Some(json))` a result. The error
    /// is the text the client sees:
    /// - `Unknown hub method '<method>'` when nothing matches;
    /// - `Failed to invoke '<name>': invalid arguments: <serde message>` when
    ///   the arguments do not decode into the handler's argument type;
    /// - `Failed to invoke '<name>': invalid result: <serde message>` when the
    ///   result does not encode;
    /// - otherwise the handler's own [`HubError`], verbatim.
    ///
    /// ```
    /// use switchboard_guest::{Context, HubError, Methods};
    ///
    /// let mut m = Methods::new();
    /// m.method("add", |_: &Context, (a, b): (i64, i64)| Ok::<_, HubError>(a + b));
    /// let ctx = Context::new("acme", "calc", "c-1");
    /// assert_eq!(m.invoke(&ctx, "ADD", "[1,2]"), Ok(Some("3".to_owned())));
    /// ```
    pub fn invoke(
        &self,
        ctx: &Context,
        method: &str,
        args_json: &str,
    ) -> Result<Option<String>, HubError> {
        let Some(target) = self.find(method) else {
            return Err(HubError::new(format!("Unknown hub method '{method}'")));
        };
        (target.handler)(ctx, args_json).map_err(|failure| match failure {
            Failure::Args(reason) => HubError::new(format!(
                "Failed to invoke '{}': invalid arguments: {reason}",
                target.name
            )),
            Failure::Reply(reason) => HubError::new(format!(
                "Failed to invoke '{}': invalid result: {reason}",
                target.name
            )),
            Failure::Hub(error) => error,
        })
    }
}

#[cfg(test)]
mod tests;
