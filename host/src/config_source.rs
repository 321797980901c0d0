//! Where configuration values come from besides the TOML file: environment
//! variables (and files they name, for secrets), and where in the file a
//! value sits, so an error can say `FILE:LINE:COLUMN`.
//!
//! The naming rule: `SWITCHBOARD_` followed by the key's path, its segments
//! joined by `__` and upper-cased: `max_message_size` is
//! `SWITCHBOARD_MAX_MESSAGE_SIZE`, `[nats] url` is `SWITCHBOARD_NATS__URL`,
//! `[tenants.acme.limits] connections` is
//! `SWITCHBOARD_TENANTS__ACME__LIMITS__CONNECTIONS`. A variable ending in
//! `_FILE` reads the value from that file instead (a secret mounted by the
//! orchestrator): one entry per non-empty line for a list key, else the file
//! with its trailing newline removed. Keys whose own name ends in `_file`
//! (`jwks_file`) take a path anyway and are set directly.
//!
//! A value is read as a TOML value when it is one (`42`, `true`,
//! `["a", "b"]`, `"quoted"`), else as a string; a list key given a string
//! gets a list of that one string. The variables the command line reads
//! (`SWITCHBOARD_LISTEN`, ...) are not config keys.
//!
//! Pure functions: the environment and the file reader are passed in.

use std::ops::Range;

/// The prefix of every variable.
pub const PREFIX: &str = "SWITCHBOARD_";

/// Keys that hold lists (of secrets, paths or origins).
const LIST_KEYS: &[&str] = &[
    "signing_keys",
    "api_keys",
    "keys",
    "public_keys",
    "allowed_origins",
    "trusted_proxies",
];

/// Keys whose own name ends in `_file`: a path, never "read from a file".
const PATH_KEYS: &[&str] = &["jwks_file", "cert_file", "key_file"];

/// One config value taken from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvValue {
    /// The variable's name, for error messages.
    pub var: String,
    /// The key's path, lower-case (`["nats", "url"]`).
    pub path: Vec<String>,
    /// The value: the variable parsed as a TOML value if it is one, else a string; or the named
    /// file's text.
    pub value: toml::Value,
}

/// Why a variable cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    /// A `*_FILE` variable whose file cannot be read.
    #[error("{var}: cannot read {file}: {reason}")]
    File {
        /// The variable, with its `_FILE` suffix.
        var: String,
        /// The path the variable gave.
        file: String,
        /// The I/O error.
        reason: String,
    },
    /// A name with an empty key segment (`SWITCHBOARD_A____B`), or only `_FILE` as its last key.
    #[error("{var}: not a key path (empty segment)")]
    BadName {
        /// The variable.
        var: String,
    },
}

/// The config values among `vars`: `SWITCHBOARD_*` names whose first key
/// is one of `roots` (the config's top-level keys), except those in `ignored`
/// (the command line's). Other `SWITCHBOARD_*` variables belong to other
/// tools and are left alone. Sorted by name, so the outcome does not depend
/// on the environment's order.
pub fn from_env(
    vars: impl IntoIterator<Item = (String, String)>,
    roots: &[&str],
    ignored: &[String],
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<Vec<EnvValue>, EnvError> {
    let mut found: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX) && !ignored.contains(name))
        .collect();
    found.sort();
    let mut values = Vec::with_capacity(found.len());
    for (var, raw) in found {
        let mut path: Vec<String> = var[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(EnvError::BadName { var });
        }
        let leaf = path.last().map(String::as_str).unwrap_or_default();
        let from_file = leaf.ends_with("_file") && !PATH_KEYS.contains(&leaf);
        if from_file {
            let last = path.len() - 1;
            let keep = path[last].len() - "_file".len();
            path[last].truncate(keep);
            if path[last].is_empty() {
                return Err(EnvError::BadName { var });
            }
        }
        if !roots.contains(&path[0].as_str()) {
            continue;
        }
        let list = path.last().is_some_and(|k| LIST_KEYS.contains(&k.as_str()));
        let value = if from_file {
            let text = read_file(&raw).map_err(|e| EnvError::File {
                var: var.clone(),
                file: raw.clone(),
                reason: e.to_string(),
            })?;
            if list {
                toml::Value::Array(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| toml::Value::String(l.to_owned()))
                        .collect(),
                )
            } else {
                toml::Value::String(text.trim_end_matches(['\n', '\r']).to_owned())
            }
        } else {
            let value = parse_value(&raw);
            match value {
                toml::Value::Array(_) => value,
                other if list => toml::Value::Array(vec![other]),
                other => other,
            }
        };
        values.push(EnvValue { var, path, value });
    }
    Ok(values)
}

