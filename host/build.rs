//! Builds the bundled plugins (`chat`, `notify`) for wasm32-wasip2 and puts
//! them in OUT_DIR, so `cargo build` alone yields a server that serves them.
//!
//! The plugins are their own Cargo workspace (see ARCHITECTURE.md), built by a
//! nested cargo with a clean environment so none of this build's flags leak in.
//! `SWITCHBOARD_BUNDLED_DIR` may name a folder of prebuilt `chat.wasm` and
//! `notify.wasm` instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const BUNDLED: [&str; 2] = ["chat", "notify"];

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ has a parent").to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=SWITCHBOARD_BUNDLED_DIR");

    let built = match env::var_os("SWITCHBOARD_BUNDLED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build_plugins(&root),
    };
    for name in BUNDLED {
        let from = built.join(format!("{name}.wasm"));
        let to = out.join(format!("{name}.wasm"));
        if let Err(e) = std::fs::copy(&from, &to) {
            panic!("cannot copy bundled plugin {}: {e}", from.display());
        }
    }
}

fn build_plugins(root: &Path) -> PathBuf {
    let plugins = root.join("plugins");
    for watched in [
        "plugins/chat",
        "plugins/notify",
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "guest-sdk",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    ensure_target();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&plugins)
        .args(["build", "--release", "--target", TARGET]);
    for name in BUNDLED {
        command.args(["-p", name]);
    }
    // A clean environment: this build script's CARGO_*, RUSTFLAGS, TARGET and
    // wrapper variables (clippy's, for one) are for the host build only.
    command.env_clear();
    for (key, value) in env::vars_os() {
        let keep = key.to_str().is_some_and(|k| {
            matches!(
                k,
                "PATH"
                    | "HOME"
                    | "USER"
                    | "TMPDIR"
                    | "LANG"
                    | "CARGO_HOME"
                    | "RUSTUP_HOME"
                    | "RUSTUP_TOOLCHAIN"
            ) || k.to_ascii_lowercase().ends_with("_proxy")
        });
        if keep {
            command.env(key, value);
        }
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the plugins: {e}"));
    if !status.success() {
        panic!(
            "building the bundled plugins failed (cd plugins && cargo build --release --target {TARGET})"
        );
    }
    plugins.join("target").join(TARGET).join("release")
}

/// Installs the wasm target with rustup when it is missing, so a plain
/// `cargo build` works on a fresh machine.
fn ensure_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if !installed {
        let status = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            println!("cargo:warning=could not install the {TARGET} target with rustup");
        }
    }
}
