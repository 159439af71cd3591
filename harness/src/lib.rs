//! Real-server harness for PrismicX tests, benchmarks and the local platform.
//!
//! It starts the database servers the platform runs on as local processes: PostgreSQL 15
//! (`initdb` in a temporary directory), PgBouncer in transaction mode (generated config, admin
//! console enabled), Redis, and two MongoDB wire servers, mongodb-system and mongodb-tenant as the
//! platform has them (a `mongod` on `PATH` when there is one, else SecantusDB from the tools
//! directory), both with authentication on. Each listens on a free loopback port.
//!
//! Data flow: [`servers()`] starts the set once per test process (later calls return the same
//! set). A guardian process watches the test process and, when it ends for any reason (a failing
//! test, a panic, a kill), stops every server and removes their files. Tests then take fresh,
//! uniquely named databases and tenants ([`Postgres::create_database`], [`unique_name`]) so they
//! run in parallel on the shared servers.
//!
//! [`kit`] is the fixture kit for testing a service's application: tenants and keys, the
//! service's PostgreSQL database and MongoDB layout provisioned, and an in-process HTTP client.
//!
//! Nothing here is a mock: every helper talks to the real server it names.

pub mod kit;
mod mongo;
mod pgbouncer;
mod postgres;
mod process;
mod redis;
mod tools;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use mongo::{Mongo, ADMIN_USER as MONGO_ADMIN_USER};
pub use pgbouncer::{PgBouncer, PoolAlias};
pub use postgres::{Postgres, TestDatabase};
pub use process::Guardian;
pub use redis::Redis;
pub use tools::tools_dir;

/// How to start a [`Servers`] set.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Directory holding every server's data and logs. `None`: a fresh temporary directory.
    pub dir: Option<PathBuf>,
    /// Fixed ports; `None` picks free loopback ports.
    pub ports: Option<Ports>,
}

/// Ports of the server set (the platform's defaults are in [`Ports::platform`]).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub postgres: u16,
    pub pgbouncer: u16,
    pub redis: u16,
    /// mongodb-system: the services' system databases and the standard tier's collections.
    pub mongo_system: u16,
    /// mongodb-tenant: the dedicated tenants' databases.
    pub mongo_tenant: u16,
}

impl Ports {
    /// The ports of the platform's documentation, shifted by `offset` (so a machine that already
    /// runs a PostgreSQL on 5432 can use offset 10000).
    pub fn platform(offset: u16) -> Self {
        Ports {
            postgres: 5432 + offset,
            pgbouncer: 6432 + offset,
            redis: 6379 + offset,
            mongo_system: 27018 + offset,
            mongo_tenant: 27017 + offset,
        }
    }
}

/// A running set of the platform's database servers.
#[derive(Debug)]
pub struct Servers {
    pub postgres: Postgres,
    pub pgbouncer: PgBouncer,
    pub redis: Redis,
    /// mongodb-system (authentication on; [`Mongo::uri`] is its administrator).
    pub mongo_system: Mongo,
    /// mongodb-tenant (authentication on).
    pub mongo_tenant: Mongo,
    dir: PathBuf,
    guardian: Guardian,
    _tempdir: Option<tempfile::TempDir>,
}

impl Servers {
    /// Starts all four servers (in parallel) and a guardian that stops them when this process
    /// ends. Fails with a message naming any missing binary and how to install it.
    pub fn start(opts: StartOptions) -> anyhow::Result<Servers> {
        let (tempdir, dir) = match opts.dir {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("prismicx-servers-")
                    .tempdir()?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let ports = match opts.ports {
            Some(p) => p,
            None => Ports {
                postgres: process::free_port()?,
                pgbouncer: process::free_port()?,
                redis: process::free_port()?,
                mongo_system: process::free_port()?,
                mongo_tenant: process::free_port()?,
            },
        };
        // Locate every binary first so a missing one is reported before anything starts.
        let pg_bin = tools::postgres_bin_dir()?;
        let pgb_bin = tools::require("pgbouncer", tools::APT_HINT_PGBOUNCER)?;
        let redis_bin = tools::require("redis-server", tools::APT_HINT_REDIS)?;
        let mongo_server = tools::mongo_server()?;

        let guardian = Guardian::spawn(&dir, tempdir.is_some())?;
        // The two MongoDB servers differ only in name (also their data folder) and port.
        let mongo =
            |name: &'static str, port| Mongo::start(&mongo_server, &dir.join(name), port, name);
        let (pg, redis, mongo_system, mongo_tenant) = std::thread::scope(|s| {
            let redis = s.spawn(|| Redis::start(&redis_bin, &dir.join("redis"), ports.redis));
            let system = s.spawn(|| mongo("mongodb-system", ports.mongo_system));
            let tenant = s.spawn(|| mongo("mongodb-tenant", ports.mongo_tenant));
            let pg = Postgres::start(&pg_bin, &dir.join("postgres"), ports.postgres);
            (
                pg,
                redis.join().expect("redis start thread panicked"),
                system.join().expect("mongo start thread panicked"),
                tenant.join().expect("mongo start thread panicked"),
            )
        });
        let postgres = pg?;
        guardian.watch_pid(postgres.process.pid());
        let redis = redis?;
        guardian.watch_pid(redis.process.pid());
        let mongo_system = mongo_system?;
        guardian.watch_pid(mongo_system.process.pid());
        let mongo_tenant = mongo_tenant?;
        guardian.watch_pid(mongo_tenant.process.pid());
        let pgbouncer =
            PgBouncer::start(&pgb_bin, &dir.join("pgbouncer"), ports.pgbouncer, &postgres)?;
        guardian.watch_pid(pgbouncer.process.pid());
        Ok(Servers {
            postgres,
            pgbouncer,
            redis,
            mongo_system,
            mongo_tenant,
            dir,
            guardian,
            _tempdir: tempdir,
        })
    }

    /// Directory holding the servers' data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The guardian that stops these servers when this process ends; register further child
    /// processes (services started by the local platform) with it.
    pub fn guardian(&self) -> &Guardian {
        &self.guardian
    }

    /// Stops every server now (the local platform's Ctrl-C path). Idempotent.
    pub fn stop(&self) {
        self.pgbouncer.stop();
        self.redis.stop();
        self.mongo_system.stop();
        self.mongo_tenant.stop();
        self.postgres.stop();
    }
}

static SERVERS: OnceLock<Servers> = OnceLock::new();

/// The shared server set of this test process, started on first use.
///
/// Panics (failing the test with the reason) when a server cannot start, for instance because
/// its binary is missing; the message says how to install it.
pub fn servers() -> &'static Servers {
    SERVERS.get_or_init(|| match Servers::start(StartOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("the test harness could not start its servers: {e:#}"),
    })
}

/// A name no other test in this run uses: `prefix` followed by 10 random lowercase characters.
/// Valid as a PostgreSQL identifier, a Mongo database name and a tenant slug (DNS label).
pub fn unique_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}
