//! PostgreSQL 15 as a local process: `initdb` into the harness directory, then `postgres` on a
//! loopback port with durability turned off (test data is disposable, speed is not) and every
//! statement logged to [`Postgres::log_file`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::process::{chown_tree, server_command, unprivileged_user, ServerProcess};

/// A running PostgreSQL server with a superuser `postgres`.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    password: String,
    socket_dir: PathBuf,
    /// The running server (its pid is watched by the harness guardian).
    pub(crate) process: ServerProcess,
}

impl Postgres {
    pub(crate) fn start(bin: &Path, dir: &Path, port: u16) -> Result<Postgres> {
        let who = unprivileged_user()?;
        std::fs::create_dir_all(dir)?;
        let data = dir.join("data");
        let password = random_secret();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password)?;
        chown_tree(dir, who)?;
        let log = dir.join("postgres.log");
        let mut initdb = server_command(&bin.join("initdb"), who, &log)?;
        let status = initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .status()
            .context("running initdb")?;
        std::fs::remove_file(&pwfile).ok();
        if !status.success() {
            bail!("initdb failed; see {}", log.display());
        }
        let child = server_command(&bin.join("postgres"), who, &log)?
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
            .args([
                "-c",
                "shared_buffers=256MB",
                "-c",
                "max_locks_per_transaction=256",
            ])
            .args(["-c", "password_encryption=scram-sha-256"])
            // Every statement (with its bind parameters) goes to the log, so tests can check
            // what reaches a server log, e.g. that no password does.
            .args([
                "-c",
                "log_statement=all",
                "-c",
                "log_min_duration_statement=0",
            ])
            .spawn()
            .context("starting postgres")?;
        let process = ServerProcess::new("postgres", child, log, "INT");
        process.wait_for_port(port, Duration::from_secs(60))?;
        let pg = Postgres {
            port,
            password,
            socket_dir: dir.to_path_buf(),
            process,
        };
        pg.wait_ready()?;
        Ok(pg)
    }

    fn wait_ready(&self) -> Result<()> {
        // The port opens before recovery finishes; `pg_isready` tells when connections succeed.
        for _ in 0..200 {
            let ok = Command::new("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(true);
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "postgres did not become ready; see {}",
            self.process.log().display()
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's log file (every statement is logged, bind parameters included).
    pub fn log_file(&self) -> &Path {
        self.process.log()
    }

    /// The superuser's password (random per harness run).
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// Superuser URL for database `db`, straight to PostgreSQL (not through PgBouncer).
    pub fn admin_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Superuser connect options for `db`.
    pub fn admin_options(&self, db: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .password(&self.password)
            .database(db)
            .log_statements(tracing::log::LevelFilter::Trace)
    }

    /// A superuser connection to `db`.
    pub async fn admin_connect(&self, db: &str) -> Result<PgConnection> {
        PgConnection::connect_with(&self.admin_options(db))
            .await
            .with_context(|| format!("connecting to database {db} as superuser"))
    }

    /// Creates a fresh, uniquely named database for one test.
    pub async fn create_database(&self) -> Result<TestDatabase> {
        let name = crate::unique_name("t_");
        let mut conn = self.admin_connect("postgres").await?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(TestDatabase { name })
    }

    pub fn stop(&self) {
        self.process.stop();
    }
}

/// A database created for one test (left in place; the whole server goes away with the run).
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
}

pub(crate) fn random_secret() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
