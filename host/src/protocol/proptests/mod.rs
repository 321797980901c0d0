//! Property-based tests of every parser in [`super`], with proptest.
//!
//! - `framing`: split feeding (any cuts give the same records, errors and leftover as one
//!   read), every prefix of a valid stream is clean, the size limit applies per record, the
//!   handshake likewise.
//! - `round_trip`: encode -> decode in each protocol, JSON -> MessagePack -> JSON and back,
//!   MessagePack values against an independent model of the documented JSON mapping, VarInts,
//!   escaping, negotiate versions.
//! - `hostile`: arbitrary and mutated bytes through [`super::fuzz::fuzz_parse`], length bombs,
//!   deep nesting, bad VarInts, invalid UTF-8, lone surrogates; allocation bounded by the input.
//!
//! The WebSocket frame reader that feeds these parsers has its own properties, built on the
//! strategies here, in `transport/websocket/frames_proptests.rs`.
//!
//! Case counts are small so the suite takes seconds in CI; `PROPTEST_CASES=100000` (or any
//! number) overrides them for a longer local run. Failing inputs are persisted by proptest under
//! `host/proptest-regressions/` and replayed first on every later run; commit those files.

mod alloc_meter;
mod framing;
mod hostile;
mod round_trip;
pub(crate) mod strategies;

use proptest::test_runner::Config;

/// proptest's configuration (which reads the `PROPTEST_*` variables) with `cases` unless
/// `PROPTEST_CASES` is set.
pub(crate) fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}
