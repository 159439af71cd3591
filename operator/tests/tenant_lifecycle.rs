//! Tenant lifecycle against the real data servers: dedicated tier, tier changes with data
//! intact, suspension, deletion with Retain and Delete, out-of-band drift repaired, and the
//! credentials reaching only their own tenant.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use mongodb::bson::{doc, Document};
use prismicx_service_common::tenancy::{
    TenantPlacement, TenantResolver, TenantSlug, TenantState, Tier,
};
use prismicx_store::mongo::tenant_bson;
use prismicx_store::pg::query_scalar;
use serde_json::json;
use sqlx::Connection;
use support::*;

/// The tenant as tenant-mgmt resolves it from the registry the operator writes.
async fn directory_placement(name: &str) -> TenantPlacement {
    let db = mongo()
        .await
        .database(prismicx_tenancy::services::tenant_mgmt::MONGO.database);
    let directory = prismicx_tenant_mgmt::registry::RegistryDirectory {
        registry: prismicx_tenant_mgmt::registry::Registry::new(&db),
        keys: prismicx_tenant_mgmt::keys::ApiKeys::new(&db),
    };
    directory
        .resolve(&TenantSlug::parse(name).expect("slug"))
        .await
        .expect("registry readable")
        .expect("tenant-mgmt resolves the tenant")
}

async fn exists(db: &str, sql: &str, arg: &str) -> bool {
    let mut c = admin(db).await;
    query_scalar(sql)
        .bind(arg)
        .fetch_one(&mut c)
        .await
        .expect(sql)
}

async fn count_tasks(db: &mongodb::Database, id: uuid::Uuid) -> u64 {
    db.collection::<Document>("tasks")
        .count_documents(doc! {"tenant_id": tenant_bson(id)})
        .await
        .expect("count")
}

async fn pool_file_has(alias: &str) -> bool {
    let path = prismicx_harness::servers()
        .pgbouncer
        .databases_file()
        .to_path_buf();
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_once('=').is_some_and(|(n, _)| n.trim() == alias))
}

#[tokio::test]
async fn a_dedicated_tenant_gets_its_own_pool_database_and_user() {
    let env = env().await;
    let t = provisioned(
        &env,
        "ded",
        json!({"tier": "dedicated", "pool": {"size": 4}, "services": ["user-data", "task-repo"]}),
    )
    .await;
    let name = t.name_any();
    let alias = format!("system_users__{}", ident(&name));
    let shown = prismicx_harness::servers()
        .pgbouncer
        .show_databases()
        .await
        .unwrap();
    assert_eq!(
        shown.get(&alias),
        Some(&4),
        "its own pool with its own size"
    );
    let m = mongo_tenant().await;
    let user = users_info(&name).await;
    let roles = user.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("roles")
        .unwrap()
        .clone();
    assert_eq!(roles.len(), 1);
    assert_eq!(
        roles[0].as_document().unwrap().get_str("db").unwrap(),
        format!("task_repository__{}", ident(&name))
    );
    let idx = index_names(&m, &format!("task_repository__{}", ident(&name)), "tasks").await;
    assert!(idx.contains(&"tasks_tenant_created".to_string()), "{idx:?}");
    let pooler = secret_value(&env, &t, "pooler-uri").await;
    assert!(pooler.ends_with(&format!("/{alias}")), "{pooler}");
    let mut conn = connect_uri(&pooler)
        .await
        .expect("connects through its own pool");
    exec(&mut conn, "SELECT count(*) FROM users").await;
    assert!(secret_value(&env, &t, "mongodb-uri")
        .await
        .contains(&format!("task_repository__{}", ident(&name))));
    assert!(condition(&t, "PoolReady").unwrap().message.contains(&alias));
}