/// The `SWITCHBOARD_*` names among `vars` that [`from_env`] leaves alone
/// (their first key is none of `roots`, and they are not in `ignored`):
/// another tool's, or a misspelt key. Sorted.
pub fn unused(
    vars: impl IntoIterator<Item = (String, String)>,
    roots: &[&str],
    ignored: &[String],
) -> Vec<String> {
    let mut unused: Vec<String> = vars
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with(PREFIX) && !ignored.contains(name))
        .filter(|name| {
            let first = name[PREFIX.len()..]
                .split("__")
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let first = match first.strip_suffix("_file") {
                Some(key) if !name[PREFIX.len()..].contains("__") => key.to_owned(),
                _ => first,
            };
            !roots.contains(&first.as_str())
        })
        .collect();
    unused.sort();
    unused
}

/// `raw` as a TOML value when it is one, else as a string.
fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

/// Sets `value` at its path in `root`, making the tables on the way.
/// Fails (with the variable's name) where the path runs through a value
/// that is not a table.
pub fn overlay(root: &mut toml::Table, value: &EnvValue) -> Result<(), String> {
    let Some((leaf, parents)) = value.path.split_last() else {
        return Ok(());
    };
    let mut table = root;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(format!(
                    "{}: `{}` is not a table",
                    value.var,
                    value.path[..=depth].join(".")
                ));
            }
        };
    }
    table.insert(leaf.clone(), value.value.clone());
    Ok(())
}

/// A position in a file, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

/// The line and column where byte `offset` of `text` is.
pub fn position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Position { line, column }
}

