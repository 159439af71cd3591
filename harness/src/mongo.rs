//! A MongoDB wire server as a local process: `mongod` when installed, else SecantusDB.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::process::{server_command, ServerProcess};
use crate::tools::MongoServer;

/// A running MongoDB wire server.
#[derive(Debug)]
pub struct Mongo {
    port: u16,
    kind: &'static str,
    process: ServerProcess,
}

impl Mongo {
    pub(crate) fn start(server: &MongoServer, dir: &Path, port: u16) -> Result<Mongo> {
        std::fs::create_dir_all(dir.join("data"))?;
        let log = dir.join("mongo.log");
        let (kind, child) = match server {
            MongoServer::Mongod(bin) => (
                "mongod",
                // A single-node replica set, so multi-document transactions work.
                server_command(bin, None, &log)?
                    .args(["--port", &port.to_string()])
                    .args(["--bind_ip", "127.0.0.1"])
                    .args(["--replSet", "rs0"])
                    .arg("--dbpath")
                    .arg(dir.join("data"))
                    .spawn()?,
            ),
            MongoServer::Secantus(bin) => (
                "secantusdb",
                server_command(bin, None, &log)?
                    .args(["--host", "127.0.0.1"])
                    .args(["--port", &port.to_string()])
                    .args(["--log-level", "WARNING"])
                    .arg("--storage-path")
                    .arg(dir.join("data"))
                    .spawn()?,
            ),
        };
        let process = ServerProcess::new(kind, child, log, "TERM");
        process.wait_for_port(port, Duration::from_secs(60))?;
        if kind == "mongod" {
            initiate_replica_set(port)?;
        }
        Ok(Mongo {
            port,
            kind,
            process,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Which server runs: `mongod` or `secantusdb`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// A connection string for the server (no credentials; auth is off in the harness).
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn stop(&self) {
        self.process.stop();
    }
}

/// `rs.initiate()` through the `mongosh`/`mongo` shell that ships beside a real mongod.
fn initiate_replica_set(port: u16) -> Result<()> {
    let shell = crate::tools::find("mongosh").or_else(|| crate::tools::find("mongo"));
    let Some(shell) = shell else {
        anyhow::bail!(
            "a mongod was found but no mongosh to initiate its replica set; install mongosh"
        )
    };
    let status = std::process::Command::new(shell)
        .arg(format!("mongodb://127.0.0.1:{port}/?directConnection=true"))
        .args([
            "--quiet",
            "--eval",
            "try { rs.status() } catch (e) { rs.initiate() }",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "rs.initiate() failed");
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}