#[tokio::test]
async fn standard_to_dedicated_and_back_keeps_every_row_and_document() {
    let env = env().await;
    let t = provisioned(&env, "move", standard_spec()).await;
    let name = t.name_any();
    let id = tenant_id(&t);
    let mut pg = connect_with_secret(&env, &t, "uri").await;
    exec(&mut pg, "INSERT INTO users (email, display_name) VALUES ('m1@example.com', 'M1'), ('m2@example.com', 'M2')").await;
    pg.close().await.unwrap();
    let m = mongo().await;
    let mt = mongo_tenant().await;
    let shared = m.database("task_repository");
    let own = mt.database(&format!("task_repository__{}", ident(&name)));
    let docs: Vec<Document> = (0..5)
        .map(|i| doc! {"tenant_id": tenant_bson(id), "title": format!("task {i}"), "status": "open", "created_at": i})
        .collect();
    shared
        .collection::<Document>("tasks")
        .insert_many(docs)
        .await
        .unwrap();

    patch_spec(
        &env,
        &name,
        json!({"tier": "dedicated", "pool": {"size": 2}}),
    )
    .await;
    let t = provision(&env, &name).await;
    assert_eq!(
        count_tasks(&own, id).await,
        5,
        "moved into the tenant's own database"
    );
    assert_eq!(
        count_tasks(&shared, id).await,
        0,
        "and out of the shared collection"
    );
    assert!(pool_file_has(&format!("system_users__{}", ident(&name))).await);
    let mut pg = connect_with_secret(&env, &t, "pooler-uri").await;
    let users = count(&mut pg, "SELECT count(*) FROM users").await;
    assert_eq!(users, 2, "rows intact behind the dedicated pool");
    pg.close().await.unwrap();

    patch_spec(&env, &name, json!({"tier": "standard", "pool": null})).await;
    let t = provision(&env, &name).await;
    assert_eq!(
        count_tasks(&shared, id).await,
        5,
        "moved back into the shared collection"
    );
    let dbs = mt.list_database_names().await.unwrap();
    assert!(
        !dbs.contains(&format!("task_repository__{}", ident(&name))),
        "own database dropped"
    );
    assert!(
        !pool_file_has(&format!("system_users__{}", ident(&name))).await,
        "alias removed"
    );
    let mut pg = connect_with_secret(&env, &t, "pooler-uri").await;
    let users = count(&mut pg, "SELECT count(*) FROM users").await;
    assert_eq!(users, 2);
    let user = users_info(&name).await;
    assert!(
        user.get_array("users").unwrap().is_empty(),
        "dedicated user dropped"
    );
}

#[tokio::test]
async fn suspension_blocks_logins_and_resuming_restores_them() {
    let env = env().await;
    let t = provisioned(&env, "susp", dedicated_spec()).await;
    let name = t.name_any();
    let uri = secret_value(&env, &t, "uri").await;
    let mut open = connect_uri(&uri).await.expect("connects while active");

    let redis = redis::Client::open(prismicx_harness::servers().redis.url()).unwrap();
    let mut sub = redis.get_async_pubsub().await.unwrap();
    sub.subscribe(prismicx_store::events::TENANT_EVENTS_CHANNEL)
        .await
        .unwrap();

    patch_spec(&env, &name, json!({"suspended": true})).await;
    let t = provision(&env, &name).await;
    assert_eq!(condition(&t, "Ready").unwrap().reason, "Suspended");
    let err = connect_uri(&uri)
        .await
        .expect_err("login refused while suspended");
    assert!(err.to_string().contains("not permitted to log in"), "{err}");
    assert!(
        sqlx::raw_sql("SELECT 1").execute(&mut open).await.is_err(),
        "open sessions are ended"
    );
    let reg = registry_entry(&name).await.unwrap();
    assert_eq!(reg.get_str("state").unwrap(), "suspended");
    // tenant-mgmt, which every service asks, reads the entry the operator wrote.
    let placement = directory_placement(&name).await;
    assert_eq!(
        (placement.id, placement.tier, placement.state),
        (tenant_id(&t), Tier::Dedicated, TenantState::Suspended)
    );
    let mut events = sub.on_message();
    let msg = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = events.next().await.expect("event stream");
            let payload: String = m.get_payload().unwrap();
            if payload.contains(&name) {
                return payload;
            }
        }
    })
    .await
    .expect("a lifecycle event for the tenant");
    assert!(msg.contains("\"suspended\""), "{msg}");
    drop(events);
    let user = users_info(&name).await;
    assert!(
        user.get_array("users").unwrap()[0]
            .as_document()
            .unwrap()
            .get_array("roles")
            .unwrap()
            .is_empty(),
        "mongo roles revoked"
    );

    patch_spec(&env, &name, json!({"suspended": false})).await;
    let t = provision(&env, &name).await;
    assert_eq!(condition(&t, "Ready").unwrap().reason, "Provisioned");
    connect_uri(&uri)
        .await
        .expect("connects again after resuming");
    assert_eq!(directory_placement(&name).await.state, TenantState::Active);
}

