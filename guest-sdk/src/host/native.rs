//! Native stand-ins for the WIT imports, with the generated signatures.
//! Every call fails with [`NO_HOST`]; log lines go to stderr.

/// The error of every host call in a native build.
pub(crate) const NO_HOST: &str =
    "no Switchboard host in a native build (host calls work only in the wasm32-wasip2 component)";

fn no_host<T>() -> Result<T, String> {
    Err(NO_HOST.to_owned())
}

pub(crate) mod clients {
    use crate::bindings::types::Target;

    pub(crate) fn send(_: &Target, _: &str, _: &str) -> Result<(), String> {
        super::no_host()
    }

    pub(crate) fn invoke(_: &str, _: &str, _: &str, _: u32) -> Result<String, String> {
        super::no_host()
    }
}

pub(crate) mod groups {
    pub(crate) fn add(_: &str, _: &str) -> Result<(), String> {
        super::no_host()
    }

    pub(crate) fn remove(_: &str, _: &str) -> Result<(), String> {
        super::no_host()
    }
}

pub(crate) mod kv {
    pub(crate) fn get(_: &str) -> Result<Option<String>, String> {
        super::no_host()
    }

    pub(crate) fn set(_: &str, _: &str, _: Option<u64>) -> Result<(), String> {
        super::no_host()
    }

    pub(crate) fn delete(_: &str) -> Result<(), String> {
        super::no_host()
    }

    pub(crate) fn compare_and_set(
        _: &str,
        _: Option<&str>,
        _: &str,
        _: Option<u64>,
    ) -> Result<bool, String> {
        super::no_host()
    }
}

pub(crate) mod streaming {
    pub(crate) fn emit(_: &str) -> Result<(), String> {
        super::no_host()
    }

    pub(crate) fn next_upload(_: u32) -> Result<Option<String>, String> {
        super::no_host()
    }
}

pub(crate) mod log {
    use crate::bindings::types::LogLevel;

    pub(crate) fn log(level: LogLevel, message: &str) {
        eprintln!("[{level:?}] {message}");
    }
}

/// A native build has no connection: no request and no items.
pub(crate) mod connection {
    pub(crate) fn query() -> Vec<(String, String)> {
        Vec::new()
    }

    pub(crate) fn header(_: &str) -> Option<String> {
        None
    }

    pub(crate) fn get_item(_: &str) -> Option<String> {
        None
    }

    pub(crate) fn set_item(_: &str, _: Option<&str>) -> Result<(), String> {
        super::no_host()
    }
}
