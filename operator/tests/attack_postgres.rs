//! Attacks by a tenant's own PostgreSQL login, as the tenant would make them: tenant B logs in
//! with the credentials from its Secret (provisioned by the operator against the real servers)
//! and goes after tenant A: A's id and namespace in the world-readable catalogs, A's rows in A's
//! schema and in the shared tables, a row with A's id in B's own schema, and more time and
//! connections than its limits allow. Each test asserts the exact SQLSTATE and that A's data is
//! unchanged. The last tests check what reaches the server's statement log when the platform
//! sets passwords, and that an installation of the older catalog forms is repaired.

mod support;

use kube::api::DeleteParams;
use kube::ResourceExt;
use prismicx_operator_api::Tenant;
use prismicx_store::pg::migrate::{self, LoginLimits};
use prismicx_store::pg::{query_scalar, quote_ident};
use prismicx_store::Secret as Hidden;
use prismicx_tenancy::TenantSlug;
use sqlx::{Connection, PgConnection};
use support::*;

fn schema_of(t: &Tenant) -> String {
    format!("tenant_{}", t.name_any().replace('-', "_"))
}

fn login_of(t: &Tenant) -> String {
    format!("{}_login", schema_of(t))
}

fn sqlstate(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => format!("not a database error: {other}"),
    }
}

/// Runs `sql` (simple protocol) and returns the SQLSTATE it failed with.
async fn refused(conn: &mut PgConnection, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(r) => panic!("{sql:?} succeeded ({} rows)", r.rows_affected()),
        Err(e) => sqlstate(&e),
    }
}

/// Two provisioned tenants, A (the victim, with a user row and an audit row) and B.
async fn two_tenants(env: &Env) -> (Tenant, Tenant) {
    let (a, b) = provisioned_pair(
        env,
        ("victim", user_data_spec()),
        ("attacker", user_data_spec()),
    )
    .await;
    let mut victim = connect_uri(&secret_value(env, &a, "pooler-uri").await)
        .await
        .expect("A's credentials connect");
    sqlx::raw_sql(
        "INSERT INTO users (email, display_name) VALUES ('secret@victim.example', 'Victim')",
    )
    .execute(&mut victim)
    .await
    .expect("A writes its own table");
    let mut admin = admin("system_users").await;
    let mut tx = admin.begin().await.expect("admin transaction");
    prismicx_store::pg::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id(&a).to_string())
        .execute(&mut *tx)
        .await
        .expect("A's tenant context");
    sqlx::raw_sql(
        "INSERT INTO prismicx.audit_events (actor, action, entity, entity_id) \
         VALUES ('victim-admin', 'create', 'user', gen_random_uuid())",
    )
    .execute(&mut *tx)
    .await
    .expect("an audit row of A");
    tx.commit().await.expect("commit");
    (a, b)
}

/// What most attacks start from: A and B ([`two_tenants`]) and A's data before the attack.
struct Attack {
    env: Env,
    a: Tenant,
    b: Tenant,
    before: String,
}

async fn attack() -> Attack {
    let env = env().await;
    let (a, b) = two_tenants(&env).await;
    let before = a_data(&a).await;
    Attack { env, a, b, before }
}

/// Everything stored for A in its schema and the shared table, read as the superuser.
async fn a_data(a: &Tenant) -> String {
    let mut admin = admin("system_users").await;
    query_scalar::<String>(&format!(
        "SELECT coalesce((SELECT string_agg(u::text, '|' ORDER BY u.id) FROM {}.users u), '') \
             || '#' || coalesce((SELECT string_agg(e::text, '|' ORDER BY e.id) \
                                 FROM prismicx.audit_events e WHERE e.tenant_id = $1::uuid), '')",
        quote_ident(&schema_of(a))
    ))
    .bind(tenant_id(a).to_string())
    .fetch_one(&mut admin)
    .await
    .expect("A's data")
}

/// B's own direct connection, with the credentials from B's Secret.
async fn as_b(env: &Env, b: &Tenant) -> PgConnection {
    connect_uri(&secret_value(env, b, "uri").await)
        .await
        .expect("B's credentials connect")
}

