//! Redis as a local process (no persistence; it is a cache and message bus).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::process::{server_command, ServerProcess};

/// A running Redis server.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    /// The running server (its pid is watched by the harness guardian).
    pub(crate) process: ServerProcess,
}

impl Redis {
    pub(crate) fn start(bin: &Path, dir: &Path, port: u16) -> Result<Redis> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("redis.log");
        let child = server_command(bin, None, &log)?
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .spawn()?;
        let process = ServerProcess::new("redis-server", child, log, "TERM");
        process.wait_for_port(port, Duration::from_secs(20))?;
        Ok(Redis { port, process })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/DB`; tests that need a private keyspace pick their own `db`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&self) {
        self.process.stop();
    }
}