#[tokio::test]
async fn deleting_with_retain_keeps_the_data_and_a_new_tenant_of_that_name_finds_it() {
    let env = env().await;
    let t = provisioned(&env, "ret", standard_spec()).await;
    let name = t.name_any();
    let id = tenant_id(&t);
    let uri = secret_value(&env, &t, "uri").await;
    let mut pg = connect_uri(&uri).await.unwrap();
    exec(
        &mut pg,
        "INSERT INTO users (email, display_name) VALUES ('keep@example.com', 'Keep')",
    )
    .await;
    pg.close().await.unwrap();

    delete(&env, &name).await.expect("cleanup");
    let schema = format!("tenant_{}", ident(&name));
    assert!(
        exists(
            "system_users",
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &schema
        )
        .await,
        "schema kept"
    );
    assert!(
        !exists(
            "postgres",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &format!("{schema}_login")
        )
        .await,
        "login disabled"
    );
    assert!(connect_uri(&uri).await.is_err());
    assert!(registry_entry(&name).await.is_none(), "unregistered");
    assert!(
        env.secrets
            .get_opt(&format!("{name}-db-credentials"))
            .await
            .unwrap()
            .is_none(),
        "secret removed"
    );
    assert!(
        get(&env, &name).await.finalizers().is_empty(),
        "finalizer released"
    );

    // The same name again: a new Tenant object, the old id and the old rows.
    env.tenants
        .delete(&name, &Default::default())
        .await
        .unwrap();
    let spec: prismicx_operator_api::TenantSpec = serde_json::from_value(standard_spec()).unwrap();
    let mut again = prismicx_operator_api::Tenant::new(&name, spec);
    again.metadata.namespace = Some(NS.into());
    env.tenants
        .create(&Default::default(), &again)
        .await
        .unwrap();
    let t = provision(&env, &name).await;
    assert_eq!(tenant_id(&t), id, "the retained data's id is reused");
    let mut pg = connect_with_secret(&env, &t, "uri").await;
    let n = count(
        &mut pg,
        "SELECT count(*) FROM users WHERE email = 'keep@example.com'",
    )
    .await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn deleting_with_delete_removes_the_tenant_everywhere() {
    let env = env().await;
    let t = provisioned(&env, "del", json!({"tier": "dedicated", "deletionPolicy": "Delete", "services": ["user-data", "task-repo", "management-system-repo"]})).await;
    let name = t.name_any();
    let id = tenant_id(&t);
    let m = mongo().await;
    // Leave a document in a shared collection too (as if written before a tier change).
    m.database("config_db")
        .collection::<Document>("configurations")
        .insert_one(doc! {"tenant_id": tenant_bson(id), "system_id": "s", "version": 1})
        .await
        .unwrap();
    let mut open = connect_with_secret(&env, &t, "uri").await;

    delete(&env, &name).await.expect("cleanup");
    let schema = format!("tenant_{}", ident(&name));
    for db in ["system_users", "management_system_repository"] {
        assert!(
            !exists(
                db,
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &schema
            )
            .await,
            "{db}: schema dropped"
        );
    }
    for role in [format!("{schema}_login"), format!("{schema}_owner")] {
        assert!(
            !exists(
                "postgres",
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &role
            )
            .await,
            "{role} dropped"
        );
    }
    assert!(
        sqlx::raw_sql("SELECT 1").execute(&mut open).await.is_err(),
        "sessions ended"
    );
    let dbs = mongo_tenant().await.list_database_names().await.unwrap();
    assert!(
        !dbs.iter()
            .any(|d| d.ends_with(&format!("__{}", ident(&name)))),
        "own databases dropped: {dbs:?}"
    );
    assert_eq!(
        m.database("config_db")
            .collection::<Document>("configurations")
            .count_documents(doc! {"tenant_id": tenant_bson(id)})
            .await
            .unwrap(),
        0,
        "shared documents deleted"
    );
    assert!(!pool_file_has(&format!("system_users__{}", ident(&name))).await);
    assert!(registry_entry(&name).await.is_none());

    // Deleting again (everything already gone) succeeds.
    let mut again = get(&env, &name).await;
    again.metadata.finalizers = Some(vec!["prismicx.io/tenant-cleanup".into()]);
    again.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    prismicx_operator::tenant::reconcile(std::sync::Arc::new(again), env.ctx.clone())
        .await
        .expect("already gone counts as done");
}

#[tokio::test]
async fn out_of_band_drift_is_detected_and_repaired() {
    let env = env().await;
    let t = provisioned(&env, "drift", dedicated_spec()).await;
    let name = t.name_any();
    let schema = format!("tenant_{}", ident(&name));
    let alias = format!("system_users__{}", ident(&name));

    let mut c = admin("system_users").await;
    exec(&mut c, &format!("DROP POLICY tenant_isolation ON \"{schema}\".users; REVOKE USAGE ON SCHEMA \"{schema}\" FROM system_users_app")).await;
    mongo_tenant()
        .await
        .database("admin")
        .run_command(doc! {"dropUser": format!("tenant_{}_login", ident(&name))})
        .await
        .unwrap();
    {
        // Remove the pool entry from the file, as a hand edit would (holding off the other tests'
        // reconciles, whose read-modify-write of the file would otherwise undo it).
        let _guard = prismicx_operator::tenant::pool::lock_databases_file().await;
        let path = prismicx_harness::servers()
            .pgbouncer
            .databases_file()
            .to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(&alias)).collect();
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    }

    let drifted = drift_after_repair(&env, &name).await;
    assert_eq!(
        (drifted.status.as_str(), drifted.reason.as_str()),
        ("False", "Repaired"),
        "{drifted:?}"
    );
    for finding in ["users", "lost USAGE", "mongodb user", &alias] {
        assert!(
            drifted.message.contains(finding),
            "{finding} not in {}",
            drifted.message
        );
    }
    let policies = count_with(
        &mut c,
        "SELECT count(*) FROM pg_policies WHERE schemaname = $1 AND tablename = 'users'",
        &schema,
    )
    .await;
    assert_eq!(policies, 1, "policy restored");
    assert!(
        exists(
            "system_users",
            "SELECT has_schema_privilege('system_users_app', $1, 'USAGE')",
            &schema
        )
        .await,
        "grant restored"
    );
    assert!(pool_file_has(&alias).await, "pool entry restored");
    let user = users_info(&name).await;
    assert_eq!(
        user.get_array("users").unwrap().len(),
        1,
        "mongo user restored"
    );

    // In sync again: the next resync finds nothing.
    reconcile(&env, &name).await.unwrap();
    assert_eq!(
        condition(&get(&env, &name).await, "Drifted")
            .unwrap()
            .reason,
        "InSync"
    );
}