#[tokio::test]
async fn tenant_b_cannot_read_tenant_a_id_or_namespace_from_the_catalogs() {
    let env = env().await;
    let (a, b) = two_tenants(&env).await;
    let a_id = tenant_id(&a).to_string();
    let mut conn = as_b(&env, &b).await;

    // Constraints: A's tables are pinned, by a CHECK whose definition names no tenant.
    let a_checks: Vec<String> = query_scalar(
        "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k \
           JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND k.conname = $2",
    )
    .bind(schema_of(&a))
    .bind(migrate::TENANT_ID_CHECK)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!a_checks.is_empty(), "A's tables carry the pinning CHECK");

    // No catalog text spells A's id out: comments (the schema comment `prismicx tenant <uuid>
    // namespace <ns>` of old), constraint definitions, function bodies.
    let naming_a = [
        ("a comment", "SELECT count(*) FROM pg_description WHERE description LIKE '%' || $1 || '%'"),
        ("a constraint", "SELECT count(*) FROM pg_constraint WHERE pg_get_constraintdef(oid) LIKE '%' || $1 || '%'"),
        ("a function body", "SELECT count(*) FROM pg_proc WHERE prosrc LIKE '%' || $1 || '%'"),
    ];
    for (what, sql) in naming_a {
        let found = count_with(&mut conn, sql, &a_id).await;
        assert_eq!(found, 0, "{what} names A's id (checks: {a_checks:?})");
    }

    // Role defaults (A's login has `app.tenant_id = <A's id>` in this database): hidden, here
    // and in the databases every login may connect to.
    assert_eq!(
        refused(&mut conn, "SELECT setconfig FROM pg_db_role_setting").await,
        "42501"
    );
    let role_wide: Vec<Option<Vec<String>>> =
        query_scalar("SELECT rolconfig FROM pg_roles WHERE rolname = $1")
            .bind(login_of(&a))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        !format!("{role_wide:?}").contains(&a_id),
        "pg_roles shows A's id: {role_wide:?}"
    );
    let b_user = secret_value(&env, &b, "username").await;
    let b_pw = secret_value(&env, &b, "password").await;
    for db in ["postgres", "template1"] {
        let uri = format!(
            "postgres://{b_user}:{b_pw}@127.0.0.1:{}/{db}",
            prismicx_harness::servers().postgres.port()
        );
        match connect_uri(&uri).await {
            Ok(mut other) => assert_eq!(
                refused(&mut other, "SELECT setconfig FROM pg_db_role_setting").await,
                "42501",
                "pg_db_role_setting readable in {db}"
            ),
            // No CONNECT (template1): the catalog cannot be read there either.
            Err(e) => assert_eq!((db, sqlstate(&e).as_str()), ("template1", "42501"), "{e}"),
        }
    }

    // The platform's private mapping and its function are out of reach.
    assert_eq!(
        refused(&mut conn, "SELECT * FROM prismicx_tenancy.tenant_schemas").await,
        "42501"
    );
    assert_eq!(
        refused(
            &mut conn,
            &format!(
                "SELECT prismicx_tenancy.row_is_schema_tenant('{}.users'::regclass, '{a_id}')",
                quote_ident(&schema_of(&a))
            )
        )
        .await,
        "42501"
    );
}

#[tokio::test]
async fn tenant_b_cannot_read_or_change_tenant_a_rows_in_tenant_a_schema() {
    let Attack { env, a, b, before } = attack().await;
    let a_id = tenant_id(&a);
    let s = quote_ident(&schema_of(&a));
    let mut conn = as_b(&env, &b).await;

    let attempts = [
        format!("SELECT * FROM {s}.users"),
        format!("INSERT INTO {s}.users (tenant_id, email, display_name) VALUES ('{a_id}', 'x@b.example', 'X')"),
        format!("UPDATE {s}.users SET display_name = 'owned'"),
        format!("DELETE FROM {s}.users"),
    ];
    for sql in &attempts {
        assert_eq!(refused(&mut conn, sql).await, "42501", "{sql}");
    }
    // Claiming A's id and A's schema as the search path changes nothing: the schema is not
    // usable, so its tables are not even found.
    exec(
        &mut conn,
        &format!("SET app.tenant_id = '{a_id}'; SET search_path = {s}"),
    )
    .await;
    for sql in attempts.iter().map(|q| q.replace(&format!("{s}."), "")) {
        assert_eq!(refused(&mut conn, &sql).await, "42P01", "{sql}");
    }
    for sql in &attempts {
        assert_eq!(refused(&mut conn, sql).await, "42501", "{sql}");
    }
    assert_eq!(a_data(&a).await, before);
}

#[tokio::test]
async fn tenant_b_cannot_read_or_change_tenant_a_rows_in_shared_tables() {
    let Attack { env, a, b, before } = attack().await;
    assert!(before.contains("victim-admin"), "A has an audit row");
    let a_id = tenant_id(&a);
    let mut conn = as_b(&env, &b).await;
    exec(
        &mut conn,
        &format!("SET app.tenant_id = '{a_id}'; SET search_path = prismicx"),
    )
    .await;
    for table in ["prismicx.audit_events", "audit_events"] {
        for sql in [
            format!("SELECT * FROM {table}"),
            format!("INSERT INTO {table} (tenant_id, actor, action, entity, entity_id) VALUES ('{a_id}', 'b', 'delete', 'user', gen_random_uuid())"),
            format!("UPDATE {table} SET actor = 'b'"),
            format!("DELETE FROM {table}"),
        ] {
            let code = refused(&mut conn, &sql).await;
            // Qualified: no USAGE on the shared schema; unqualified: not found for that reason.
            let expected = if table.contains('.') { "42501" } else { "42P01" };
            assert_eq!(code, expected, "{sql}");
        }
    }
    assert_eq!(a_data(&a).await, before);
}

