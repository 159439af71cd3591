//! Benchmark: tenant provisioning throughput of the operator's reconcile against a plain script
//! issuing the same data-server commands, on the same real servers, in one run.
//!
//! Method (also in docs/benchmarks.md): the harness starts PostgreSQL, PgBouncer, Redis and a
//! MongoDB wire server; a `Context` is built as the operator's tests build it (the real servers,
//! an in-memory Kubernetes API from kube-fake-client). The service database `system_users` is
//! ensured and one tenant goes through each path untimed (warm-up: connections, the shared
//! collection and its indexes, the registry collection). Then, each timed and with 4 tenants in
//! flight (the controller's default concurrency):
//!
//! 1. operator: N Tenants (`services: [user-data, task-repo]`, standard tier) are created in the
//!    fake API and reconciled with `tenant::reconcile` until each is Ready (re-read and
//!    re-reconciled at most 3 times; a tenant that never gets Ready fails the run). Wall time
//!    from the first create to the last Ready.
//! 2. the operator's extra steps (not in the plain script) are re-run on its N tenants, one kind
//!    at a time, to show where the difference goes;
//! 3. plain script: N other slugs get the same data-server commands without the operator's
//!    bookkeeping: `provision_tenant` + `ensure_tenant_login` in `system_users`, `ALTER ROLE …
//!    LOGIN`, `createIndexes` on `task_repository.tasks`, the registry upsert and a `PUBLISH`
//!    on `prismicx:tenant-events`.
//!
//! Run with `cargo bench -p prismicx-operator --bench provision` (`PRISMICX_BENCH_TENANTS`,
//! default 200, sets N).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use mongodb::bson::{doc, Bson, Document};
use mongodb::IndexModel;
use prismicx_harness::{servers, unique_name, Servers};
use prismicx_operator::catalog::{Catalog, PostgresLayout};
use prismicx_operator::dataplane::{DataPlane, DataPlaneSettings, Endpoints};
use prismicx_operator::tenant::{self, plan::TenantPlan};
use prismicx_operator::Context;
use prismicx_operator_api::{ServiceKind, Tenant, TenantSpec};
use prismicx_store::events::{self, TenantEvent, TenantEventKind};
use prismicx_store::mongo::{tenant_bson, IndexKeys};
use prismicx_store::pg::migrate::{self, tenant_login_role};
use prismicx_store::pg::quote_ident;
use prismicx_store::Secret as Hidden;
use prismicx_tenancy::TenantSlug;
use sqlx::Executor;
use uuid::Uuid;

const NS: &str = "tenants";
/// The controller's default number of concurrent reconciles.
const CONCURRENCY: usize = 4;
const MAX_TRIES: u32 = 3;

struct Env {
    ctx: Arc<Context>,
    tenants: Api<Tenant>,
    secrets: Api<Secret>,
}

/// The `Context` of operator/tests/support/mod.rs: the harness servers and a fake Kubernetes API.
async fn env(s: &Servers) -> Result<Env> {
    let client = kube_fake_client::ClientBuilder::new()
        .with_resource::<Tenant>()
        .with_status_subresource::<Tenant>()
        .build()
        .await
        .context("fake kube client")?;
    let settings = DataPlaneSettings {
        pg_admin: s.postgres.admin_options("postgres"),
        pgbouncer_admin: s.pgbouncer.admin_options(),
        pgbouncer_databases_file: s.pgbouncer.databases_file().to_path_buf(),
        mongo_system_uri: Hidden::new(s.mongo_system.uri()),
        mongo_tenant_uri: Hidden::new(s.mongo_tenant.uri()),
        redis_url: Hidden::new(s.redis.url()),
        endpoints: Endpoints {
            postgres_host: "127.0.0.1".into(),
            postgres_port: s.postgres.port(),
            pooler_host: "127.0.0.1".into(),
            pooler_port: s.pgbouncer.port(),
            pool_server_host: "127.0.0.1".into(),
            pool_server_port: s.postgres.port(),
            mongo_tenant_address: s.mongo_tenant.address(),
            mongo_system_address: s.mongo_system.address(),
        },
        default_dedicated_pool_size: 3,
    };
    let data = DataPlane::connect(settings).await.context("data plane")?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        data,
        Catalog::platform(),
        Duration::from_secs(300),
    ));
    Ok(Env {
        tenants: Api::namespaced(client.clone(), NS),
        secrets: Api::namespaced(client, NS),
        ctx,
    })
}

