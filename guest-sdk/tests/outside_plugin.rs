//! A plugin outside this repository builds against the SDK: the project in
//! `tests/outside-plugin` names `switchboard-guest = "0.1"` like any
//! registry dependency, and only the command that builds its copy points
//! that name at this checkout (`--config patch.crates-io...`).
//!
//! That project is the README's: its `Cargo.toml` is the README's first TOML
//! block and its `src/lib.rs` the README's hub followed by the README's
//! tests, so the README's examples are what gets built and tested here.
//!
//! The copy is built for wasm32-wasip2 (a component comes out) and its own
//! unit tests run natively on the SDK's test host. Offline, from the
//! SDK's lock file: every crate it needs is already cached by the SDK's own
//! build. The build directory persists under `target/outside-plugin`, so a
//! second run only relinks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

/// Generous: a cold build of the SDK and its dependencies on a busy machine.
const BUILD_LIMIT: Duration = Duration::from_secs(900);

/// The first bytes of a WebAssembly component: magic, version 0x0d, layer 1.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

#[test]
fn a_plugin_outside_the_repository_builds_and_tests_against_the_sdk() {
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let project = copy_project(&sdk);
    let target_dir = sdk.join("target").join("outside-plugin");
    let patch = format!(
        "patch.crates-io.switchboard-guest.path={}",
        toml_string(&sdk)
    );

    cargo(
        &project,
        &target_dir,
        &patch,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    let wasm = target_dir.join("wasm32-wasip2/release/greeter.wasm");
    let bytes = fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    assert_eq!(
        bytes.get(..8),
        Some(&COMPONENT_HEADER[..]),
        "not a component"
    );

    let tested = cargo(&project, &target_dir, &patch, &["test"]);
    assert!(
        tested.contains("test tests::hello_greets_and_tells_the_others ... ok"),
        "the README's test did not run:\n{tested}"
    );
    let _ = fs::remove_dir_all(&project);
}

/// The project `switchboard new hub NAME --lang rust` writes (the template,
/// rendered here as the command renders it) ships a unit test that passes
/// natively on the SDK's test host as written.
#[test]
fn the_rust_template_s_own_test_passes() {
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let template = sdk.join("..").join("templates").join("hub-rust");
    let project =
        std::env::temp_dir().join(format!("switchboard-template-hub-{}", std::process::id()));
    let _ = fs::remove_dir_all(&project);
    fs::create_dir_all(project.join("src"))
        .unwrap_or_else(|e| panic!("{}: {e}", project.display()));
    let repo = sdk.join("..");
    let repo = repo.canonicalize().unwrap_or(repo);
    for file in ["Cargo.toml", "src/lib.rs"] {
        let text = fs::read_to_string(template.join(file))
            .unwrap_or_else(|e| panic!("the template's {file}: {e}"))
            .replace("{{crate}}", "greeter")
            .replace("{{hub}}", "greeter")
            .replace("{{sdk_dir}}", &repo.display().to_string());
        fs::write(project.join(file), text).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    fs::copy(sdk.join("Cargo.lock"), project.join("Cargo.lock"))
        .unwrap_or_else(|e| panic!("the SDK's lock file: {e}"));
    // The same build directory as the outside plugin's: the SDK builds once.
    let target_dir = sdk.join("target").join("outside-plugin");
    let tested = cargo(&project, &target_dir, "net.offline=true", &["test"]);
    assert!(
        tested.contains(
            "test tests::hello_greets_by_name_and_broadcast_reaches_every_connection ... ok"
        ),
        "the template's test did not run:\n{tested}"
    );
    let _ = fs::remove_dir_all(&project);
}

#[test]
fn the_outside_plugin_is_the_readme_example() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(sdk.join("README.md")).unwrap();
    let project = sdk.join("tests").join("outside-plugin");
    let manifest = fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let lib = fs::read_to_string(project.join("src").join("lib.rs")).unwrap();
    let toml = code_blocks(&readme, "toml");
    let rust = code_blocks(&readme, "rust");
    assert_eq!(
        toml.first(),
        Some(&manifest),
        "README's Cargo.toml and tests/outside-plugin/Cargo.toml differ"
    );
    assert_eq!(rust.len(), 2, "README: the hub, then its tests");
    assert_eq!(
        format!("{}\n{}", rust[0], rust[1]),
        lib,
        "README's hub and tests and tests/outside-plugin/src/lib.rs differ"
    );
}

/// The contents of the markdown code blocks fenced as ```` ```lang ````.
fn code_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let Some(end) = body.find("```") else { break };
        blocks.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    blocks
}

/// Copies the project (manifest and sources only) and the SDK's lock file
/// into a fresh temporary folder.
fn copy_project(sdk: &Path) -> PathBuf {
    let from = sdk.join("tests").join("outside-plugin");
    let to =
        std::env::temp_dir().join(format!("switchboard-outside-plugin-{}", std::process::id()));
    let _ = fs::remove_dir_all(&to);
    let copy = |from: PathBuf, to: PathBuf| {
        fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    fs::create_dir_all(to.join("src")).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for file in ["Cargo.toml", "src/lib.rs"] {
        copy(from.join(file), to.join(file));
    }
    copy(sdk.join("Cargo.lock"), to.join("Cargo.lock"));
    let manifest = fs::read_to_string(from.join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("the project's Cargo.toml: {e}"));
    assert!(
        manifest.contains("switchboard-guest = \"0.1\"") && !manifest.contains("path ="),
        "the project must depend on the SDK by version only"
    );
    to
}

/// Runs `cargo ARGS` in `project`, offline, with the SDK patched in; fails
/// the test with cargo's output if it fails or takes too long. Returns its
/// standard output.
fn cargo(project: &Path, target_dir: &Path, patch: &str, args: &[&str]) -> String {
    let mut command = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    command
        .current_dir(project)
        .args(args)
        .args(["--offline", "--config", patch])
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The outer `cargo test`'s settings are for the SDK's build only.
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(key);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    let started = Instant::now();
    // Drained on threads so a chatty build cannot fill a pipe and stall.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = loop {
        let polled = child.try_wait();
        if let Some(status) = polled.unwrap_or_else(|e| panic!("waiting for cargo: {e}")) {
            break status;
        }
        if started.elapsed() > BUILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo {args:?} took more than {BUILD_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(200));
    };
    let output =
        |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stdout, stderr) = (output(stdout), output(stderr));
    assert!(
        status.success(),
        "cargo {args:?} failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// `path` as a TOML string for `--config`.
fn toml_string(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
