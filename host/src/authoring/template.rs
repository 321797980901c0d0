//! The project templates (`templates/` in the repository, embedded in the
//! binary) and how they are filled in.

use std::path::{Component, Path, PathBuf};

use super::project::{Lang, crate_name};

/// One file of a template: its path in the project and its text.
#[derive(Debug)]
pub struct TemplateFile {
    /// Relative to the project folder.
    pub path: &'static str,
    /// With `{{...}}` placeholders.
    pub text: &'static str,
}

/// The files of `templates/{dir}/` named: each path written once, for the
/// project and for `include_str!`.
macro_rules! template {
    ($dir:literal: $($path:literal),+ $(,)?) => {
        &[$(TemplateFile {
            path: $path,
            text: include_str!(concat!("../../../templates/", $dir, "/", $path)),
        }),+]
    };
}

const RUST: &[TemplateFile] = template!("hub-rust": "Cargo.toml", "src/lib.rs");

const JS: &[TemplateFile] = template!("hub-js": "hub.js", "hub.test.js");

const PYTHON: &[TemplateFile] = template!("hub-python": "hub.py", "test_hub.py");

/// The files of a language's template.
pub fn files(lang: Lang) -> &'static [TemplateFile] {
    match lang {
        Lang::Rust => RUST,
        Lang::Js => JS,
        Lang::Python => PYTHON,
    }
}

/// What the placeholders stand for in one project.
#[derive(Debug, Clone)]
pub struct Values {
    /// `{{hub}}`: the hub's name.
    pub hub: String,
    /// `{{sdk_dir}}`: the Switchboard folder, relative to the project.
    pub sdk_dir: String,
}

/// Fills in a template text.
pub fn render(text: &str, values: &Values) -> String {
    let sdk_import = format!("{}/sdk-js/src/switchboard.js", values.sdk_dir);
    text.replace("{{hub}}", &values.hub)
        .replace("{{crate}}", &crate_name(&values.hub))
        .replace("{{sdk_dir}}", &values.sdk_dir)
        .replace("{{sdk_import}}", &sdk_import)
}

/// `to` as seen from the folder `from`, with `/` separators (both absolute
/// and normalised).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part.as_os_str());
    }
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            hub: "greeter".into(),
            sdk_dir: "../switchboard".into(),
        }
    }

    #[test]
    fn every_template_renders_with_no_placeholder_left() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            for file in files(lang) {
                let text = render(file.text, &values());
                assert!(!text.contains("{{"), "{} {}", lang.name(), file.path);
                if file.path != "Cargo.toml" {
                    assert!(text.contains("hello"), "{} {}", lang.name(), file.path);
                }
            }
        }
    }

    #[test]
    fn the_rust_template_names_its_crate_and_the_sdk_by_version_and_path() {
        let text = render(files(Lang::Rust)[0].text, &values());
        assert!(text.contains("name = \"greeter-hub\""));
        assert!(text.contains(
            "switchboard-guest = { version = \"0.1\", path = \"../switchboard/guest-sdk\" }"
        ));
        assert!(text.contains("[workspace]"));
    }

    #[test]
    fn the_js_template_imports_the_sdk_relative_to_the_project() {
        let text = render(files(Lang::Js)[0].text, &values());
        assert!(text.contains("from '../switchboard/sdk-js/src/switchboard.js'"));
        let test = render(files(Lang::Js)[1].text, &values());
        assert!(test.contains("from '../switchboard/sdk-js/src/testing.js'"));
    }

    #[test]
    fn the_python_test_finds_the_sdk_relative_to_itself() {
        let test = render(files(Lang::Python)[1].text, &values());
        assert!(test.contains(r#"parent / "../switchboard" / "sdk-python""#));
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        let rel = relative_path(Path::new("/a/b/proj"), Path::new("/a/sb"));
        assert_eq!(rel, Path::new("../../sb"));
        let rel = relative_path(Path::new("/a"), Path::new("/a/b"));
        assert_eq!(rel, Path::new("b"));
        let rel = relative_path(Path::new("/a"), Path::new("/a"));
        assert_eq!(rel, Path::new("."));
    }
}
