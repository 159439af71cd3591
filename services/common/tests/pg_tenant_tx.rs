//! Tenant transactions through PgBouncer (transaction mode) against real PostgreSQL: isolation
//! between tenants, forged tenant ids, session-variable leaks through a pool of size 1, many
//! concurrent transactions with unnamed statements, dedicated pool aliases, and migrations.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use prismicx_harness::kit::expect_sqlstate;
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::pg::migrate::{self, Migration, ServiceSchema};
use prismicx_service_common::pg::{
    dedicated_pool_alias, query, query_as, query_scalar, quote_ident, TenantDb,
};
use prismicx_service_common::tenancy::{TenantSlug, Tier};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, Row};
use support::{column, new_tenant, run, scalar, set_alias, sqlstate, PgFixture, SCHEMA};
use uuid::Uuid;

/// A fixture of two tenants and a tenant pool of four connections over it.
async fn two_tenants() -> (PgFixture, TenantDb) {
    let fx = PgFixture::provision(2).await;
    let db = fx.tenant_db(4);
    (fx, db)
}

#[tokio::test]
async fn tenant_b_sees_none_of_tenant_a_rows() {
    let (fx, db) = two_tenants().await;
    let (a, b) = (&fx.tenants[0], &fx.tenants[1]);

    let mut tx = db.begin(a).await.unwrap();
    assert_eq!(tx.tenant_id(), a.id);
    run(
        tx.conn(),
        "INSERT INTO prismicx.notes (body) VALUES ('a-secret-note')",
    )
    .await;
    run(
        tx.conn(),
        "INSERT INTO items (name) VALUES ('a-secret-item')",
    )
    .await;
    tx.commit().await.unwrap();

    // Positive control: A reads back its rows, stamped with its id, in its own schema.
    let mut tx = db.begin(a).await.unwrap();
    let owners: Vec<Uuid> = column(tx.conn(), "SELECT tenant_id FROM prismicx.notes").await;
    assert_eq!(owners, vec![a.id]);
    let items: Vec<String> = query_scalar(&format!(
        "SELECT name FROM {}.items",
        quote_ident(&a.slug.pg_schema())
    ))
    .fetch_all(tx.conn())
    .await
    .unwrap();
    assert_eq!(items, vec!["a-secret-item".to_string()]);
    drop(tx);

    // B: the shared table and its own schema show nothing of A; writes aimed at A's rows match none.
    let mut tx = db.begin(b).await.unwrap();
    let schema: String = scalar(tx.conn(), "SELECT current_schema()::text").await;
    assert_eq!(schema, b.slug.pg_schema());
    let notes: Vec<String> =
        column(tx.conn(), "SELECT coalesce(body, '') FROM prismicx.notes").await;
    assert!(notes.is_empty(), "B saw {notes:?}");
    let n: i64 = scalar(tx.conn(), "SELECT count(*) FROM items").await;
    assert_eq!(n, 0);
    let updated = run(tx.conn(), "UPDATE prismicx.notes SET body = 'b-was-here'").await;
    assert_eq!(updated, 0);
    let deleted = run(tx.conn(), "DELETE FROM prismicx.notes").await;
    assert_eq!(deleted, 0);
    tx.commit().await.unwrap();

    // B qualifying A's schema explicitly: refused, or no rows — never A's data.
    let a_items = quote_ident(&a.slug.pg_schema());
    for sql in [
        format!("SELECT name FROM {a_items}.items"),
        format!("UPDATE {a_items}.items SET name = 'b-was-here' RETURNING name"),
        format!("DELETE FROM {a_items}.items RETURNING name"),
    ] {
        let mut tx = db.begin(b).await.unwrap();
        match query_scalar::<String>(&sql).fetch_all(tx.conn()).await {
            Ok(rows) => assert!(rows.is_empty(), "{sql}: B got {rows:?}"),
            Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{sql}: {e}"),
        }
        tx.commit().await.ok();
    }

    // A's data is untouched.
    let mut tx = db.begin(a).await.unwrap();
    let notes: Vec<String> = column(tx.conn(), "SELECT body FROM prismicx.notes").await;
    assert_eq!(notes, vec!["a-secret-note".to_string()]);
    let items: Vec<String> = column(tx.conn(), "SELECT name FROM items").await;
    assert_eq!(items, vec!["a-secret-item".to_string()]);
    db.close().await;
}

