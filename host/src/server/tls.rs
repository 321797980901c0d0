//! TLS at the node (rustls): the certificate chain and key from PEM files,
//! reloaded when the files change, without touching open connections.
//!
//! Every accepted socket takes the acceptor in force at that moment, so a
//! reload serves the new certificate to new connections while existing ones
//! keep the session they negotiated. The files are checked once a second
//! (their size and modification time): this also sees a rename over them
//! and a symlink swapped to new files (a Kubernetes secret), which an inotify
//! watch on the old inode would miss. A pair that does not load (half
//! written, a key that does not match the certificate) is logged and the
//! previous one keeps serving; it is tried again when the files next change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read, or is not PEM.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The certificate or key file.
        path: String,
        /// What went wrong reading or parsing it.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    /// rustls refused the certificate chain or the key.
    #[error("the certificate and key do not go together, or are unusable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate and key files, and the acceptor made from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    acceptor: ArcSwap<TlsAcceptor>,
}

debug_fields!(Tls { cert, key });

impl Tls {
    /// Loads the pair; fails when it does not load (at start, a clear error).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, TlsError> {
        let acceptor = acceptor(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            acceptor: ArcSwap::from_pointee(acceptor),
        }))
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.acceptor.load_full()
    }

    /// Reloads the pair whenever the files change, for as long as the
    /// returned task runs (the server aborts it when it stops).
    pub fn watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = self.stamp();
            let mut ticks = tokio::time::interval(CHECK_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let now = self.stamp();
                if now == seen {
                    continue;
                }
                seen = now;
                self.reload();
            }
        })
    }

    fn reload(&self) {
        match acceptor(&self.cert, &self.key) {
            Ok(acceptor) => {
                self.acceptor.store(Arc::new(acceptor));
                info!(cert = %self.cert.display(), "TLS certificate reloaded; new connections get it");
            }
            Err(e) => warn!(
                cert = %self.cert.display(),
                key = %self.key.display(),
                error = %e,
                "TLS certificate changed but does not load; the previous one keeps serving"
            ),
        }
    }

    /// Size and modification time of both files (None for a file that is missing).
    fn stamp(&self) -> [Option<(u64, SystemTime)>; 2] {
        let of = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        };
        [of(&self.cert), of(&self.key)]
    }
}

/// An acceptor for the chain in `cert` and the key in `key` (PEM), HTTP/1.1.
fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Read { path, source }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(read_error(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(read_error(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let missing = dir.join("missing.pem");
        let e = Tls::load(&missing, &missing).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("missing.pem")),
            "{e:?}"
        );
        let e = Tls::load(&empty, &empty).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("no certificate")),
            "{e:?}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