#[tokio::test]
async fn credentials_reach_only_their_own_tenant() {
    let env = env().await;
    let (a, b) = provisioned_pair(&env, ("atk", user_data_spec()), ("vic", user_data_spec())).await;
    let mut victim = connect_with_secret(&env, &b, "pooler-uri").await;
    exec(
        &mut victim,
        "INSERT INTO users (email, display_name) VALUES ('secret@victim.example', 'V')",
    )
    .await;

    let mut attacker = connect_with_secret(&env, &a, "uri").await;
    let b_schema = format!("tenant_{}", ident(&b.name_any()));
    let err = sqlx::raw_sql(&format!("SELECT * FROM \"{b_schema}\".users"))
        .execute(&mut attacker)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    // Claiming B's tenant id shows nothing and writes nothing in A's own schema.
    let b_id = tenant_id(&b).to_string();
    exec(&mut attacker, &format!("SET app.tenant_id = '{b_id}'")).await;
    let seen = count(&mut attacker, "SELECT count(*) FROM users").await;
    assert_eq!(seen, 0);
    let forged = sqlx::raw_sql(&format!("INSERT INTO users (tenant_id, email, display_name) VALUES ('{b_id}', 'x@example.com', 'X')"))
        .execute(&mut attacker)
        .await;
    assert!(forged.is_err(), "a forged tenant_id is refused");
    // Logging in to B's database pool as A with B's user name fails (A has only its own password).
    let a_pw = secret_value(&env, &a, "password").await;
    let b_user = secret_value(&env, &b, "username").await;
    let s = prismicx_harness::servers();
    let stolen = format!(
        "postgres://{b_user}:{a_pw}@127.0.0.1:{}/system_users",
        s.pgbouncer.port()
    );
    assert!(connect_uri(&stolen).await.is_err());
}

