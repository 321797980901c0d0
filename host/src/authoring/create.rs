//! `switchboard new hub`: writes a project from a template.

use std::path::{Path, PathBuf};

use super::project::{Lang, PROJECT_FILE, Project};
use super::template::{self, Values, relative_path};

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The hub name is not one a URL and a package can carry.
    #[error(
        "`{0}` is not a hub name: use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)"
    )]
    BadName(String),
    /// The folder is there and holds something.
    #[error("{0} already exists and is not empty")]
    NotEmpty(PathBuf),
    /// No Switchboard folder with the SDKs was found.
    #[error(
        "cannot find the Switchboard SDKs (a folder with guest-sdk/, sdk-js/ and sdk-python/): pass --sdk DIR or set SWITCHBOARD_SDK"
    )]
    NoSdk,
    /// componentize-js maps one folder holding both the hub and the SDK into
    /// the component, and it cannot be the file system's root.
    #[error(
        "a JavaScript hub must be in a folder that shares a parent folder (other than /) with the Switchboard folder {0}"
    )]
    JsOutsideSdkRoot(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// What was being written.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Whether `name` can name a hub: one the server serves (the rule of
/// [`crate::address::is_valid_name`], so a new project can be deployed) and
/// a package in every language (a letter first).
pub fn valid_hub_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase()) && crate::address::is_valid_name(name)
}

/// Whether `dir` is a Switchboard checkout with the SDKs.
fn is_sdk_root(dir: &Path) -> bool {
    dir.join("guest-sdk/Cargo.toml").is_file()
        && dir.join("sdk-js/build.mjs").is_file()
        && dir.join("sdk-python/build.py").is_file()
        && dir.join("wit").is_dir()
}

/// The Switchboard folder: `explicit` if given, else the first folder with
/// the SDKs above the running binary (a build in `target/release`), else
/// above the working directory.
pub fn find_sdk(explicit: Option<&Path>) -> Result<PathBuf, CreateError> {
    if let Some(dir) = explicit {
        let dir = absolute(dir);
        return if is_sdk_root(&dir) {
            Ok(dir)
        } else {
            Err(CreateError::NoSdk)
        };
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    starts
        .into_iter()
        .flatten()
        .flat_map(|start| start.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .find(|dir| is_sdk_root(dir))
        .map(|dir| absolute(&dir))
        .ok_or(CreateError::NoSdk)
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn write(path: PathBuf, text: &str) -> Result<(), CreateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| CreateError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| CreateError::Io { path, source })
}

/// Writes the project for hub `name` in `lang` into `dir` (created; it must
/// not hold anything yet), using the SDKs in `sdk`. Returns the files
/// written, relative to `dir`.
pub fn write_project(
    dir: &Path,
    name: &str,
    lang: Lang,
    sdk: &Path,
) -> Result<Vec<String>, CreateError> {
    if !valid_hub_name(name) {
        return Err(CreateError::BadName(name.to_owned()));
    }
    let not_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if not_empty {
        return Err(CreateError::NotEmpty(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(|source| CreateError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let shared = absolute(dir)
        .components()
        .zip(absolute(sdk).components())
        .take_while(|(a, b)| a == b)
        .count();
    if lang == Lang::Js && shared < 2 {
        let _ = std::fs::remove_dir(dir);
        return Err(CreateError::JsOutsideSdkRoot(absolute(sdk)));
    }
    let sdk_rel = relative_path(&absolute(dir), &absolute(sdk));
    let sdk_dir = sdk_rel.to_string_lossy().replace('\\', "/");
    let values = Values {
        hub: name.to_owned(),
        sdk_dir: sdk_dir.clone(),
    };
    let project = Project {
        hub: name.to_owned(),
        lang,
        tenant: "demo".to_owned(),
        sdk: Some(sdk_rel),
    };
    let mut written = Vec::new();
    write(dir.join(PROJECT_FILE), &project.to_toml())?;
    written.push(PROJECT_FILE.to_owned());
    for file in template::files(lang) {
        write(dir.join(file.path), &template::render(file.text, &values))?;
        written.push(file.path.to_owned());
    }
    write(dir.join(".gitignore"), "target/\n__pycache__/\n")?;
    written.push(".gitignore".to_owned());
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names_are_url_and_package_safe() {
        // "Chat": the server serves lowercase names only; "2chat": not a package name.
        let long = "a".repeat(65);
        for (name, valid) in [
            ("chat", true),
            ("my-chat_2", true),
            ("2chat", false),
            ("Chat", false),
            ("a/b", false),
            ("", false),
            (long.as_str(), false),
        ] {
            assert_eq!(valid_hub_name(name), valid, "{name:?}");
        }
    }

    #[test]
    fn a_project_is_written_once_and_never_over_files() {
        let root = std::env::temp_dir().join(format!("sb-new-{}", std::process::id()));
        let sdk = root.join("sdk");
        let dir = root.join("work/greeter");
        let _ = std::fs::create_dir_all(&sdk);
        let files = write_project(&dir, "greeter", Lang::Js, &sdk).ok();
        assert_eq!(
            files,
            Some(vec![
                "switchboard.toml".to_owned(),
                "hub.js".to_owned(),
                "hub.test.js".to_owned(),
                ".gitignore".to_owned()
            ])
        );
        let project = Project::load(&dir).ok();
        assert_eq!(
            project.and_then(|p| p.sdk),
            Some(PathBuf::from("../../sdk"))
        );
        let again = write_project(&dir, "greeter", Lang::Js, &sdk);
        assert!(matches!(again, Err(CreateError::NotEmpty(_))));
        let _ = std::fs::remove_dir_all(&root);
    }
}
