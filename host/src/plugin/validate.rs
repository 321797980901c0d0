//! The first check of an uploaded plugin, before anything is compiled:
//! is it WebAssembly at all, and a component rather than a core module?
//! The later checks (does it implement the hub world, does it import only
//! what the host provides) need the engine and run in `PluginEngine::load_blocking`.

/// Every WebAssembly binary starts with these four bytes.
const MAGIC: &[u8; 4] = b"\0asm";
/// Version 1 with layer 0: a core module.
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
/// The preamble's layer 1 (bytes 6-7) marks a component.
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// What the header says the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Component,
    CoreModule,
}

/// Why bytes are not a component, from their header alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "not a WebAssembly file (it does not start with \\0asm; the first bytes are {0}): upload the .wasm file, not source or an archive"
    )]
    NotWasm(String),
    #[error(
        "a core WebAssembly module, not a component: build for wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("an unknown WebAssembly version or layer ({0})")]
    UnknownVersion(String),
}

/// Reads the 8-byte preamble of `bytes`.
pub(super) fn kind(bytes: &[u8]) -> Result<Kind, HeaderError> {
    if bytes.is_empty() {
        return Err(HeaderError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(HeaderError::NotWasm(hex_prefix(bytes)));
    }
    if bytes[4..8] == CORE_MODULE {
        return Ok(Kind::CoreModule);
    }
    if bytes[6..8] == COMPONENT_LAYER {
        return Ok(Kind::Component);
    }
    Err(HeaderError::UnknownVersion(hex_prefix(&bytes[4..8])))
}

/// Accepts only component bytes.
pub(super) fn require_component(bytes: &[u8]) -> Result<(), HeaderError> {
    match kind(bytes)? {
        Kind::Component => Ok(()),
        Kind::CoreModule => Err(HeaderError::CoreModule),
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_components_from_modules_and_garbage() {
        let component = b"\0asm\x0d\0\x01\0rest";
        let module = b"\0asm\x01\0\0\0rest";
        assert_eq!(kind(component), Ok(Kind::Component));
        assert_eq!(kind(module), Ok(Kind::CoreModule));
        assert_eq!(require_component(module), Err(HeaderError::CoreModule));
        assert_eq!(require_component(b""), Err(HeaderError::Empty));
        assert!(matches!(
            require_component(b"PK\x03\x04zip file"),
            Err(HeaderError::NotWasm(_))
        ));
        assert!(matches!(
            require_component(b"\0asm"),
            Err(HeaderError::NotWasm(_))
        ));
        assert!(matches!(
            require_component(b"\0asm\x02\0\0\0"),
            Err(HeaderError::UnknownVersion(_))
        ));
        let text = require_component(b"hello world")
            .expect_err("text")
            .to_string();
        assert!(text.contains("68 65 6c 6c"), "{text}");
    }
}