#[tokio::test]
async fn a_slug_owned_by_another_namespace_is_refused_and_left_alone() {
    let env = env().await;
    let t = create(&env, "own", user_data_spec()).await;
    let name = t.name_any();
    let owner = provision(&env, &name).await;

    // The same name in another namespace.
    let other: kube::Api<prismicx_operator_api::Tenant> =
        kube::Api::namespaced(env.client.clone(), "intruders");
    let spec: prismicx_operator_api::TenantSpec =
        serde_json::from_value(json!({"services": ["user-data"], "deletionPolicy": "Delete"}))
            .unwrap();
    let mut twin = prismicx_operator_api::Tenant::new(&name, spec);
    twin.metadata.namespace = Some("intruders".into());
    other.create(&Default::default(), &twin).await.unwrap();
    let twin = other.get(&name).await.unwrap();
    let err = prismicx_operator::tenant::reconcile(std::sync::Arc::new(twin), env.ctx.clone())
        .await
        .expect_err("refused");
    assert!(err.is_permanent());
    let twin = other.get(&name).await.unwrap();
    let ready = condition(&twin, "Ready").unwrap();
    assert_eq!(ready.reason, "SlugTaken");
    assert!(
        ready.message.contains("namespace tenants"),
        "{}",
        ready.message
    );
    assert!(twin.status.as_ref().unwrap().tenant_id.is_none());

    // Deleting the twin (policy Delete) touches nothing of the owner's.
    let mut doomed = other.get(&name).await.unwrap();
    doomed.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    prismicx_operator::tenant::reconcile(std::sync::Arc::new(doomed), env.ctx.clone())
        .await
        .expect("nothing to clean up");
    let schema = format!("tenant_{}", ident(&name));
    assert!(
        exists(
            "system_users",
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &schema
        )
        .await
    );
    connect_uri(&secret_value(&env, &owner, "uri").await)
        .await
        .expect("the owner still connects");
    let reg = registry_entry(&name).await.unwrap();
    assert_eq!(reg.get_str("namespace").unwrap(), NS);
}

#[tokio::test]
async fn a_stuck_deletion_shows_why_and_keeps_the_finalizer_until_it_completes() {
    let env = env().await;
    let t = provisioned(
        &env,
        "stuck",
        json!({"services": ["user-data"], "deletionPolicy": "Delete"}),
    )
    .await;
    let name = t.name_any();
    env.ctx.fail_step_once(prismicx_operator::Step::Cleanup);
    let err = delete(&env, &name)
        .await
        .expect_err("the injected failure surfaces");
    assert_eq!(err.metric_label(), "step_cleanup");
    let t = get(&env, &name).await;
    let ready = condition(&t, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CleanupFailed")
    );
    assert!(
        ready.message.contains("injected failure"),
        "{}",
        ready.message
    );
    assert!(
        t.finalizers()
            .iter()
            .any(|f| f == "prismicx.io/tenant-cleanup"),
        "finalizer kept"
    );
    delete(&env, &name).await.expect("the retry completes");
    assert!(get(&env, &name).await.finalizers().is_empty());
    let schema = format!("tenant_{}", ident(&name));
    assert!(
        !exists(
            "system_users",
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &schema
        )
        .await
    );
}

#[tokio::test]
async fn a_tenants_rate_limit_reaches_the_registry_as_tenant_mgmt_serves_it() {
    let env = env().await;
    let t = provisioned(
        &env,
        "rl",
        json!({
            "services": ["user-data"],
            "rateLimit": {"requestsPerSecond": 5, "burst": 10},
            "limits": {"vectorStore": {"maxCollections": 2, "maxPoints": 1000}},
        }),
    )
    .await;
    let name = t.name_any();
    let reg = registry_entry(&name).await.unwrap();
    let limit = prismicx_tenant_mgmt::registry::rate_limit_of(&reg).expect("a rate limit");
    assert_eq!((limit.rps, limit.burst), (5.0, 10));
    let record = prismicx_tenant_mgmt::registry::record_of(&reg).expect("a record");
    assert_eq!(
        record.vector_quota,
        Some(prismicx_tenancy::VectorQuota {
            max_collections: Some(2),
            max_points: Some(1000),
            max_bytes: None,
        })
    );

    // Changed: the entry follows (and the services get an `updated` event to drop caches).
    patch_spec(
        &env,
        &name,
        json!({"rateLimit": {"requestsPerSecond": 50, "burst": 80}}),
    )
    .await;
    provision(&env, &name).await;
    let reg = registry_entry(&name).await.unwrap();
    let limit = prismicx_tenant_mgmt::registry::rate_limit_of(&reg).expect("a rate limit");
    assert_eq!((limit.rps, limit.burst), (50.0, 80));

    // Removed: the platform default applies.
    patch_spec(&env, &name, json!({"rateLimit": null, "limits": null})).await;
    provision(&env, &name).await;
    let reg = registry_entry(&name).await.unwrap();
    assert!(prismicx_tenant_mgmt::registry::rate_limit_of(&reg).is_none());
    let record = prismicx_tenant_mgmt::registry::record_of(&reg).expect("a record");
    assert_eq!(record.vector_quota, None);
}
