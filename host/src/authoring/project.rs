//! The project file (`switchboard.toml`) and how each language builds.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The project file's name, at the project's root.
pub const PROJECT_FILE: &str = "switchboard.toml";

/// The language a hub is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with the `switchboard-guest` crate.
    Rust,
    /// JavaScript, with `sdk-js` (componentize-js).
    Js,
    /// Python, with `sdk-python` (componentize-py).
    Python,
}

impl Lang {
    /// Parses a `--lang` value.
    pub fn parse(name: &str) -> Option<Lang> {
        match name.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Some(Lang::Rust),
            "js" | "javascript" | "ts" | "typescript" => Some(Lang::Js),
            "python" | "py" => Some(Lang::Python),
            _ => None,
        }
    }

    /// The name used in the project file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
        }
    }
}

/// What `switchboard.toml` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The hub's name: what clients put in the URL and what `dev` deploys as.
    pub hub: String,
    /// The language, which decides how it builds.
    pub lang: Lang,
    /// The tenant `dev` deploys to.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The Switchboard checkout holding `sdk-js/` and `sdk-python/` (JS and
    /// Python builds run its build scripts), relative to the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<PathBuf>,
}

fn default_tenant() -> String {
    "demo".to_owned()
}

/// A project file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No project file in the folder.
    #[error(
        "{0} has no {PROJECT_FILE}: run `switchboard new hub NAME` first, or name the project folder"
    )]
    Missing(PathBuf),
    /// The file is not valid.
    #[error("{file}: {message}")]
    Invalid {
        /// The project file.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The project file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Project {
    /// Parses the text of a project file.
    pub fn parse(text: &str, file: &Path) -> Result<Project, ProjectError> {
        let project: Project = toml::from_str(text).map_err(|e| ProjectError::Invalid {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        if project.sdk.is_none() && project.lang != Lang::Rust {
            return Err(ProjectError::Invalid {
                file: file.to_owned(),
                message: format!(
                    "a {} hub needs `sdk`, the Switchboard folder with its build scripts",
                    project.lang.name()
                ),
            });
        }
        Ok(project)
    }

    /// Reads `dir/switchboard.toml`.
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let file = dir.join(PROJECT_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => Project::parse(&text, &file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ProjectError::Missing(dir.to_owned()))
            }
            Err(source) => Err(ProjectError::Io { file, source }),
        }
    }

    /// The project file's text.
    pub fn to_toml(&self) -> String {
        // Serializing plain strings and a path cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// How to build the project in `dir` into one component.
    pub fn build_plan(&self, dir: &Path, cargo_target_dir: Option<&Path>) -> BuildPlan {
        let sdk = self.sdk.as_ref().map(|sdk| dir.join(sdk));
        let out_dir = dir.join("target");
        match self.lang {
            Lang::Rust => {
                let target = cargo_target_dir
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| out_dir.clone());
                BuildPlan {
                    program: "cargo".into(),
                    args: ["build", "--release", "--target", WASM_TARGET]
                        .map(String::from)
                        .to_vec(),
                    artifact: cargo_artifact(&target, &crate_name(&self.hub)),
                }
            }
            Lang::Js | Lang::Python => {
                // Both build through the SDK's script: SCRIPT SOURCE OUT.
                let (program, script, source) = match self.lang {
                    Lang::Js => ("node", "sdk-js/build.mjs", "hub.js"),
                    _ => ("python3", "sdk-python/build.py", "hub.py"),
                };
                let artifact = out_dir.join(format!("{}.wasm", self.hub));
                let script = sdk.unwrap_or_default().join(script);
                BuildPlan {
                    program: program.into(),
                    args: vec![path_arg(&script), source.into(), path_arg(&artifact)],
                    artifact,
                }
            }
        }
    }
}

/// The component target every hub builds for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// One build: run `program args` in the project folder; the component is
/// then at `artifact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildPlan {
    /// The program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where the component is once it succeeds.
    pub artifact: PathBuf,
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The Cargo package name of a hub's Rust project.
pub fn crate_name(hub: &str) -> String {
    format!("{}-hub", hub.to_ascii_lowercase().replace('_', "-"))
}

