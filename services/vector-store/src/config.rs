//! Configuration from flags or environment (the platform's conventions: `MONGODB_URI`,
//! `MONGODB_TENANT_URI`, `VECTOR_STORE_*`, plus the shared `HOST`, `PORT`, `API_KEY`, …).

use std::path::PathBuf;

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, MongoArgs};
use prismicx_tenancy::VectorQuota;

use crate::engine::{Durability, EngineConfig};

/// The container port of vector-store-service (its Kubernetes Service exposes 8510 too).
pub const DEFAULT_PORT: u16 = 8510;

/// Where vectors live when neither `VECTOR_STORE_DATA_DIR` nor `VECTOR_DATA_DIR` is set.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/prismicx/vectors";

/// A collection's log is folded into a snapshot past this size.
pub const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// vector-store-service: per-tenant collections of embeddings.
#[derive(Debug, Clone, Parser)]
#[command(name = "vector-store-service", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// mongodb-system (database `vector_store_system`: collection metadata) and mongodb-tenant.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The data directory: vectors, indexes and logs of every tenant's collections.
    #[arg(long, env = "VECTOR_STORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The data directory's older name, read when `VECTOR_STORE_DATA_DIR` is unset.
    #[arg(long = "vector-data-dir", env = "VECTOR_DATA_DIR", hide = true)]
    pub legacy_data_dir: Option<PathBuf>,
    /// Resident indexes are evicted (least recently used first) above this many MiB.
    #[arg(long, env = "VECTOR_STORE_MEMORY_BUDGET_MB", default_value_t = 1024)]
    pub memory_budget_mb: u64,
    /// `fsync` (a write is on disk when answered) or `relaxed` (written, not fsynced).
    #[arg(long, env = "VECTOR_STORE_DURABILITY", default_value = "fsync", value_parser = parse_durability)]
    pub durability: Durability,
    /// Largest accepted request body of this service (bytes), in place of `BODY_LIMIT_BYTES`:
    /// an upsert of 1000 points of 1536 dimensions is about 20 MB of JSON.
    #[arg(long, env = "VECTOR_STORE_BODY_LIMIT_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub vector_store_body_limit_bytes: usize,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "VECTOR_STORE_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// A tenant's collections unless its own quota says otherwise (0: unlimited).
    #[arg(long, env = "VECTOR_STORE_MAX_COLLECTIONS", default_value_t = 100)]
    pub max_collections: u64,
    /// A tenant's points across its collections unless its own quota says otherwise (0:
    /// unlimited).
    #[arg(long, env = "VECTOR_STORE_MAX_POINTS", default_value_t = 1_000_000)]
    pub max_points: u64,
    /// A tenant's bytes on disk unless its own quota says otherwise (0: unlimited).
    #[arg(long, env = "VECTOR_STORE_MAX_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub max_bytes: u64,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s.to_ascii_lowercase().as_str() {
        "fsync" => Ok(Durability::Fsync),
        "relaxed" => Ok(Durability::Relaxed),
        _ => Err("must be fsync or relaxed".into()),
    }
}

impl Config {
    /// `VECTOR_STORE_DATA_DIR`, else `VECTOR_DATA_DIR`, else [`DEFAULT_DATA_DIR`].
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| self.legacy_data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The engine's settings.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            data_dir: self.data_dir(),
            memory_budget_bytes: self.memory_budget_mb.saturating_mul(1024 * 1024),
            durability: self.durability,
            checkpoint_bytes: CHECKPOINT_BYTES,
        }
    }

    /// The quota of a tenant that sets none of its own.
    pub fn default_quota(&self) -> VectorQuota {
        let limit = |n: u64| (n > 0).then_some(n);
        VectorQuota {
            max_collections: limit(self.max_collections),
            max_points: limit(self.max_points),
            max_bytes: limit(self.max_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Config {
        let mut args = vec![
            "vector-store-service",
            "--api-key",
            "k",
            "--mongodb-uri",
            "mongodb://127.0.0.1:1",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args).expect("parses")
    }

    #[test]
    fn defaults_and_the_data_dir_fallback() {
        let c = parse(&[]);
        assert_eq!(c.log_level, "INFO");
        assert_eq!(c.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.durability, Durability::Fsync);
        assert_eq!(c.engine().memory_budget_bytes, 1024 * 1024 * 1024);
        let q = c.default_quota();
        assert_eq!(q.max_collections, Some(100));
        assert_eq!(q.max_points, Some(1_000_000));
        assert_eq!(q.max_bytes, Some(4_294_967_296));
        assert_eq!(
            parse(&["--vector-data-dir", "/old"]).data_dir(),
            PathBuf::from("/old")
        );
        assert_eq!(
            parse(&["--vector-data-dir", "/old", "--data-dir", "/new"]).data_dir(),
            PathBuf::from("/new")
        );
        let c = parse(&["--durability", "relaxed", "--max-points", "0"]);
        assert_eq!(c.durability, Durability::Relaxed);
        assert_eq!(c.default_quota().max_points, None);
        let bad = Config::try_parse_from([
            "vector-store-service",
            "--api-key",
            "k",
            "--mongodb-uri",
            "mongodb://x",
            "--durability",
            "sometimes",
        ]);
        assert!(bad.is_err());
    }
}