/// The span of the key at `path` (`["nats", "url"]`) in the TOML `text`:
/// of the deepest segment the file has, or `None` when not even the first
/// is there (or the text is not TOML).
pub fn key_span(text: &str, path: &[&str]) -> Option<Range<usize>> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut found = None;
    for segment in path {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == segment) else {
            break;
        };
        found = Some(key.span());
        match value.get_ref().as_table() {
            Some(inner) => table = inner,
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ROOTS: &[&str] = &[
        "nats",
        "max_message_size",
        "stateful_reconnect",
        "tenants",
        "admin",
        "public_url",
    ];

    fn no_files(_: &str) -> std::io::Result<String> {
        Err(std::io::Error::other("no files here"))
    }

    #[test]
    fn unused_names_are_the_ones_from_env_skips() {
        let all = vars(&[
            ("SWITCHBOARD_NATS__URL", "x"),
            ("SWITCHBOARD_PUBLIC_URL_FILE", "/run/secrets/url"),
            ("SWITCHBOARD_TENANTS__ACME__API_KEYS_FILE", "/f"),
            ("SWITCHBOARD_LISTEN", "0.0.0.0:5000"),
            ("SWITCHBOARD_MAX_MESAGE_SIZE", "1"),
            ("SWITCHBOARD_BIN", "/bin/x"),
            ("OTHER", "y"),
        ]);
        assert_eq!(
            unused(all, ROOTS, &["SWITCHBOARD_LISTEN".to_owned()]),
            ["SWITCHBOARD_BIN", "SWITCHBOARD_MAX_MESAGE_SIZE"]
        );
    }

    #[test]
    fn names_become_paths_and_values_toml_or_strings() {
        let found = from_env(
            vars(&[
                ("SWITCHBOARD_NATS__URL", "nats://a:4222,nats://b:4222"),
                ("SWITCHBOARD_MAX_MESSAGE_SIZE", "4096"),
                ("SWITCHBOARD_STATEFUL_RECONNECT", "false"),
                ("SWITCHBOARD_NATS__PREFIX", "\"123\""),
                ("SWITCHBOARD_TENANTS__ACME__SIGNING_KEYS", "one-secret"),
                ("SWITCHBOARD_ADMIN__KEYS", "[\"a\", \"b\"]"),
                ("SWITCHBOARD_LISTEN", "127.0.0.1:1"),
                ("OTHER", "x"),
                ("SWITCHBOARD_BIN", "/usr/bin/switchboard"),
            ]),
            ROOTS,
            &["SWITCHBOARD_LISTEN".to_owned()],
            no_files,
        )
        .expect("valid");
        let by_var = |v: &str| found.iter().find(|e| e.var == v).expect(v).clone();
        assert_eq!(found.len(), 6, "LISTEN, BIN and OTHER are not config keys");
        assert_eq!(by_var("SWITCHBOARD_NATS__URL").path, ["nats", "url"]);
        assert_eq!(
            by_var("SWITCHBOARD_NATS__URL").value.as_str(),
            Some("nats://a:4222,nats://b:4222")
        );
        assert_eq!(
            by_var("SWITCHBOARD_MAX_MESSAGE_SIZE").value.as_integer(),
            Some(4096)
        );
        assert_eq!(
            by_var("SWITCHBOARD_STATEFUL_RECONNECT").value.as_bool(),
            Some(false)
        );
        assert_eq!(
            by_var("SWITCHBOARD_NATS__PREFIX").value.as_str(),
            Some("123")
        );
        let keys = by_var("SWITCHBOARD_TENANTS__ACME__SIGNING_KEYS");
        assert_eq!(keys.path, ["tenants", "acme", "signing_keys"]);
        assert_eq!(keys.value, toml::Value::Array(vec!["one-secret".into()]));
        assert_eq!(
            by_var("SWITCHBOARD_ADMIN__KEYS").value,
            toml::Value::Array(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn file_variables_read_secrets() {
        let read = |path: &str| match path {
            "/s/keys" => Ok("k1\n\n k2 \n".to_owned()),
            "/s/url" => Ok("https://push.example.com\n".to_owned()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        let found = from_env(
            vars(&[
                ("SWITCHBOARD_TENANTS__A__API_KEYS_FILE", "/s/keys"),
                ("SWITCHBOARD_PUBLIC_URL_FILE", "/s/url"),
                ("SWITCHBOARD_TENANTS__A__JWKS_FILE", "/etc/jwks.json"),
            ]),
            ROOTS,
            &[],
            read,
        )
        .expect("valid");
        assert_eq!(found[0].path, ["public_url"]);
        assert_eq!(found[0].value.as_str(), Some("https://push.example.com"));
        assert_eq!(found[1].path, ["tenants", "a", "api_keys"]);
        assert_eq!(
            found[1].value,
            toml::Value::Array(vec!["k1".into(), "k2".into()])
        );
        assert_eq!(found[2].path, ["tenants", "a", "jwks_file"], "a path key");
        assert_eq!(found[2].value.as_str(), Some("/etc/jwks.json"));
        let missing = from_env(
            vars(&[("SWITCHBOARD_PUBLIC_URL_FILE", "/nope")]),
            ROOTS,
            &[],
            read,
        );
        assert!(
            matches!(missing, Err(EnvError::File { ref var, .. }) if var == "SWITCHBOARD_PUBLIC_URL_FILE")
        );
        let bad = from_env(vars(&[("SWITCHBOARD_NATS____URL", "x")]), ROOTS, &[], read);
        assert!(matches!(bad, Err(EnvError::BadName { .. })));
    }

    #[test]
    fn overlay_makes_tables_and_refuses_non_tables() {
        let mut root: toml::Table = toml::from_str("[nats]\nprefix = \"p\"\nx = 1").expect("toml");
        let value = |var: &str, path: &[&str]| EnvValue {
            var: var.to_owned(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            value: toml::Value::Integer(3),
        };
        overlay(&mut root, &value("V1", &["nats", "partitions"])).expect("ok");
        overlay(
            &mut root,
            &value("V2", &["tenants", "a", "limits", "connections"]),
        )
        .expect("ok");
        assert_eq!(root["nats"]["partitions"].as_integer(), Some(3));
        assert_eq!(root["nats"]["prefix"].as_str(), Some("p"));
        assert_eq!(
            root["tenants"]["a"]["limits"]["connections"].as_integer(),
            Some(3)
        );
        let err = overlay(&mut root, &value("V3", &["nats", "x", "y"])).expect_err("not a table");
        assert!(err.starts_with("V3: `nats.x`"), "{err}");
    }

    #[test]
    fn positions_and_key_spans() {
        let text = "a = 1\n[nats]\n  url = \"x\"\n[tenants.acme.limits]\nconnections = 0\n";
        assert_eq!(position(text, 0), Position { line: 1, column: 1 });
        let span = key_span(text, &["nats", "url"]).expect("found");
        assert_eq!(position(text, span.start), Position { line: 3, column: 3 });
        let span = key_span(text, &["tenants", "acme", "limits", "connections"]).expect("found");
        assert_eq!(position(text, span.start), Position { line: 5, column: 1 });
        let span = key_span(text, &["nats", "partitions"]).expect("its section");
        assert_eq!(
            position(text, span.start).line,
            2,
            "the section of a missing key"
        );
        assert!(key_span(text, &["nope"]).is_none());
    }
}