/// Where cargo writes a cdylib component: its file name uses `_` for `-`.
pub fn cargo_artifact(target_dir: &Path, crate_name: &str) -> PathBuf {
    target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// Whether a change at `path` (inside the project at `root`) is a source
/// change that needs a rebuild: build output, editor droppings and caches
/// are not.
pub fn is_source_change(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    if relative.as_os_str().is_empty() {
        return false;
    }
    for part in relative.components() {
        let name = part.as_os_str().to_string_lossy();
        if name == "target"
            || name == "node_modules"
            || name == "__pycache__"
            || name.starts_with('.')
        {
            return false;
        }
    }
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !(name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PathBuf {
        PathBuf::from("p/switchboard.toml")
    }

    #[test]
    fn a_project_file_round_trips() {
        let project = Project {
            hub: "greeter".into(),
            lang: Lang::Js,
            tenant: "demo".into(),
            sdk: Some("../switchboard".into()),
        };
        assert_eq!(
            Project::parse(&project.to_toml(), &file()).ok(),
            Some(project)
        );
    }

    #[test]
    fn the_tenant_defaults_to_demo_and_unknown_keys_are_refused() {
        let project = Project::parse("hub = \"g\"\nlang = \"rust\"\n", &file()).ok();
        assert_eq!(project.map(|p| p.tenant), Some("demo".to_owned()));
        let err = Project::parse("hub = \"g\"\nlang = \"rust\"\nhubb = 1\n", &file());
        assert!(matches!(err, Err(ProjectError::Invalid { .. })));
        let err = Project::parse("hub = \"g\"\nlang = \"cobol\"\n", &file());
        assert!(matches!(err, Err(ProjectError::Invalid { .. })));
    }

    #[test]
    fn js_and_python_need_the_sdk_folder() {
        let err = Project::parse("hub = \"g\"\nlang = \"python\"\n", &file());
        assert!(err.is_err_and(|e| e.to_string().contains("needs `sdk`")));
    }

    #[test]
    fn languages_parse_by_their_common_names() {
        assert_eq!(Lang::parse("TypeScript"), Some(Lang::Js));
        assert_eq!(Lang::parse("py"), Some(Lang::Python));
        assert_eq!(Lang::parse("rust"), Some(Lang::Rust));
        assert_eq!(Lang::parse("go"), None);
    }

    #[test]
    fn build_plans_name_the_component_each_toolchain_writes() {
        let dir = Path::new("/p");
        let rust = Project {
            hub: "my_chat".into(),
            lang: Lang::Rust,
            tenant: "demo".into(),
            sdk: None,
        };
        let plan = rust.build_plan(dir, None);
        assert_eq!(plan.program, "cargo");
        assert_eq!(
            plan.artifact,
            Path::new("/p/target/wasm32-wasip2/release/my_chat_hub.wasm")
        );
        let shared = rust.build_plan(dir, Some(Path::new("/cache")));
        assert_eq!(
            shared.artifact,
            Path::new("/cache/wasm32-wasip2/release/my_chat_hub.wasm")
        );
        let js = Project {
            lang: Lang::Js,
            sdk: Some("../sb".into()),
            ..rust.clone()
        };
        let plan = js.build_plan(dir, None);
        assert_eq!(plan.program, "node");
        assert_eq!(plan.args[0], "/p/../sb/sdk-js/build.mjs");
        assert_eq!(plan.artifact, Path::new("/p/target/my_chat.wasm"));
    }

    #[test]
    fn only_source_files_trigger_a_rebuild() {
        let root = Path::new("/p");
        assert!(is_source_change(root, Path::new("/p/src/lib.rs")));
        assert!(is_source_change(root, Path::new("/p/hub.py")));
        assert!(is_source_change(root, Path::new("/p/Cargo.toml")));
        assert!(!is_source_change(root, Path::new("/p/target/x.wasm")));
        assert!(!is_source_change(root, Path::new("/p/__pycache__/hub.pyc")));
        assert!(!is_source_change(root, Path::new("/p/.git/index")));
        assert!(!is_source_change(root, Path::new("/p/src/.lib.rs.swp")));
        assert!(!is_source_change(root, Path::new("/p/hub.py~")));
        assert!(!is_source_change(root, Path::new("/elsewhere/hub.py")));
        assert!(!is_source_change(root, Path::new("/p")));
    }
}