#[tokio::test]
async fn tenant_b_cannot_insert_a_row_with_tenant_a_id_into_its_own_schema() {
    let Attack { env, a, b, before } = attack().await;
    let a_id = tenant_id(&a);
    let mut conn = as_b(&env, &b).await;
    // With A's id as the session's tenant row-level security would let the row through; the
    // schema's CHECK still refuses it.
    exec(&mut conn, &format!("SET app.tenant_id = '{a_id}'")).await;
    let err = sqlx::raw_sql(&format!(
        "INSERT INTO users (tenant_id, email, display_name) VALUES ('{a_id}', 'forged@b.example', 'F')"
    ))
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err}");
    assert!(err.to_string().contains(migrate::TENANT_ID_CHECK), "{err}");
    // With its own id as the session's tenant, row-level security refuses it first.
    exec(&mut conn, "RESET app.tenant_id").await;
    assert_eq!(
        refused(
            &mut conn,
            &format!("INSERT INTO users (tenant_id, email, display_name) VALUES ('{a_id}', 'forged@b.example', 'F')")
        )
        .await,
        "42501"
    );
    let mut admin = admin("system_users").await;
    let foreign = count_with(
        &mut admin,
        &format!(
            "SELECT count(*) FROM {}.users WHERE tenant_id <> $1::uuid",
            quote_ident(&schema_of(&b))
        ),
        &tenant_id(&b).to_string(),
    )
    .await;
    assert_eq!(foreign, 0);
    assert_eq!(a_data(&a).await, before);
}

#[tokio::test]
async fn tenant_b_statement_running_past_its_timeout_is_cancelled() {
    let Attack { env, a, b, before } = attack().await;
    let mut conn = as_b(&env, &b).await;
    // The platform's defaults hold for every new session of the login.
    let shown: (String, String, String) = prismicx_store::pg::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), \
                current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        shown,
        ("30s".to_string(), "5s".to_string(), "1min".to_string())
    );
    conn.close().await.unwrap();

    let mut admin = admin("system_users").await;
    migrate::set_login_limits(
        &mut admin,
        &login_of(&b),
        &LoginLimits {
            statement_timeout_ms: 200,
            ..LoginLimits::TENANT_DEFAULT
        },
    )
    .await
    .unwrap();
    let mut conn = as_b(&env, &b).await;
    assert_eq!(
        refused(&mut conn, "SELECT pg_sleep(5)").await,
        "57014",
        "canceled by statement_timeout"
    );
    assert_eq!(a_data(&a).await, before);
}

#[tokio::test]
async fn tenant_b_cannot_open_more_connections_than_its_limit() {
    let Attack { env, a, b, before } = attack().await;
    let mut admin = admin("system_users").await;
    let limit: i32 = query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(login_of(&b))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(limit, LoginLimits::TENANT_DEFAULT.connection_limit);
    migrate::set_login_limits(
        &mut admin,
        &login_of(&b),
        &LoginLimits {
            connection_limit: 2,
            ..LoginLimits::TENANT_DEFAULT
        },
    )
    .await
    .unwrap();
    let _first = as_b(&env, &b).await;
    let _second = as_b(&env, &b).await;
    let err = connect_uri(&secret_value(&env, &b, "uri").await)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "53300", "{err}");
    assert_eq!(a_data(&a).await, before);
}

