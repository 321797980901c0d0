//! Authoring hub plugins from the command line: `switchboard new hub`
//! writes a project from a template kept in the repository, and
//! `switchboard dev` rebuilds it on every change and deploys it to a
//! running node through the admin API.
//!
//! The pure parts (the project file, rendering, what a change means) are
//! apart from the parts that touch files, processes and the network, so
//! they are unit-tested without any of those.

pub mod create;
pub mod dev;
pub mod project;
pub mod template;

pub use project::{Lang, Project};
