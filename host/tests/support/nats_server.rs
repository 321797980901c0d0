//! A real nats-server with JetStream for tests: on a free 127.0.0.1 port,
//! storage in a fresh temp folder, killed (and the folder removed) on drop.
//!
//! The binary is `$NATS_SERVER_BIN`, else the one `./dev test` installs in
//! `tests/.tools/nats/bin/`, else `nats-server` on the PATH.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub store: PathBuf,
}

pub(crate) fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let tools =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/.tools/nats/bin/nats-server");
    if tools.exists() {
        return tools;
    }
    PathBuf::from("nats-server")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl NatsServer {
    /// Starts a server and waits (at most 10 s) until it accepts connections.
    pub(crate) fn start() -> NatsServer {
        let store = super::temp_dir::fresh("switchboard-nats");
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({}): {e}; run ./dev test or set NATS_SERVER_BIN",
                    binary().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data stays), as in an outage.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