/// When each item of a run finished (from the run's start, ascending).
struct Run {
    done: Vec<Duration>,
}

impl Run {
    fn wall(&self) -> Duration {
        self.done.last().copied().unwrap_or_default()
    }

    /// Throughput (items/s) of each quarter of the items, in order of completion: shows
    /// whether a path slows down as the catalogs grow.
    fn quarters(&self) -> Vec<f64> {
        let n = self.done.len();
        let mut out = Vec::new();
        let mut prev = (0usize, Duration::ZERO);
        for q in 1..=4 {
            let end = n * q / 4;
            if end == prev.0 {
                continue;
            }
            let t = self.done[end - 1];
            out.push((end - prev.0) as f64 / (t - prev.1).as_secs_f64());
            prev = (end, t);
        }
        out
    }
}

/// Runs `f` over `items` with [`CONCURRENCY`] in flight.
async fn concurrently<'a, T, F, Fut>(items: &'a [T], f: F) -> Result<Run>
where
    T: 'a,
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = Result<()>> + 'a,
{
    let start = Instant::now();
    let mut done: Vec<Duration> = stream::iter(items)
        .map(|item| {
            let fut = f(item);
            async move { fut.await.map(|()| start.elapsed()) }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    done.sort();
    Ok(Run { done })
}

/// Wall time in seconds of `f` over `items` with [`CONCURRENCY`] in flight.
async fn seconds<'a, T, F, Fut>(items: &'a [T], f: F) -> Result<f64>
where
    T: 'a,
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = Result<()>> + 'a,
{
    Ok(concurrently(items, f).await?.wall().as_secs_f64())
}

fn is_ready(t: &Tenant) -> bool {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn new_tenant(name: &str) -> Result<Tenant> {
    let spec: TenantSpec =
        serde_json::from_value(serde_json::json!({"services": ["user-data", "task-repo"]}))
            .context("tenant spec")?;
    let mut t = Tenant::new(name, spec);
    t.metadata.namespace = Some(NS.into());
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// Operator path

/// Reconciles `t` until it is Ready; returns how many reconciles it took.
async fn reconcile_until_ready(env: &Env, t: Tenant) -> Result<u32> {
    let name = t.name_any();
    let mut current = t;
    let mut last_error = None;
    for attempt in 1..=MAX_TRIES {
        if let Err(e) = tenant::reconcile(Arc::new(current), env.ctx.clone()).await {
            last_error = Some(e.to_string());
        }
        current = env
            .tenants
            .get(&name)
            .await
            .with_context(|| format!("get tenant {name}"))?;
        if is_ready(&current) {
            return Ok(attempt);
        }
    }
    anyhow::bail!(
        "tenant {name} did not become Ready after {MAX_TRIES} reconciles \
         (last error: {}); status: {:#?}",
        last_error.unwrap_or_else(|| "none".into()),
        current.status
    )
}

/// Creates every Tenant, then reconciles them 4 at a time; returns when each got Ready and the
/// number of reconciles.
async fn run_operator(env: &Env, names: &[String]) -> Result<(Run, u32)> {
    let start = Instant::now();
    let mut created = Vec::with_capacity(names.len());
    for name in names {
        created.push(
            env.tenants
                .create(&PostParams::default(), &new_tenant(name)?)
                .await
                .with_context(|| format!("create tenant {name}"))?,
        );
    }
    let finished: Vec<(u32, Duration)> = stream::iter(created)
        .map(|t| async move {
            let tries = reconcile_until_ready(env, t).await?;
            anyhow::Ok((tries, start.elapsed()))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut done: Vec<Duration> = finished.iter().map(|(_, d)| *d).collect();
    done.sort();
    Ok((Run { done }, finished.iter().map(|(t, _)| t).sum()))
}

// ---------------------------------------------------------------------------------------------
// Plain-script path

struct Plain {
    dp: DataPlane,
    layout: PostgresLayout,
    tasks: mongodb::Collection<Document>,
    task_indexes: Vec<IndexModel>,
    registry: mongodb::Collection<Document>,
    redis: redis::aio::MultiplexedConnection,
}

impl Plain {
    async fn new(ctx: &Context) -> Result<Self> {
        let layout = ctx
            .catalog
            .service(ServiceKind::UserData)
            .postgres
            .context("user-data has a PostgreSQL layout")?;
        let mongo = prismicx_tenancy::services::task_repo::MONGO;
        let tasks_layout = mongo
            .collections
            .iter()
            .find(|c| c.name == "tasks")
            .context("task-repo has a tasks collection")?;
        let task_indexes = tasks_layout
            .indexes
            .iter()
            .map(IndexKeys::index_model)
            .collect();
        let dp = ctx.data.clone();
        Ok(Plain {
            layout,
            tasks: dp
                .mongo_system
                .database(mongo.database)
                .collection(tasks_layout.name),
            task_indexes,
            registry: dp
                .mongo_system
                .database(prismicx_tenancy::services::tenant_mgmt::MONGO.database)
                .collection(prismicx_tenancy::services::tenant_mgmt::REGISTRY_COLLECTION),
            redis: dp.redis().await?,
            dp,
        })
    }

    /// The commands the operator issues for a standard `[user-data, task-repo]` tenant, and
    /// nothing else.
    async fn provision(&self, slug: &TenantSlug) -> Result<()> {
        let id = Uuid::new_v4();
        let password = Hidden::new(unique_name("pw"));
        let db = self.layout.database;
        let version = {
            let mut conn = self.dp.pg(db).await?;
            let v = migrate::provision_tenant(&mut conn, &self.layout.schema, slug, id).await?;
            migrate::ensure_tenant_login(&mut conn, slug, id, &password).await?;
            v
        };
        {
            let mut conn = self.dp.pg("postgres").await?;
            conn.execute(
                format!("ALTER ROLE {} LOGIN", quote_ident(&tenant_login_role(slug))).as_str(),
            )
            .await?;
        }
        self.tasks
            .create_indexes(self.task_indexes.clone())
            .await
            .context("createIndexes")?;
        let now = Bson::DateTime(mongodb::bson::DateTime::now());
        self.registry
            .update_one(
                doc! { "_id": slug.as_str() },
                doc! {
                    "$set": {
                        "slug": slug.as_str(),
                        "tenant_id": tenant_bson(id),
                        "namespace": NS,
                        "tier": "standard",
                        "state": "active",
                        "display_name": Bson::Null,
                        "services": ["user-data", "task-repo"],
                        "placement": {
                            "postgres": [{
                                "database": db,
                                "schema": slug.pg_schema(),
                                "pool": db,
                                "schemaVersion": version,
                            }],
                            "mongo": [{
                                "service": "task_repository",
                                "server": "mongodb-system",
                                "database": "task_repository",
                            }],
                        },
                        "updated_at": now.clone(),
                    },
                    "$setOnInsert": { "created_at": now },
                },
            )
            .upsert(true)
            .await
            .context("registry upsert")?;
        events::publish(
            &mut self.redis.clone(),
            &TenantEvent::new(TenantEventKind::Provisioned, id, slug.clone()),
        )
        .await
        .context("PUBLISH")?;
        Ok(())
    }
}

fn slugs(prefix: &str, n: usize) -> Result<Vec<TenantSlug>> {
    (0..n)
        .map(|_| TenantSlug::parse(&unique_name(prefix)).map_err(anyhow::Error::msg))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The operator's extra steps, re-run one kind at a time on the provisioned tenants

struct Provisioned {
    tenant: Tenant,
    plan: TenantPlan,
}

async fn provisioned(env: &Env, names: &[String]) -> Result<Vec<Provisioned>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let tenant = env.tenants.get(name).await?;
        let id = tenant
            .status
            .as_ref()
            .and_then(|s| s.tenant_id.as_deref())
            .context("tenant id in the status")?;
        let plan = tenant::plan::plan(
            &tenant,
            Uuid::parse_str(id)?,
            &env.ctx.catalog,
            env.ctx.data.default_dedicated_pool_size,
        )?;
        out.push(Provisioned { tenant, plan });
    }
    Ok(out)
}

/// Wall time of each extra step for all tenants (label, seconds).
async fn extras(env: &Env, plain: &Plain, names: &[String]) -> Result<Vec<(&'static str, f64)>> {
    let ts = provisioned(env, names).await?;
    let dp = &env.ctx.data;
    let ctx = &env.ctx;
    let mut out = Vec::new();

    let d = seconds(&ts, |t| async move {
        for pg in &t.plan.postgres {
            tenant::postgres::probe(dp, &t.plan, pg).await?;
        }
        Ok(())
    })
    .await?;
    out.push(("isolation probe, PostgreSQL (postgres::probe)", d));

    let d = seconds(&ts, |t| async move {
        tenant::mongo::probe(dp, &t.plan).await?;
        Ok(())
    })
    .await?;
    out.push(("isolation probe, MongoDB (mongo::probe)", d));

    let fresh = slugs("bpr-", ts.len())?;
    let dbs: Vec<&str> = ctx
        .catalog
        .all_postgres()
        .iter()
        .map(|p| p.database)
        .collect();
    let dbs = &dbs;
    let d = seconds(&fresh, |slug| async move {
        tenant::registry::entry(dp, slug).await?;
        tenant::registry::retained(dp, slug).await?;
        tenant::postgres::retained_tenant_id(dp, slug, dbs).await?;
        tenant::registry::claim(dp, slug, NS, "standard", uuid::Uuid::new_v4()).await?;
        Ok(())
    })
    .await?;
    out.push((
        "id resolution of a new tenant (2 Mongo reads + retained schemas + the claim)",
        d,
    ));

    let d = seconds(&ts, |t| async move {
        for pg in &t.plan.postgres {
            tenant::postgres::observe(dp, &t.plan, pg).await?;
        }
        Ok(())
    })
    .await?;
    out.push(("final verification, PostgreSQL (postgres::observe)", d));
    let d = seconds(&ts, |t| async move {
        tenant::pool::observe(dp, &t.plan).await?;
        Ok(())
    })
    .await?;
    out.push(("final verification, PgBouncer (pool::observe)", d));
    let d = seconds(&ts, |t| async move {
        tenant::mongo::observe(dp, &t.plan).await?;
        Ok(())
    })
    .await?;
    out.push(("final verification, MongoDB (mongo::observe)", d));

    let layout = plain.layout;
    let layout = &layout;
    let d = seconds(&ts, |_| async move {
        tenant::postgres::ensure_database(dp, layout.database, layout).await
    })
    .await?;
    out.push(("ensure_database in every reconcile", d));

    let d = seconds(&ts, |t| async move {
        tenant::pool::apply(dp, &t.plan).await?;
        Ok(())
    })
    .await?;
    out.push(("pool::apply (standard: PgBouncer SHOW DATABASES)", d));

    let password = Hidden::new(String::from("unused-for-standard-tenants"));
    let password = &password;
    let d = seconds(&ts, |t| async move {
        tenant::mongo::apply(dp, &t.plan, password).await?;
        Ok(())
    })
    .await?;
    out.push(("mongo::apply (whole step, for comparison)", d));
    let d = seconds(&ts, |_| async move {
        plain
            .tasks
            .create_indexes(plain.task_indexes.clone())
            .await?;
        Ok(())
    })
    .await?;
    out.push(("  of which createIndexes (the plain script's part)", d));

    let registry = &plain.registry;
    let d = seconds(&ts, |t| async move {
        registry
            .find_one(doc! { "_id": t.plan.slug.as_str() })
            .await?;
        Ok(())
    })
    .await?;
    out.push(("registry read before the upsert", d));
    let d = seconds(&ts, |t| async move {
        tenant::registry::event_published(dp, &t.plan.slug).await
    })
    .await?;
    out.push(("registry write clearing event_pending", d));

    let d = seconds(&ts, |t| async move {
        tenant::registry::publish(dp, &t.plan, TenantEventKind::Updated).await
    })
    .await?;
    out.push(("PUBLISH on a new Redis connection (operator)", d));
    let d = seconds(&ts, |t| async move {
        events::publish(
            &mut plain.redis.clone(),
            &TenantEvent::new(
                TenantEventKind::Updated,
                t.plan.tenant_id,
                t.plan.slug.clone(),
            ),
        )
        .await?;
        Ok(())
    })
    .await?;
    out.push(("  PUBLISH on one shared connection (plain)", d));

    // The Kubernetes API side of one first reconcile: finalizer patch, two status writes, the
    // Secret (read + apply), seven Events, and the bench's own read of the Tenant.
    let d = seconds(&ts, |t| async move {
        let name = t.tenant.name_any();
        let patch = serde_json::json!({ "metadata": { "finalizers": t.tenant.finalizers() } });
        env.tenants
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let status = t.tenant.status.clone().unwrap_or_default();
        for _ in 0..2 {
            tenant::status::write(&env.tenants, &name, &status).await?;
        }
        let password = tenant::secret::existing_password(&env.secrets, &t.plan.secret_name)
            .await?
            .context("the tenant's Secret")?;
        let built = tenant::secret::build(
            &t.plan,
            &dp.endpoints,
            &password,
            NS,
            t.tenant.controller_owner_ref(&()),
        );
        tenant::secret::apply(&env.secrets, &built).await?;
        let reference = t.tenant.object_ref(&());
        for _ in 0..7 {
            ctx.event(&reference, false, "Bench", "Reconcile", "bench".into())
                .await;
        }
        env.tenants.get(&name).await?;
        Ok(())
    })
    .await?;
    out.push((
        "Kubernetes API (finalizer, 2 status writes, Secret, 7 Events, get)",
        d,
    ));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    let n: usize = std::env::var("PRISMICX_BENCH_TENANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    anyhow::ensure!(n > 0, "PRISMICX_BENCH_TENANTS must be at least 1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(servers(), n))
}

async fn run(s: &Servers, n: usize) -> Result<()> {
    let env = env(s).await?;
    let plain = Plain::new(&env.ctx).await?;

    // Untimed: the service database, then one tenant through each path.
    tenant::postgres::ensure_database(&env.ctx.data, plain.layout.database, &plain.layout).await?;
    run_operator(&env, &[unique_name("bwo-")]).await?;
    for slug in slugs("bwp-", 1)? {
        plain.provision(&slug).await?;
    }

    // The operator first (its tenants start from an almost empty catalog), its extra steps
    // re-run on its tenants, then the plain script.
    let names: Vec<String> = (0..n).map(|_| unique_name("bop-")).collect();
    let (operator, reconciles) = run_operator(&env, &names).await?;
    let extra = extras(&env, &plain, &names).await?;
    let plain_slugs = slugs("bps-", n)?;
    let script = concurrently(&plain_slugs, |slug| plain.provision(slug)).await?;

    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(0);
    println!(
        "Tenant provisioning throughput: {cores} cores, MongoDB server {}, concurrency \
         {CONCURRENCY}, spec services [user-data, task-repo], standard tier",
        s.mongo_system.kind()
    );
    println!();
    println!(
        "  {:<30} {:>7} {:>8} {:>10}   tenants/s by quarter",
        "path", "tenants", "seconds", "tenants/s"
    );
    for (path, r) in [
        ("operator (tenant::reconcile)", &operator),
        ("plain script", &script),
    ] {
        let wall = r.wall().as_secs_f64();
        let quarters: Vec<String> = r.quarters().iter().map(|q| format!("{q:.1}")).collect();
        println!(
            "  {path:<30} {n:>7} {wall:>8.2} {:>10.2}   {}",
            n as f64 / wall,
            quarters.join(", ")
        );
    }
    let ratio = operator.wall().as_secs_f64() / script.wall().as_secs_f64();
    println!(
        "  ratio operator / plain (time): {ratio:.2} (target <= 1.5: {})",
        if ratio <= 1.5 { "met" } else { "NOT met" }
    );
    println!(
        "  reconciles: {reconciles} for {n} tenants ({} needed more than one)",
        reconciles as usize - n
    );
    println!();
    for line in [
        "On top of the plain commands, the operator, per tenant: adds the finalizer; resolves the",
        "id (registry owner, registered id, retained record, retained schemas); writes the status",
        "twice; reads and applies the credentials Secret; re-checks the service database and its",
        "system migrations; COMMENT ON SCHEMA and two role lookups; PgBouncer SHOW DATABASES;",
        "lists the mongodb-tenant databases and looks up a MongoDB user; reads the registry entry",
        "before the upsert and clears event_pending after the PUBLISH (on a new Redis connection);",
        "runs the isolation probe (PostgreSQL, MongoDB); verifies the catalogs against the plan",
        "(PostgreSQL, PgBouncer, MongoDB); records Events. The drift observation before the steps",
        "is skipped (first provisioning).",
    ] {
        println!("  {line}");
    }
    println!();
    println!(
        "  The operator's extra steps, each re-run alone on its {n} tenants right after its run \
         (concurrency {CONCURRENCY}; the catalog then holds all {n}, during the run it grew from 0):"
    );
    for (label, secs) in &extra {
        println!("    {label:<70} {secs:>7.2} s");
    }
    Ok(())
}