#[tokio::test]
async fn forged_tenant_id_is_refused_by_row_level_security() {
    let (fx, db) = two_tenants().await;
    let (a, b) = (&fx.tenants[0], &fx.tenants[1]);

    // Insert into the shared table, or into a tenant-schema table, with B's id from A's
    // transaction; move an own row over to B (WITH CHECK): all refused.
    let mut tx = db.begin(a).await.unwrap();
    run(
        tx.conn(),
        "INSERT INTO prismicx.notes (body) VALUES ('mine')",
    )
    .await;
    tx.commit().await.unwrap();
    for sql in [
        "INSERT INTO prismicx.notes (tenant_id, body) VALUES ($1, 'forged')",
        "INSERT INTO items (tenant_id, name) VALUES ($1, 'forged')",
        "UPDATE prismicx.notes SET tenant_id = $1",
    ] {
        let mut tx = db.begin(a).await.unwrap();
        let forged = query(sql).bind(b.id).execute(tx.conn()).await;
        let err = expect_sqlstate(forged, "42501", sql);
        if sql.contains("prismicx.notes (tenant_id") {
            assert!(err.to_string().contains("row-level security"), "{err}");
        }
    }

    // B sees nothing; the superuser's view agrees: no row carries B's id, A's row is A's.
    let mut tx = db.begin(b).await.unwrap();
    let n: i64 = scalar(tx.conn(), "SELECT count(*) FROM prismicx.notes").await;
    assert_eq!(n, 0);
    let n: i64 = scalar(tx.conn(), "SELECT count(*) FROM items").await;
    assert_eq!(n, 0);
    drop(tx);
    let mut admin = fx.admin().await;
    let owners: Vec<Uuid> = column(&mut admin, "SELECT tenant_id FROM prismicx.notes").await;
    assert_eq!(owners, vec![a.id]);
    db.close().await;
}

#[tokio::test]
async fn no_session_variable_leaks_through_a_pool_of_size_one() {
    let fx = PgFixture::provision(2).await;
    let (a, b) = (&fx.tenants[0], &fx.tenants[1]);
    let alias = unique_name("one_");
    set_alias(&alias, &fx.db, 1).await;

    // Both the tenant pool and a plain (tenant-less) pool go through the one server connection.
    let settings = fx.settings_for(&alias, 2);
    let plain = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(settings.connect_options(&alias))
        .await
        .unwrap();
    let db = TenantDb::connect_lazy(settings);

    let mut backends = BTreeSet::new();
    for i in 0..50 {
        let t = if i % 2 == 0 { a } else { b };
        let mut tx = db.begin(t).await.unwrap();
        let (pid, tenant, path): (i32, String, String) = query_as(
            "SELECT pg_backend_pid(), current_setting('app.tenant_id', true), \
             current_setting('search_path')",
        )
        .fetch_one(tx.conn())
        .await
        .unwrap();
        backends.insert(pid);
        assert_eq!(tenant, t.id.to_string());
        assert_eq!(path, quote_ident(&t.slug.pg_schema()));
        query("INSERT INTO prismicx.notes (body) VALUES ($1)")
            .bind(format!("note {i}"))
            .execute(tx.conn())
            .await
            .unwrap();
        let own: i64 = scalar(tx.conn(), "SELECT count(*) FROM prismicx.notes").await;
        assert_eq!(
            own,
            i64::from(i / 2 + 1),
            "round {i}: RLS must show only own rows"
        );
        tx.commit().await.unwrap();

        // Right after: a transaction with no tenant on the same server connection.
        let mut plain_tx = plain.begin().await.unwrap();
        let (pid, tenant, path, visible): (i32, Option<String>, String, i64) = query_as(
            "SELECT pg_backend_pid(), current_setting('app.tenant_id', true), \
             current_setting('search_path'), (SELECT count(*) FROM prismicx.notes)",
        )
        .fetch_one(&mut *plain_tx)
        .await
        .unwrap();
        backends.insert(pid);
        assert_eq!(
            tenant.unwrap_or_default(),
            "",
            "round {i}: app.tenant_id leaked"
        );
        assert!(
            !path.contains("tenant_"),
            "round {i}: search_path leaked: {path}"
        );
        assert_eq!(
            visible, 0,
            "round {i}: RLS without a tenant must show nothing"
        );
        plain_tx.commit().await.unwrap();
    }
    assert_eq!(
        backends.len(),
        1,
        "every transaction must have run on the single server connection: {backends:?}"
    );

    // Control: a session-level setting (what TenantDb never does) *does* leak to the next client
    // here, so the checks above would have seen a leak.
    let mut tx = db.begin(a).await.unwrap();
    query("SELECT set_config('app.tenant_id', $1, false)")
        .bind(a.id.to_string())
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut plain_tx = plain.begin().await.unwrap();
    let leaked: Option<String> = query_scalar("SELECT current_setting('app.tenant_id', true)")
        .fetch_one(&mut *plain_tx)
        .await
        .unwrap();
    assert_eq!(leaked, Some(a.id.to_string()));
    let visible: i64 = query_scalar("SELECT count(*) FROM prismicx.notes")
        .fetch_one(&mut *plain_tx)
        .await
        .unwrap();
    assert_eq!(visible, 25);
    query("SELECT set_config('app.tenant_id', '', false)")
        .execute(&mut *plain_tx)
        .await
        .unwrap();
    plain_tx.commit().await.unwrap();
    plain.close().await;
    db.close().await;
}

