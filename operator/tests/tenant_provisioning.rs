//! Tenant reconcile against the real data servers (PostgreSQL, PgBouncer, MongoDB wire server,
//! Redis from the harness) and an in-memory Kubernetes API: provisioning, idempotence,
//! crash recovery, invalid specs and the credentials Secret.

mod support;

use kube::ResourceExt;
use prismicx_operator::Step;
use prismicx_store::pg::query_scalar;
use serde_json::json;
use support::*;

async fn scalar_bool(conn: &mut sqlx::PgConnection, sql: &str, arg: &str) -> bool {
    query_scalar(sql)
        .bind(arg)
        .fetch_one(conn)
        .await
        .expect(sql)
}

#[tokio::test]
async fn a_standard_tenant_becomes_ready_with_every_object_in_the_catalogs() {
    let env = env().await;
    let t = provisioned(&env, "std", json!({"services": ["user-data", "task-repo", "management-system-repo"], "displayName": "Standard Co"})).await;
    let name = t.name_any();
    let id = tenant_id(&t);
    let status = t.status.clone().unwrap();
    for c in [
        "Ready",
        "PostgresReady",
        "MongoReady",
        "PoolReady",
        "Registered",
        "IsolationVerified",
    ] {
        let cond = condition(&t, c).unwrap_or_else(|| panic!("{c} missing"));
        assert_eq!(cond.status, "True", "{c}: {cond:?}");
        assert_eq!(cond.observed_generation, t.metadata.generation, "{c}");
    }
    assert_eq!(condition(&t, "Drifted").unwrap().status, "False");
    assert_eq!(status.observed_generation, t.metadata.generation);
    assert_eq!(status.schema_versions.get("system_users"), Some(&1));
    assert_eq!(
        status.schema_versions.get("management_system_repository"),
        Some(&1)
    );
    assert!(t
        .finalizers()
        .iter()
        .any(|f| f == "prismicx.io/tenant-cleanup"));

    let schema = format!("tenant_{}", name.replace('-', "_"));
    for db in ["system_users", "management_system_repository"] {
        let mut c = admin(db).await;
        assert!(
            scalar_bool(&mut c, "SELECT EXISTS (SELECT 1 FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = $1 AND r.rolname = n.nspname || '_owner' AND NOT r.rolcanlogin)", &schema).await,
            "{db}: schema owned by its NOLOGIN owner"
        );
        let policies = count_with(&mut c, "SELECT count(*) FROM pg_policies WHERE schemaname = $1 AND policyname = 'tenant_isolation'", &schema).await;
        assert_eq!(policies, 3, "{db}: one policy per tenant table");
        let forced = count_with(&mut c, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> 'schema_migrations' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)", &schema).await;
        assert_eq!(forced, 0, "{db}: RLS enabled and forced everywhere");
        let app = format!("{db}_app");
        let usage = schema_usage(&mut c, &app, &schema).await;
        assert!(usage, "{db}: the services' app role may use the schema");
    }
    let mut c = admin("postgres").await;
    assert!(scalar_bool(&mut c, "SELECT rolcanlogin AND NOT rolbypassrls AND NOT rolsuper FROM pg_roles WHERE rolname = $1", &format!("{schema}_login")).await);

    // Standard: shared collections' indexes lead with tenant_id; no dedicated user or database.
    let m = mongo().await;
    let idx = index_names(&m, "task_repository", "tasks").await;
    assert!(
        idx.contains(&"tasks_tenant_status_due".to_string()),
        "{idx:?}"
    );
    let users = users_info(&name).await;
    assert!(users.get_array("users").unwrap().is_empty());

    // Registry entry.
    let reg = registry_entry(&name).await.expect("registry entry");
    assert_eq!(reg.get_str("state").unwrap(), "active");
    assert_eq!(reg.get_str("tier").unwrap(), "standard");
    assert_eq!(reg.get_str("display_name").unwrap(), "Standard Co");
    assert_eq!(
        reg.get("tenant_id"),
        Some(&prismicx_store::mongo::tenant_bson(id))
    );

    // No pool alias for a standard tenant.
    let shown = prismicx_harness::servers()
        .pgbouncer
        .show_databases()
        .await
        .unwrap();
    assert!(!shown.contains_key(&format!("system_users__{}", name.replace('-', "_"))));

    // The Secret's credentials connect through PgBouncer and see the tenant's schema only.
    let mut conn = connect_uri(&secret_value(&env, &t, "pooler-uri").await)
        .await
        .expect("pooler-uri connects");
    let (who, tid): (String, String) = prismicx_store::pg::query_as::<(String, String)>(
        "SELECT current_user::text, current_setting('app.tenant_id')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(who, format!("{schema}_login"));
    assert_eq!(tid, id.to_string());
    sqlx::raw_sql("INSERT INTO users (email, display_name) VALUES ('a@example.com', 'A')")
        .execute(&mut conn)
        .await
        .expect("the tenant writes its own table");
    let err = sqlx::raw_sql("SELECT count(*) FROM prismicx.audit_events")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let direct = connect_uri(&secret_value(&env, &t, "uri").await).await;
    assert!(direct.is_ok(), "uri connects straight to PostgreSQL");
    assert_eq!(secret_value(&env, &t, "mongodb-uri").await, "");
}

#[tokio::test]
async fn reconciling_again_changes_nothing() {
    let env = env().await;
    let t = create(&env, "idem", standard_spec()).await;
    let name = t.name_any();
    let first = provision(&env, &name).await;
    let pw = secret_value(&env, &first, "password").await;
    reconcile(&env, &name).await.expect("second reconcile");
    let second = get(&env, &name).await;
    assert_eq!(
        first.status, second.status,
        "status unchanged, lastTransitionTime included"
    );
    assert_eq!(
        pw,
        secret_value(&env, &second, "password").await,
        "password kept"
    );
    assert_eq!(tenant_id(&first), tenant_id(&second));
}

#[tokio::test]
async fn a_step_that_fails_once_is_finished_by_the_next_reconcile() {
    let env = env().await;
    let t = create(&env, "crash", dedicated_spec()).await;
    let name = t.name_any();
    env.ctx.fail_step_once(Step::Mongo);
    let err = reconcile(&env, &name)
        .await
        .expect_err("the injected failure surfaces");
    assert_eq!(err.metric_label(), "step_mongo");
    let t = get(&env, &name).await;
    assert_eq!(condition(&t, "PostgresReady").unwrap().status, "True");
    let mongo_ready = condition(&t, "MongoReady").unwrap();
    assert_eq!(mongo_ready.status, "False");
    assert_eq!(mongo_ready.reason, "MongoFailed");
    assert_eq!(condition(&t, "Ready").unwrap().reason, "MongoFailed");
    let id = tenant_id(&t);

    let t = provision(&env, &name).await;
    assert_eq!(
        tenant_id(&t),
        id,
        "the id assigned before the crash is kept"
    );
    assert_eq!(condition(&t, "MongoReady").unwrap().status, "True");
}

#[tokio::test]
async fn an_invalid_spec_gets_a_clear_condition_and_touches_nothing() {
    let env = env().await;
    // Passes serde but breaks the operator's rules (the CRD's CEL refuses it too; the operator
    // does not rely on that).
    let t = create(
        &env,
        "bad",
        json!({"services": ["user-data"], "pool": {"size": 5}}),
    )
    .await;
    let name = t.name_any();
    let err = reconcile(&env, &name).await.expect_err("invalid spec");
    assert_eq!(err.metric_label(), "invalid_spec");
    assert!(err.is_permanent());
    let t = get(&env, &name).await;
    let ready = condition(&t, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(ready.message.contains("spec.pool"), "{}", ready.message);
    assert!(
        t.status.as_ref().unwrap().tenant_id.is_none(),
        "no id assigned"
    );
    let mut c = admin("postgres").await;
    assert!(
        !scalar_bool(
            &mut c,
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &format!("tenant_{}_owner", name.replace('-', "_"))
        )
        .await
    );
    assert!(registry_entry(&name).await.is_none());
    assert!(env
        .secrets
        .get_opt(&format!("{name}-db-credentials"))
        .await
        .unwrap()
        .is_none());
}
