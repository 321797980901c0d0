//! The files of the web pages, compiled in (`host/assets/`), with their
//! content types. Pure: finding a file and naming its version.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name below `/assets/` (pages are served at their own paths).
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
    /// Whether its name changes with its content (cached for a year).
    pub immutable: bool,
    /// Whether it is a page, served at its route rather than below `/assets/`.
    pub page: bool,
    etag: OnceLock<String>,
}

impl Asset {
    /// A strong validator: the first 16 hex digits of the SHA-256 of the body, quoted.
    pub fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.body);
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
    }
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const fn file(
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    page: bool,
) -> Asset {
    Asset {
        name,
        content_type,
        body,
        immutable: false,
        page,
        etag: OnceLock::new(),
    }
}

/// The vendored SignalR bundle; its name carries the package version.
pub const SIGNALR: &str = "vendor/signalr-10.0.11.min.js";

static ASSETS: [Asset; 7] = [
    file(
        "index.html",
        HTML,
        include_bytes!("../../assets/index.html"),
        true,
    ),
    file(
        "site.css",
        CSS,
        include_bytes!("../../assets/site.css"),
        false,
    ),
    file("demo.js", JS, include_bytes!("../../assets/demo.js"), false),
    Asset {
        name: SIGNALR,
        content_type: JS,
        body: include_bytes!("../../assets/vendor/signalr-10.0.11.min.js"),
        immutable: true,
        page: false,
        etag: OnceLock::new(),
    },
    file(
        "vendor/signalr.LICENSE.txt",
        TEXT,
        include_bytes!("../../assets/vendor/signalr.LICENSE.txt"),
        false,
    ),
    file(
        "dashboard.html",
        HTML,
        include_bytes!("../../assets/dashboard.html"),
        true,
    ),
    file(
        "dashboard.js",
        JS,
        include_bytes!("../../assets/dashboard.js"),
        false,
    ),
];

/// A file served below `/assets/`, by its name there.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| !a.page && a.name == name)
}

/// A page, by its file name.
pub fn page(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.page && a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_but_not_pages_below_assets() {
        let js = find("demo.js").expect("demo.js");
        assert!(js.content_type.starts_with("text/javascript"));
        assert!(find(SIGNALR).expect("bundle").immutable);
        assert!(find("index.html").is_none(), "pages have their own routes");
        assert!(find("../Cargo.toml").is_none());
        assert!(page("index.html").is_some());
    }

    #[test]
    fn etags_are_quoted_and_differ_by_content() {
        let a = find("demo.js").expect("demo.js").etag();
        let b = find("site.css").expect("site.css").etag();
        assert!(
            a.starts_with('"') && a.ends_with('"') && a.len() == 18,
            "{a}"
        );
        assert_ne!(a, b);
    }
}
