//! A MongoDB wire server as a local process, with authentication on: `mongod` when installed,
//! else SecantusDB.
//!
//! The platform runs two of them (mongodb-system and mongodb-tenant, see [`crate::Servers`]),
//! each refusing every unauthenticated command, so that a client talking to the wrong server or
//! with too broad a user fails a test. Neither server has a localhost exception that works here
//! (SecantusDB has none), so a server is started twice: once without authentication to create
//! its administrator (`admin` in database `admin`, role `root`, a random password), then again
//! with authentication on, on the same data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::process::{server_command, ServerProcess};
use crate::tools::MongoServer;

/// The administrator every harness MongoDB server has.
pub const ADMIN_USER: &str = "admin";

/// A running MongoDB wire server.
#[derive(Debug)]
pub struct Mongo {
    /// Which of the platform's servers it plays (`mongodb-system`, `mongodb-tenant`).
    role: &'static str,
    port: u16,
    kind: &'static str,
    admin_password: String,
    /// The running server (its pid is watched by the harness guardian).
    pub(crate) process: ServerProcess,
}

impl Mongo {
    pub(crate) fn start(
        server: &MongoServer,
        dir: &Path,
        port: u16,
        role: &'static str,
    ) -> Result<Mongo> {
        std::fs::create_dir_all(dir.join("data"))?;
        let admin_password = random_password();
        // First start: no authentication, to create the administrator.
        let first = spawn(server, dir, port, false)?;
        first.wait_for_port(port, Duration::from_secs(60))?;
        if matches!(server, MongoServer::Mongod(_)) {
            initiate_replica_set(port)?;
        }
        create_admin(port, &admin_password)
            .with_context(|| format!("creating the administrator of {role}"))?;
        first.stop();
        // Second start: authentication on.
        let process = spawn(server, dir, port, true)?;
        process.wait_for_port(port, Duration::from_secs(60))?;
        Ok(Mongo {
            role,
            port,
            kind: match server {
                MongoServer::Mongod(_) => "mongod",
                MongoServer::Secantus(_) => "secantusdb",
            },
            admin_password,
            process,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Which of the platform's servers this one plays.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// Which server runs: `mongod` or `secantusdb`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// A connection string as the administrator (role `root`): what the operator uses.
    pub fn uri(&self) -> String {
        self.uri_as(ADMIN_USER, &self.admin_password, "admin")
    }

    /// A connection string as `user` (defined in `auth_db`) with `password`.
    pub fn uri_as(&self, user: &str, password: &str, auth_db: &str) -> String {
        format!(
            "mongodb://{user}:{password}@127.0.0.1:{}/?directConnection=true&authSource={auth_db}",
            self.port
        )
    }

    /// A connection string with no credentials (refused by the server for anything but the
    /// handshake; for tests that check exactly that).
    pub fn anonymous_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub fn stop(&self) {
        self.process.stop();
    }
}

fn random_password() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn spawn(server: &MongoServer, dir: &Path, port: u16, auth: bool) -> Result<ServerProcess> {
    let log = dir.join("mongo.log");
    let (kind, child) = match server {
        MongoServer::Mongod(bin) => {
            let mut cmd = server_command(bin, None, &log)?;
            cmd.args(["--port", &port.to_string()])
                .args(["--bind_ip", "127.0.0.1"])
                // A single-node replica set, so multi-document transactions work.
                .args(["--replSet", "rs0"])
                .arg("--dbpath")
                .arg(dir.join("data"));
            if auth {
                // A replica set with authentication needs a key file for its members.
                cmd.arg("--auth").arg("--keyFile").arg(key_file(dir)?);
            }
            ("mongod", cmd.spawn()?)
        }
        MongoServer::Secantus(bin) => {
            let mut cmd = server_command(bin, None, &log)?;
            cmd.args(["--host", "127.0.0.1"])
                .args(["--port", &port.to_string()])
                .args(["--log-level", "WARNING"])
                .arg("--storage-path")
                .arg(dir.join("data"));
            if auth {
                cmd.arg("--auth");
            }
            ("secantusdb", cmd.spawn()?)
        }
    };
    Ok(ServerProcess::new(kind, child, log, "TERM"))
}

/// A replica-set key file readable by its owner only, as mongod requires.
fn key_file(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("keyfile");
    if !path.exists() {
        std::fs::write(&path, random_password())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(path)
}

/// Creates the administrator through the Rust driver, on a small runtime of its own (the
/// harness starts servers from plain threads).
fn create_admin(port: u16, password: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
        let client = mongodb::Client::with_uri_str(&uri).await?;
        client
            .database("admin")
            .run_command(mongodb::bson::doc! {
                "createUser": ADMIN_USER,
                "pwd": password,
                "roles": [{"role": "root", "db": "admin"}],
            })
            .await
            .map_err(|e| anyhow::anyhow!("createUser {ADMIN_USER}: {}", e.kind))?;
        client.shutdown().await;
        anyhow::Ok(())
    })
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
