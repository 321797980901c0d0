//! Fresh temporary folders (no extra dependency for one helper).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A new empty folder in the system's temp folder, named `{prefix}-{pid}-{random}`.
pub(crate) fn fresh(prefix: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("{prefix}-{}-{:x}", std::process::id(), rand_u64()));
    std::fs::create_dir_all(&path).expect("temp dir");
    path
}

/// A temporary folder, removed on drop.
pub(crate) struct Dir(PathBuf);

impl Dir {
    pub(crate) fn new() -> Dir {
        Dir(fresh("switchboard-test"))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
