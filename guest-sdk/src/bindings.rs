//! The WIT bindings (`wit/hub.wit`, world `hub`), generated once here so that
//! plugin crates never depend on wit-bindgen or see WIT.
//!
//! `runtime_path` routes the generated code through this crate's re-export of
//! wit-bindgen, and `pub_export_macro` lets [`crate::export_hub!`] expand the
//! world's export glue inside the plugin crate, where the final component is
//! linked.

wit_bindgen::generate!({
    path: "wit",
    world: "hub",
    pub_export_macro: true,
    export_macro_name: "__export_hub_world",
    runtime_path: "switchboard_guest::__private::wit_bindgen::rt",
});

pub use switchboard::hub::types;
