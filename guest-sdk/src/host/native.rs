//! Native stand-ins for the WIT imports, with the generated signatures.
//!
//! While a [`crate::testing::TestHost`] runs a hub function on this thread,
//! every call goes to it. Otherwise every call fails with [`NO_HOST`], and
//! log lines go to stderr.

use crate::testing::state::{self, State};

/// The error of every host call in a native build outside a test host.
pub(crate) const NO_HOST: &str = "no Switchboard host in a native build (host calls work in the \
     wasm32-wasip2 component, or in tests under switchboard_guest::testing::TestHost)";

/// Runs `call` (named as in [`crate::HostError::call`]) on the test host:
/// fails with its injected failure, if any, or with [`NO_HOST`] when there is
/// no test host.
fn on_host<T>(name: &str, call: impl FnOnce(&mut State) -> Result<T, String>) -> Result<T, String> {
    state::with(|s| s.check(name).and_then(|()| call(s))).unwrap_or_else(|| Err(NO_HOST.to_owned()))
}

pub(crate) mod clients {
    use serde_json::Value;

    use super::on_host;
    use crate::bindings::types::Target;
    use crate::testing::Invoked;

    pub(crate) fn send(target: &Target, method: &str, args_json: &str) -> Result<(), String> {
        on_host("clients.send", |s| {
            s.send(target, method, args_json);
            Ok(())
        })
    }

    /// Records the request, then asks the test's answer function, with the
    /// state released so the answer may use the test host itself.
    pub(crate) fn invoke(
        connection_id: &str,
        method: &str,
        args_json: &str,
        _timeout_ms: u32,
    ) -> Result<String, String> {
        let args: Value = serde_json::from_str(args_json).unwrap_or(Value::Null);
        let answer = on_host("clients.invoke", |s| {
            s.invoked.push(Invoked {
                connection_id: connection_id.to_owned(),
                method: method.to_owned(),
                args: args.clone(),
            });
            s.client_results.clone().ok_or_else(|| {
                "the test host has no client results (see TestHost::answer_client_invocations)"
                    .to_owned()
            })
        })?;
        let result = answer(connection_id, method, &args)?;
        serde_json::to_string(&result).map_err(|e| e.to_string())
    }
}

pub(crate) mod groups {
    use super::on_host;

    pub(crate) fn add(connection_id: &str, group: &str) -> Result<(), String> {
        on_host("groups.add", |s| {
            s.add_to_group(connection_id, group);
            Ok(())
        })
    }

    pub(crate) fn remove(connection_id: &str, group: &str) -> Result<(), String> {
        on_host("groups.remove", |s| {
            s.remove_from_group(connection_id, group);
            Ok(())
        })
    }
}

pub(crate) mod kv {
    use super::on_host;

    pub(crate) fn get(key: &str) -> Result<Option<String>, String> {
        on_host("kv.get", |s| Ok(s.kv.get(key).map(|e| e.value.clone())))
    }

    pub(crate) fn set(key: &str, value: &str, ttl_ms: Option<u64>) -> Result<(), String> {
        on_host("kv.set", |s| {
            s.set_kv(key, value, ttl_ms);
            Ok(())
        })
    }

    pub(crate) fn delete(key: &str) -> Result<(), String> {
        on_host("kv.delete", |s| {
            s.kv.remove(key);
            Ok(())
        })
    }

    pub(crate) fn compare_and_set(
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> Result<bool, String> {
        on_host("kv.compare-and-set", |s| {
            let current = s.kv.get(key).map(|e| e.value.as_str());
            if current != expected {
                return Ok(false);
            }
            s.set_kv(key, value, ttl_ms);
            Ok(true)
        })
    }
}

pub(crate) mod streaming {
    use super::on_host;

    pub(crate) fn emit(item_json: &str) -> Result<(), String> {
        on_host("streaming.emit", |s| s.emit(item_json))
    }

    pub(crate) use crate::bindings::switchboard::hub::streaming::UploadError;

    pub(crate) fn next_upload_item(index: u32) -> Result<Option<String>, UploadError> {
        on_host("streaming.next-upload", |s| Ok(s.next_upload(index)))
            .unwrap_or_else(|e| Err(UploadError::Host(e)))
    }
}

/// On the test host, time is virtual: a sleep returns at once and adds to
/// [`crate::testing::TestHost::slept`]; a cancelled call's sleep fails.
pub(crate) mod invocation {
    use super::on_host;
    use crate::testing::state;

    pub(crate) fn cancelled() -> bool {
        state::with(|s| s.cancelled()).unwrap_or(false)
    }

    pub(crate) fn sleep(ms: u32) -> Result<(), String> {
        on_host("invocation.sleep", |s| s.sleep(ms))
    }
}

pub(crate) mod log {
    use crate::bindings::types::LogLevel;
    use crate::testing::state;

    pub(crate) fn log(level: LogLevel, message: &str) {
        eprintln!("[{level:?}] {message}");
        state::with(|s| s.log(level, message));
    }
}

/// Outside a test host there is no connection: no request and no items.
pub(crate) mod connection {
    use super::on_host;
    use crate::testing::state;

    pub(crate) fn query() -> Vec<(String, String)> {
        state::with(|s| s.caller().map(|c| c.query.clone()))
            .flatten()
            .unwrap_or_default()
    }

    /// As on the server, credentials are never visible.
    pub(crate) fn header(name: &str) -> Option<String> {
        if ["authorization", "cookie"]
            .iter()
            .any(|hidden| name.eq_ignore_ascii_case(hidden))
        {
            return None;
        }
        state::with(|s| {
            s.caller().and_then(|c| {
                c.headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            })
        })
        .flatten()
    }

    pub(crate) fn transport() -> Option<String> {
        state::with(|s| s.caller().and_then(|c| c.transport))
            .flatten()
            .map(|t| t.as_str().to_owned())
    }

    pub(crate) fn cookie(name: &str) -> Option<String> {
        state::with(|s| {
            s.caller().and_then(|c| {
                c.cookies
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
        })
        .flatten()
    }

    pub(crate) fn get_item(key: &str) -> Option<String> {
        state::with(|s| s.caller().and_then(|c| c.items.get(key).cloned())).flatten()
    }

    pub(crate) fn set_item(key: &str, value: Option<&str>) -> Result<(), String> {
        on_host("connection.set-item", |s| {
            let caller = s
                .caller_mut()
                .ok_or("no connection made this call (a backend call has no items)")?;
            match value {
                Some(value) => caller.items.insert(key.to_owned(), value.to_owned()),
                None => caller.items.remove(key),
            };
            Ok(())
        })
    }
}