#[tokio::test]
async fn passwords_the_platform_sets_never_reach_the_server_log() {
    let env = env().await;
    let t = provisioned(&env, "logged", user_data_spec()).await;
    let name = t.name_any();
    let first = secret_value(&env, &t, "password").await;

    // Rotation: the Secret is gone, the next reconcile sets a new password.
    env.secrets
        .delete(&format!("{name}-db-credentials"), &DeleteParams::default())
        .await
        .unwrap();
    let t = provision(&env, &name).await;
    let second = secret_value(&env, &t, "password").await;
    assert_ne!(first, second, "rotated");

    // A service login, as the DatabaseService reconciler and the services' tests create it.
    let svc = format!("{}_svc", schema_of(&t).replace("tenant_", "logtest_"));
    let svc_pw = Hidden::new(format!("svc-{}", uuid::Uuid::new_v4()));
    let mut admin = admin("system_users").await;
    migrate::ensure_login_role(&mut admin, &svc, &svc_pw)
        .await
        .unwrap();

    // The logins work, straight and through PgBouncer (auth_query reads the SCRAM verifier).
    let s = prismicx_harness::servers();
    let user = secret_value(&env, &t, "username").await;
    for port in [s.postgres.port(), s.pgbouncer.port()] {
        for (u, pw) in [
            (user.as_str(), second.as_str()),
            (svc.as_str(), svc_pw.expose().as_str()),
        ] {
            let mut c = connect_uri(&format!(
                "postgres://{u}:{pw}@127.0.0.1:{port}/system_users"
            ))
            .await
            .unwrap_or_else(|e| panic!("{u} logs in on port {port}: {e}"));
            let me: String = query_scalar("SELECT current_user::text")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(me, u);
        }
        assert!(connect_uri(&format!(
            "postgres://{user}:{first}@127.0.0.1:{port}/system_users"
        ))
        .await
        .is_err());
    }

    let log = std::fs::read_to_string(s.postgres.log_file()).unwrap();
    // None of the passwords is in the log...
    for pw in [first.as_str(), second.as_str(), svc_pw.expose().as_str()] {
        assert!(
            !log.contains(pw),
            "a password is in {}",
            s.postgres.log_file().display()
        );
    }
    // ...which does record the statements that set them (so the check above can fail).
    for role in [&user, &svc] {
        assert!(
            log.contains(&format!(
                "ALTER ROLE {} LOGIN NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:",
                quote_ident(role)
            )),
            "no logged password change for {role}"
        );
    }
}

#[tokio::test]
async fn changed_login_limits_are_drift_and_are_restored() {
    let env = env().await;
    let t = provisioned(&env, "limits", user_data_spec()).await;
    let name = t.name_any();
    let mut admin = admin("system_users").await;
    exec(
        &mut admin,
        &format!(
            "ALTER ROLE {l} SET statement_timeout = 0; ALTER ROLE {l} CONNECTION LIMIT -1",
            l = quote_ident(&login_of(&t))
        ),
    )
    .await;
    let drifted = drift_after_repair(&env, &name).await;
    assert_eq!(
        (drifted.status.as_str(), drifted.reason.as_str()),
        ("False", "Repaired"),
        "{drifted:?}"
    );
    assert!(drifted.message.contains("limits"), "{}", drifted.message);
    assert_eq!(
        migrate::login_limits(&mut admin, &login_of(&t))
            .await
            .unwrap(),
        Some(LoginLimits::TENANT_DEFAULT)
    );
}

#[tokio::test]
async fn an_installation_with_the_old_catalog_forms_is_rewritten_and_keeps_its_tenant() {
    let env = env().await;
    let t = provisioned(&env, "oldform", user_data_spec()).await;
    let name = t.name_any();
    let id = tenant_id(&t);
    let schema = schema_of(&t);
    let slug = TenantSlug::parse(&name).unwrap();
    // What earlier versions left: the id in the schema comment and in a literal CHECK, and no
    // private registration.
    let mut admin = admin("system_users").await;
    exec(&mut admin, &format!(
        "COMMENT ON SCHEMA {s} IS '{comment}'; \
         ALTER TABLE {s}.users DROP CONSTRAINT {c}, ADD CONSTRAINT {c} CHECK (tenant_id = '{id}'::uuid); \
         DELETE FROM prismicx_tenancy.tenant_schemas WHERE schema_name = '{schema}';",
        s = quote_ident(&schema),
        c = migrate::TENANT_ID_CHECK,
        comment = prismicx_operator::tenant::postgres::schema_comment(id, NS),
    )).await;
    // The id is still found (from the comment) for a re-created Tenant.
    assert_eq!(
        prismicx_operator::tenant::postgres::retained_tenant_id(
            &env.ctx.data,
            &slug,
            &["system_users"]
        )
        .await
        .unwrap(),
        Some((id, NS.to_string()))
    );

    let drifted = drift_after_repair(&env, &name).await;
    assert_eq!(drifted.reason, "Repaired", "{drifted:?}");
    let comment: Option<String> = query_scalar(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
    )
    .bind(&schema)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(comment, None);
    let defs: Vec<String> = query_scalar(
        "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k \
           JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND k.conname = $2",
    )
    .bind(&schema)
    .bind(migrate::TENANT_ID_CHECK)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!defs.is_empty());
    assert!(
        defs.iter().all(|d| !d.contains(&id.to_string())),
        "{defs:?}"
    );
    assert_eq!(
        migrate::registered_tenant_schema(&mut admin, &slug)
            .await
            .unwrap(),
        Some((id, NS.to_string()))
    );
}
