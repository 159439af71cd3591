//! Real-server harness for PrismicX tests, benchmarks and the local platform.
//!
//! It starts the database servers the platform runs on as local processes: PostgreSQL 15
//! (`initdb` in a temporary directory), PgBouncer in transaction mode (generated config, admin
//! console enabled), Redis, and a MongoDB wire server (a `mongod` on `PATH` when there is one,
//! else SecantusDB from the tools directory). Each listens on a free loopback port.
//!
//! Data flow: [`servers()`] starts the set once per test process (later calls return the same
//! set). A guardian process watches the test process and, when it ends for any reason (a failing
//! test, a panic, a kill), stops every server and removes their files. Tests then take fresh,
//! uniquely named databases and tenants ([`Postgres::create_database`], [`unique_name`]) so they
//! run in parallel on the shared servers.
//!
//! [`service`] adds fixtures for testing a service's application: tenants and keys, a
//! `MongoStore` with the service's layout provisioned, and an in-process HTTP client.
//!
//! Nothing here is a mock: every helper talks to the real server it names.

mod mongo;
mod pgbouncer;
mod postgres;
mod process;
mod redis;
pub mod service;
mod tools;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use mongo::Mongo;
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
    pub mongo: u16,
}

impl Ports {
    /// The ports of the platform's documentation, shifted by `offset` (so a machine that already
    /// runs a PostgreSQL on 5432 can use offset 10000).
    pub fn platform(offset: u16) -> Self {
        Ports {
            postgres: 5432 + offset,
            pgbouncer: 6432 + offset,
            redis: 6379 + offset,
            mongo: 27017 + offset,
        }
    }
}

/// A running set of the platform's database servers.
#[derive(Debug)]
pub struct Servers {
    pub postgres: Postgres,
    pub pgbouncer: PgBouncer,
    pub redis: Redis,
    pub mongo: Mongo,
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
                mongo: process::free_port()?,
            },
        };
        // Locate every binary first so a missing one is reported before anything starts.
        let pg_bin = tools::postgres_bin_dir()?;
        let pgb_bin = tools::require("pgbouncer", tools::APT_HINT_PGBOUNCER)?;
        let redis_bin = tools::require("redis-server", tools::APT_HINT_REDIS)?;
        let mongo_server = tools::mongo_server()?;

        let guardian = Guardian::spawn(&dir, tempdir.is_some())?;
        let (pg, pgb_redis_mongo) = std::thread::scope(|s| {
            let redis = s.spawn(|| Redis::start(&redis_bin, &dir.join("redis"), ports.redis));
            let mongo = s.spawn(|| Mongo::start(&mongo_server, &dir.join("mongo"), ports.mongo));
            let pg = Postgres::start(&pg_bin, &dir.join("postgres"), ports.postgres);
            let redis = redis.join().expect("redis start thread panicked");
            let mongo = mongo.join().expect("mongo start thread panicked");
            (pg, (redis, mongo))
        });
        let postgres = pg?;
        guardian.watch_pid(postgres.pid());
        let (redis, mongo) = pgb_redis_mongo;
        let redis = redis?;
        guardian.watch_pid(redis.pid());
        let mongo = mongo?;
        guardian.watch_pid(mongo.pid());
        let pgbouncer =
            PgBouncer::start(&pgb_bin, &dir.join("pgbouncer"), ports.pgbouncer, &postgres)?;
        guardian.watch_pid(pgbouncer.pid());
        Ok(Servers {
            postgres,
            pgbouncer,
            redis,
            mongo,
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
        self.mongo.stop();
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
