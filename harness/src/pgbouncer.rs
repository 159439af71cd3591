//! PgBouncer in transaction mode in front of the harness PostgreSQL.
//!
//! Clients authenticate with their PostgreSQL role and password: PgBouncer looks the SCRAM
//! secret up with `auth_query` as the superuser. A wildcard entry routes every database name to
//! the server with the default pool; [`PgBouncer::set_aliases`] adds pool aliases with their own
//! size (written to an included file and applied with `RELOAD` on the admin console).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use prismicx_service_common::pg::pgbouncer::{self as pool_config, PoolEntry};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::Mutex;

use crate::process::{chown_tree, server_command, unprivileged_user, ServerProcess};
use crate::Postgres;

/// A pool alias: clients connect to database `name`, PgBouncer serves it from `dbname` with a
/// pool of `pool_size` server connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAlias {
    pub name: String,
    pub dbname: String,
    pub pool_size: u32,
}

/// A running PgBouncer.
#[derive(Debug)]
pub struct PgBouncer {
    port: u16,
    admin_password: String,
    databases_file: PathBuf,
    server_port: u16,
    aliases: Mutex<BTreeMap<String, PoolAlias>>,
    /// The running server (its pid is watched by the harness guardian).
    pub(crate) process: ServerProcess,
}

impl PgBouncer {
    pub(crate) fn start(bin: &Path, dir: &Path, port: u16, pg: &Postgres) -> Result<PgBouncer> {
        let who = unprivileged_user()?;
        std::fs::create_dir_all(dir)?;
        let databases_file = dir.join("databases.ini");
        std::fs::write(&databases_file, databases_ini(pg.port(), &BTreeMap::new())?)?;
        let userlist = dir.join("userlist.txt");
        std::fs::write(
            &userlist,
            format!("\"postgres\" \"{}\"\n", pg.superuser_password()),
        )?;
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = scram-sha-256\n\
                 auth_file = {userlist}\n\
                 auth_user = postgres\n\
                 auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n\
                 pool_mode = transaction\n\
                 default_pool_size = 20\n\
                 max_client_conn = 2000\n\
                 max_db_connections = 0\n\
                 server_idle_timeout = 60\n\
                 server_lifetime = 600\n\
                 admin_users = postgres\n\
                 stats_users = postgres\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {dir}/pgbouncer.log\n\
                 pidfile = {dir}/pgbouncer.pid\n\
                 %include {databases}\n",
                userlist = userlist.display(),
                dir = dir.display(),
                databases = databases_file.display(),
            ),
        )?;
        chown_tree(dir, who)?;
        let log = dir.join("pgbouncer.stderr.log");
        let child = server_command(bin, who, &log)?
            .arg(&ini)
            .spawn()
            .context("starting pgbouncer")?;
        let process = ServerProcess::new("pgbouncer", child, log, "INT");
        process.wait_for_port(port, Duration::from_secs(20))?;
        Ok(PgBouncer {
            port,
            admin_password: pg.superuser_password().to_string(),
            databases_file,
            server_port: pg.port(),
            aliases: Mutex::new(BTreeMap::new()),
            process,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connect options for `db` as `user` through PgBouncer.
    pub fn options(&self, db: &str, user: &str, password: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(user)
            .password(password)
            .database(db)
    }

    /// Connect options of PgBouncer's admin console (database `pgbouncer`).
    pub fn admin_options(&self) -> PgConnectOptions {
        self.options("pgbouncer", "postgres", &self.admin_password)
    }

    /// The `[databases]` file PgBouncer `%include`s (what the operator edits).
    pub fn databases_file(&self) -> &Path {
        &self.databases_file
    }

    /// A connection to PgBouncer's admin console (database `pgbouncer`, simple protocol only).
    pub async fn admin_console(&self) -> Result<PgConnection> {
        PgConnection::connect_with(&self.options("pgbouncer", "postgres", &self.admin_password))
            .await
            .context("connecting to the PgBouncer admin console")
    }

    /// Adds or replaces pool aliases: rewrites the included databases file, reloads, and checks
    /// PgBouncer serves them (through the same code the operator uses).
    pub async fn set_aliases(&self, aliases: &[PoolAlias]) -> Result<()> {
        // Held across the write and the RELOAD so concurrent callers cannot apply an older file.
        let mut map = self.aliases.lock().await;
        for a in aliases {
            map.insert(a.name.clone(), a.clone());
        }
        let entries = entries(self.server_port, &map);
        let content = databases_ini(self.server_port, &map)?;
        let mut admin = self.admin_console().await?;
        pool_config::apply(&mut admin, &self.databases_file, &content, &entries).await
    }

    /// `SHOW DATABASES` on the admin console: alias name → pool size.
    pub async fn show_databases(&self) -> Result<BTreeMap<String, i64>> {
        let mut admin = self.admin_console().await?;
        Ok(pool_config::show_databases(&mut admin)
            .await?
            .into_iter()
            .map(|(name, db)| (name, db.pool_size))
            .collect())
    }

    pub fn stop(&self) {
        self.process.stop();
    }
}

fn entries(server_port: u16, aliases: &BTreeMap<String, PoolAlias>) -> Vec<PoolEntry> {
    aliases
        .values()
        .map(|a| PoolEntry {
            name: a.name.clone(),
            host: "127.0.0.1".into(),
            port: server_port,
            dbname: Some(a.dbname.clone()),
            pool_size: Some(a.pool_size),
        })
        .collect()
}

fn databases_ini(server_port: u16, aliases: &BTreeMap<String, PoolAlias>) -> Result<String> {
    pool_config::render_databases(
        &entries(server_port, aliases),
        Some(("127.0.0.1", server_port)),
    )
}