#[tokio::test]
async fn concurrent_transactions_of_three_tenants_see_only_their_own_rows() {
    const TASKS: usize = 8;
    const ROUNDS: usize = 50;
    let fx = PgFixture::provision(3).await;
    let db = Arc::new(fx.tenant_db(TASKS as u32));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let db = db.clone();
        let t = fx.tenants[task % 3].clone();
        handles.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let mut tx = db.begin(&t).await?;
                query("INSERT INTO prismicx.notes (body) VALUES ($1)")
                    .bind(format!("{}:{task}:{round}", t.slug))
                    .execute(tx.conn())
                    .await?;
                query("INSERT INTO items (name) VALUES ($1)")
                    .bind(format!("{}:{task}:{round}", t.slug))
                    .execute(tx.conn())
                    .await?;
                let owners: Vec<Uuid> =
                    query_scalar("SELECT DISTINCT tenant_id FROM prismicx.notes")
                        .fetch_all(tx.conn())
                        .await?;
                assert_eq!(owners, vec![t.id], "task {task} round {round}");
                let foreign: i64 = query_scalar(
                    "SELECT count(*) FROM items WHERE tenant_id <> $1 OR name NOT LIKE $2",
                )
                .bind(t.id)
                .bind(format!("{}:%", t.slug))
                .fetch_one(tx.conn())
                .await?;
                assert_eq!(foreign, 0, "task {task} round {round}");
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for h in handles {
        // Any error (e.g. "prepared statement … already exists") fails the test here.
        h.await.unwrap().unwrap();
    }
    for (i, t) in fx.tenants.iter().enumerate() {
        let tasks = (0..TASKS).filter(|task| task % 3 == i).count();
        let mut tx = db.begin(t).await.unwrap();
        let notes: i64 = scalar(tx.conn(), "SELECT count(*) FROM prismicx.notes").await;
        let items: i64 = scalar(tx.conn(), "SELECT count(*) FROM items").await;
        assert_eq!(notes, (tasks * ROUNDS) as i64, "tenant {}", t.slug);
        assert_eq!(items, (tasks * ROUNDS) as i64, "tenant {}", t.slug);
    }
    let mut admin = fx.admin().await;
    let total: i64 = scalar(&mut admin, "SELECT count(*) FROM prismicx.notes").await;
    assert_eq!(total, (TASKS * ROUNDS) as i64);
    db.close().await;
}

#[tokio::test]
async fn dedicated_tenants_use_their_own_pool_alias() {
    let fx = PgFixture::provision(0).await;
    let mut t = new_tenant(Tier::Dedicated);
    let mut admin = fx.admin().await;
    migrate::provision_tenant(&mut admin, &SCHEMA, &t.slug, t.id)
        .await
        .unwrap();
    let mut settings = fx.settings_for(&fx.db, 2);
    settings.acquire_timeout = std::time::Duration::from_secs(5);
    let db = TenantDb::connect_lazy(settings);

    // A dedicated tenant without an alias: `<db>__<slug>` is no database, so it cannot connect
    // (a tenant of its own: PgBouncer would block the failed name for `server_login_retry`) …
    let mut unaliased = new_tenant(Tier::Dedicated);
    unaliased.id = t.id;
    assert!(db.begin(&unaliased).await.is_err());
    // … while a standard tenant goes through the shared pool.
    t.tier = Tier::Standard;
    db.begin(&t).await.unwrap().commit().await.unwrap();
    t.tier = Tier::Dedicated;

    let alias = dedicated_pool_alias(&fx.db, &t.slug);
    let s = servers();
    set_alias(&alias, &fx.db, 3).await;
    let mut tx = db.begin(&t).await.unwrap();
    run(tx.conn(), "INSERT INTO items (name) VALUES ('dedicated')").await;
    tx.commit().await.unwrap();
    let mut tx = db.begin(&t).await.unwrap();
    let names: Vec<String> = column(tx.conn(), "SELECT name FROM items").await;
    assert_eq!(names, vec!["dedicated".to_string()]);
    drop(tx);
    // PgBouncer served the login role from the alias's pool.
    let mut console = s.pgbouncer.admin_console().await.unwrap();
    let pools = console.fetch_all("SHOW POOLS").await.unwrap();
    assert!(
        pools
            .iter()
            .any(|r| r.get::<String, _>("database") == alias
                && r.get::<String, _>("user") == fx.login),
        "no pool {alias}/{} in SHOW POOLS",
        fx.login
    );
    db.close().await;
}

