//! Helpers shared by the integration tests.
pub(crate) mod nats_server;
pub(crate) mod temp_dir;
