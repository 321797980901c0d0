//! The example hubs (`chat`, `notify`) the built-in `demo` tenant serves.
//!
//! They are not part of the binary: the plugins workspace builds them
//! (`./dev` does, before `serve` and `test`), and a node looks for their
//! components at start, in `bundled_plugins_dir` when the config names it,
//! else next to the binary:
//!
//! - `BIN_DIR/../share/switchboard/plugins` (an installed layout such as
//!   `/usr/local/bin` and `/usr/local/share/switchboard/plugins`);
//! - `plugins/target/wasm32-wasip2/release` in the binary's folder or one of
//!   its three parents (a build in the repository: `target/release/switchboard`,
//!   and the test and bench binaries in `target/release/deps`).
//!
//! A node that finds none still starts and serves everything else.

use std::path::{Path, PathBuf};

/// The example hubs loaded for the `demo` tenant, as `{name}.wasm` files.
pub const HUBS: &[&str] = &["chat", "notify"];

/// Where the plugins workspace writes its components, from its root.
pub const WORKSPACE_OUTPUT: &str = "plugins/target/wasm32-wasip2/release";

/// Largest component read from the folder (the admin API's limit too).
const MAX_BYTES: u64 = super::MAX_PLUGIN_BYTES as u64;

/// How many of the binary's parent folders may hold the plugins workspace.
const PARENTS: usize = 3;

/// The folders searched when the config names none, in order.
pub fn default_dirs(exe: &Path) -> Vec<PathBuf> {
    let Some(bin_dir) = exe.parent() else {
        return Vec::new();
    };
    let mut dirs = vec![bin_dir.join("../share/switchboard/plugins")];
    dirs.extend(
        bin_dir
            .ancestors()
            .take(PARENTS + 1)
            .map(|dir| dir.join(WORKSPACE_OUTPUT)),
    );
    dirs
}

/// The folder to load from: `configured` when set, else the first default
/// folder holding at least one of [`HUBS`]. `Err` lists where it looked.
pub fn find(configured: Option<&Path>) -> Result<PathBuf, Vec<PathBuf>> {
    let candidates = match configured {
        Some(dir) => vec![dir.to_path_buf()],
        None => match std::env::current_exe() {
            Ok(exe) => default_dirs(&exe),
            Err(_) => Vec::new(),
        },
    };
    candidates
        .iter()
        .find(|dir| HUBS.iter().any(|hub| component(dir, hub).is_file()))
        .cloned()
        .ok_or(candidates)
}

/// The path of `hub`'s component in `dir`.
pub fn component(dir: &Path, hub: &str) -> PathBuf {
    dir.join(format!("{hub}.wasm"))
}

/// Reads one component, refusing files above the admin API's plugin size limit.
pub async fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let size = tokio::fs::metadata(path).await?.len();
    if size > MAX_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{size} bytes, above the {MAX_BYTES}-byte plugin limit"),
        ));
    }
    tokio::fs::read(path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_installed_and_repository_layouts() {
        let dirs = default_dirs(Path::new("/repo/target/release/deps/test-bin"));
        assert_eq!(
            dirs,
            [
                "/repo/target/release/deps/../share/switchboard/plugins",
                "/repo/target/release/deps/plugins/target/wasm32-wasip2/release",
                "/repo/target/release/plugins/target/wasm32-wasip2/release",
                "/repo/target/plugins/target/wasm32-wasip2/release",
                "/repo/plugins/target/wasm32-wasip2/release",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn finds_the_first_folder_with_a_hub() {
        let root = std::env::temp_dir().join(format!("switchboard-bundled-{}", std::process::id()));
        let empty = root.join("empty");
        let full = root.join("full");
        std::fs::create_dir_all(&empty).expect("mkdir");
        std::fs::create_dir_all(&full).expect("mkdir");
        std::fs::write(component(&full, "notify"), b"x").expect("write");
        assert_eq!(find(Some(&full)), Ok(full.clone()));
        assert_eq!(find(Some(&empty)), Err(vec![empty.clone()]));
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