static EDITED: ServiceSchema = ServiceSchema {
    system: &[Migration {
        version: 1,
        name: "notes",
        sql: "CREATE TABLE prismicx.edited_notes (id int)",
    }],
    tenant: &[Migration {
        version: 1,
        name: "items",
        sql: "CREATE TABLE edited_items (id int)",
    }],
};

#[tokio::test]
async fn migrations_are_idempotent_and_edited_ones_are_refused() {
    let fx = PgFixture::provision(1).await;
    let t = &fx.tenants[0];
    let mut admin = fx.admin().await;
    let tenant_schema = quote_ident(&t.slug.pg_schema());
    let recorded = |schema: String| format!("SELECT count(*) FROM {schema}.schema_migrations");

    for _ in 0..2 {
        assert_eq!(migrate::apply_system(&mut admin, &SCHEMA).await.unwrap(), 1);
        assert_eq!(
            migrate::provision_tenant(&mut admin, &SCHEMA, &t.slug, t.id)
                .await
                .unwrap(),
            2
        );
    }
    let n: i64 = query_scalar(&recorded("prismicx".into()))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n: i64 = query_scalar(&recorded(tenant_schema.clone()))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, 2);

    let err = migrate::apply_system(&mut admin, &EDITED)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("never be edited"), "{err:#}");
    let err = migrate::provision_tenant(&mut admin, &EDITED, &t.slug, t.id)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("never be edited"), "{err:#}");
    // Nothing of the edited SQL ran.
    let leftovers: i64 = query_scalar(
        "SELECT count(*) FROM pg_tables WHERE tablename IN ('edited_notes', 'edited_items')",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
    assert_eq!(migrate::apply_system(&mut admin, &SCHEMA).await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_provisioning_succeeds() {
    let fx = PgFixture::provision(0).await;
    let repeated = new_tenant(Tier::Standard);
    // The migrate futures are not `Send` (see the report), so they run concurrently on this
    // task rather than on spawned ones; each has its own server connection.
    let runs = (0..6).map(|i| {
        // Half provision the same tenant, half a tenant of their own, all at once.
        let t = if i % 2 == 0 {
            repeated.clone()
        } else {
            new_tenant(Tier::Standard)
        };
        let database = fx.db.clone();
        async move {
            let mut admin = servers().postgres.admin_connect(&database).await.unwrap();
            let system = migrate::apply_system(&mut admin, &SCHEMA).await;
            let tenant = migrate::provision_tenant(&mut admin, &SCHEMA, &t.slug, t.id).await;
            (
                system.map_err(|e| format!("{e:#}")),
                tenant.map_err(|e| format!("{e:#}")),
            )
        }
    });
    for (system, tenant) in futures::future::join_all(runs).await {
        assert_eq!(system, Ok(1));
        assert_eq!(tenant, Ok(2));
    }
    let schema = quote_ident(&repeated.slug.pg_schema());
    let applied = fx.count_rows(&format!("{schema}.schema_migrations")).await;
    assert_eq!(applied, 2);
}

#[tokio::test]
async fn tenant_version_is_reported_per_tenant() {
    let fx = PgFixture::provision(1).await;
    let mut admin = fx.admin().await;
    assert_eq!(
        migrate::tenant_version(&mut admin, &fx.tenants[0].slug)
            .await
            .unwrap(),
        Some(SCHEMA.tenant_version())
    );
    assert_eq!(SCHEMA.tenant_version(), 2);
    let unknown = TenantSlug::parse(&unique_name("nobody")).unwrap();
    assert_eq!(
        migrate::tenant_version(&mut admin, &unknown).await.unwrap(),
        None
    );
}
