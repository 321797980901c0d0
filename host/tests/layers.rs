//! The import check: a module may use modules on its own floor or below, never above.
//! Production code only: a unit test may build a higher layer's piece to drive a lower one.
//!
//! The floors are the layering of `docs/architecture.md`. Imports that break it today are
//! listed in `KNOWN_UPWARD`, so the check fails on a new one, and also when a listed one is
//! gone (then it must leave the list: the list only shrinks).

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of the crate and its floor, lowest first.
const FLOORS: &[(&str, u8)] = &[
    ("protocol", 1),
    ("metrics", 1),
    ("error_text", 1),
    ("address", 2),
    ("config_source", 2),
    ("config", 3),
    ("durable", 4),
    ("backplane", 4),
    ("outbound", 4),
    ("router", 5),
    ("tenant", 5),
    ("plugin", 6),
    ("hub", 7),
    ("connection", 8),
    ("cors", 9),
    ("transport", 9),
    ("node", 10),
    ("api", 11),
    ("dashboard", 11),
    ("web", 11),
    ("authoring", 12),
    ("server", 12),
    ("telemetry", 12),
];

/// Upward imports that stand today, as "from -> to". Remove an entry when its import goes.
const KNOWN_UPWARD: &[&str] = &[];

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

/// The crate modules a source text names as `crate::module`, comments and
/// the trailing `#[cfg(test)] mod` left out.
fn named_modules(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Whether a file holds only tests (`tests.rs`, `*_tests.rs`, `proptests/`).
fn test_only(relative: &Path) -> bool {
    let name = relative
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name == "tests"
        || name.ends_with("_tests")
        || relative.components().any(|c| c.as_os_str() == "proptests")
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("source folder readable");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One production source file of the crate.
struct Source {
    /// The top-level module it belongs to.
    module: String,
    /// Its path under `src/`.
    path: std::path::PathBuf,
    text: String,
}

/// Each production source file of the crate (tests, `lib.rs` and `main.rs` left out).
fn module_sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&root).expect("under src");
            let first = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default();
            let module = first.strip_suffix(".rs").unwrap_or(first);
            if test_only(relative) || matches!(module, "lib" | "main") {
                return None;
            }
            Some(Source {
                module: module.to_owned(),
                path: relative.to_path_buf(),
                text: std::fs::read_to_string(file).expect("source readable"),
            })
        })
        .collect()
}

#[test]
fn no_module_imports_a_higher_floor() {
    let mut upward = BTreeSet::new();
    let mut unplaced = BTreeSet::new();
    for Source {
        module: from, text, ..
    } in module_sources()
    {
        let Some(from_floor) = floor(&from) else {
            unplaced.insert(from);
            continue;
        };
        for to in named_modules(&text) {
            match floor(&to) {
                Some(to_floor) if to_floor > from_floor => {
                    upward.insert(format!("{from} -> {to}"));
                }
                Some(_) => {}
                None => {
                    unplaced.insert(to);
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules without a floor (add them to FLOORS and docs/architecture.md): {unplaced:?}"
    );
    let known: BTreeSet<String> = KNOWN_UPWARD.iter().map(|s| (*s).to_owned()).collect();
    let new: Vec<_> = upward.difference(&known).collect();
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        new.is_empty(),
        "imports from a lower floor to a higher one: {new:?} (pass the lower module a narrow handle instead)"
    );
    assert!(
        gone.is_empty(),
        "these upward imports are gone: take them out of KNOWN_UPWARD: {gone:?}"
    );
}

#[test]
fn named_modules_reads_paths_not_comments() {
    let found = named_modules(
        "use crate::router::{HubKey, Target};\n// crate::node\nlet x = crate::metrics::X; // crate::api\n#[cfg(test)]\nmod tests {\n    use crate::server;\n}",
    );
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["metrics", "router"]);
}

/// The REST API works on its narrow `ApiState`; only the admin API (operators
/// changing tenants, keys and plugins of the running node) holds the node.
#[test]
fn only_the_admin_api_holds_the_node() {
    let holding: Vec<String> = module_sources()
        .into_iter()
        .filter(|source| source.module == "api" && !source.path.starts_with("api/admin"))
        .filter(|source| named_modules(&source.text).contains("node"))
        .map(|source| source.path.display().to_string())
        .collect();
    assert!(
        holding.is_empty(),
        "REST API files that reach for the node (give ApiState what they need): {holding:?}"
    );
}

/// No two modules use each other, even on one floor: a circle would make
/// them one module in all but name.
#[test]
fn no_two_modules_use_each_other() {
    let mut uses: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for Source {
        module: from, text, ..
    } in module_sources()
    {
        let mut to = named_modules(&text);
        to.remove(&from);
        uses.entry(from).or_default().extend(to);
    }
    // A module reaches itself through others: a circle (the floors are few; a
    // walk from each module is enough).
    let mut circles = BTreeSet::new();
    for start in uses.keys() {
        let mut seen = BTreeSet::new();
        let mut next: Vec<&String> = uses[start].iter().collect();
        while let Some(module) = next.pop() {
            if module == start {
                circles.insert(start.clone());
                break;
            }
            if seen.insert(module.clone())
                && let Some(more) = uses.get(module)
            {
                next.extend(more.iter());
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that reach themselves through others: {circles:?}"
    );
}
