//! Attacks on the Tenant reconciler, grouped by adversary, against the real data servers (the
//! Kubernetes API is the in-memory fake: no API server can run here).
//!
//! - A dedicated tenant: it holds `readWrite` on its own MongoDB databases, so it can plant
//!   anything there before it moves back to the shared collections.
//! - Whoever may write `tenants/status` (or restores a Tenant with its status): a forged
//!   `status.tenantId` naming another tenant's id.
//! - Namespace owners: two namespaces claiming one new slug at the same moment; a slug chosen so
//!   that a generated name would be a platform name.
//!
//! Each case performs the attack and asserts what the victim still has.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use kube::api::{Patch, PatchParams, PostParams};
use kube::ResourceExt;
use mongodb::bson::{doc, oid::ObjectId, Document};
use prismicx_operator::tenant;
use prismicx_operator_api::{Tenant, TenantSpec};
use prismicx_store::mongo::tenant_bson;
use prismicx_store::pg::query_scalar;
use serde_json::json;
use support::*;

/// Writes `status.tenantId` as whoever holds `tenants/status` could.
async fn forge_status_id(env: &Env, name: &str, id: uuid::Uuid) {
    env.tenants
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "tenantId": id.to_string() } })),
        )
        .await
        .expect("patch status");
}

/// Reconciles until the Tenant stops changing or three passes ran; returns the last result.
async fn reconcile_settled(env: &Env, name: &str) -> prismicx_operator::Result<()> {
    let mut last = Ok(());
    for _ in 0..3 {
        last = reconcile(env, name).await.map(|_| ());
    }
    last
}

async fn users_in(db: &str, schema: &str) -> Vec<String> {
    let mut c = admin(db).await;
    let sql = format!("SELECT email FROM \"{schema}\".users ORDER BY email");
    query_scalar::<String>(&sql)
        .fetch_all(&mut c)
        .await
        .expect("reading users")
}

// --- A dedicated tenant moving back to standard -------------------------------------------

#[tokio::test]
async fn dedicated_tenant_moving_back_cannot_rewrite_another_tenants_registry_entry() {
    let env = env().await;
    let victim = provisioned(&env, "regv", json!({"services": ["tenant-mgmt"]})).await;
    let dedicated = json!({"tier": "dedicated", "services": ["tenant-mgmt"]});
    let attacker = provisioned(&env, "rega", dedicated).await;
    let before = registry_entry(&victim.name_any())
        .await
        .expect("registered");

    // The attacker copies the victim's registry document, with its own tenant id, into its own
    // database (it holds readWrite there), then asks to move back to the shared collections.
    let m = mongo().await;
    let own = mongo_tenant()
        .await
        .database(&format!("tenant_registry__{}", ident(&attacker.name_any())));
    let mut planted = before.clone();
    planted.insert("tenant_id", tenant_bson(tenant_id(&attacker)));
    planted.insert("namespace", "attackers");
    own.collection::<Document>("tenants")
        .insert_one(planted)
        .await
        .unwrap();
    own.collection::<Document>("api_keys")
        .insert_one(doc! {"_id": "planted", "tenant_id": tenant_bson(tenant_id(&attacker)), "digest": "sha256:00"})
        .await
        .unwrap();
    patch_spec(&env, &attacker.name_any(), json!({"tier": "standard"})).await;
    provision(&env, &attacker.name_any()).await;

    let after = registry_entry(&victim.name_any())
        .await
        .expect("still registered");
    assert_eq!(after, before, "the victim's registry entry is unchanged");
    let keys = m
        .database("tenant_registry")
        .collection::<Document>("api_keys");
    assert_eq!(
        keys.count_documents(doc! {"_id": "planted"}).await.unwrap(),
        0,
        "nothing reached the platform's key collection"
    );
}

#[tokio::test]
async fn dedicated_tenant_moving_back_cannot_overwrite_another_tenants_document() {
    let env = env().await;
    let victim = provisioned(&env, "docv", json!({"services": ["task-repo"]})).await;
    let dedicated = json!({"tier": "dedicated", "services": ["task-repo"]});
    let attacker = provisioned(&env, "doca", dedicated).await;
    let m = mongo().await;
    let shared = m
        .database("task_repository")
        .collection::<Document>("tasks");
    let victim_doc = doc! {
        "_id": ObjectId::new(),
        "tenant_id": tenant_bson(tenant_id(&victim)),
        "title": "quarterly numbers",
        "status": "todo",
    };
    shared.insert_one(victim_doc.clone()).await.unwrap();

    // The attacker plants a document with the victim's `_id` and its own tenant id.
    let own_name = format!("task_repository__{}", ident(&attacker.name_any()));
    let mt = mongo_tenant().await;
    let own = mt.database(&own_name).collection::<Document>("tasks");
    own.insert_one(doc! {
        "_id": victim_doc.get_object_id("_id").unwrap(),
        "tenant_id": tenant_bson(tenant_id(&attacker)),
        "title": "overwritten",
        "status": "done",
    })
    .await
    .unwrap();
    // And a document carrying the victim's tenant id, to be "moved" into the victim's data.
    own.insert_one(doc! {
        "tenant_id": tenant_bson(tenant_id(&victim)),
        "title": "injected",
        "status": "todo",
    })
    .await
    .unwrap();
    patch_spec(&env, &attacker.name_any(), json!({"tier": "standard"})).await;
    let err = reconcile_settled(&env, &attacker.name_any())
        .await
        .expect_err("the move stops");
    assert!(err.to_string().contains("conflicts"), "{err}");

    let t = get(&env, &attacker.name_any()).await;
    let mongo_ready = condition(&t, "MongoReady").expect("MongoReady");
    assert_eq!(mongo_ready.status, "False");
    assert_eq!(mongo_ready.reason, "MoveConflict");
    assert_eq!(
        shared
            .find_one(doc! {"_id": victim_doc.get_object_id("_id").unwrap()})
            .await
            .unwrap(),
        Some(victim_doc),
        "the victim's document is unchanged"
    );
    assert_eq!(
        shared
            .count_documents(doc! {"title": "injected"})
            .await
            .unwrap(),
        0,
        "a document with the victim's tenant id is never moved"
    );
    assert!(
        mt.list_database_names().await.unwrap().contains(&own_name),
        "the dedicated database is kept while the move is stopped"
    );
}

// --- A forged status.tenantId ------------------------------------------------------------

#[tokio::test]
async fn forged_status_tenant_id_of_another_tenant_is_refused_and_nothing_is_touched() {
    let env = env().await;
    let victim = provisioned(&env, "idv", user_data_spec()).await;
    let mut pg = connect_with_secret(&env, &victim, "pooler-uri").await;
    exec(
        &mut pg,
        "INSERT INTO users (email, display_name) VALUES ('v@victim.example', 'V')",
    )
    .await;

    // A Tenant restored with a status naming the victim's id, before its first reconcile.
    let spec: TenantSpec =
        serde_json::from_value(json!({"services": ["user-data"], "deletionPolicy": "Delete"}))
            .unwrap();
    let name = prismicx_harness::unique_name("ida");
    let mut t = Tenant::new(&name, spec);
    t.metadata.namespace = Some(NS.into());
    env.tenants
        .create(&PostParams::default(), &t)
        .await
        .unwrap();
    forge_status_id(&env, &name, tenant_id(&victim)).await;
    let err = reconcile_settled(&env, &name).await.expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    let t = get(&env, &name).await;
    let ready = condition(&t, "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "TenantIdMismatch");
    assert!(
        registry_entry(&name).await.is_none(),
        "the forged tenant is not registered"
    );
    let schema = format!("tenant_{}", ident(&name));
    let mut c = admin("system_users").await;
    let made: bool = query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(&schema)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(!made, "nothing was provisioned for the forged id");

    // Deleting it (policy Delete) deletes nothing of the victim's.
    delete(&env, &name).await.expect("cleanup");
    let victim_schema = format!("tenant_{}", ident(&victim.name_any()));
    assert_eq!(
        users_in("system_users", &victim_schema).await,
        ["v@victim.example"]
    );
    assert_eq!(
        registry_entry(&victim.name_any())
            .await
            .and_then(|d| d.get_str("namespace").ok().map(String::from)),
        Some(NS.to_string())
    );
}

#[tokio::test]
async fn rewriting_status_tenant_id_of_a_ready_tenant_is_refused_and_its_data_kept() {
    let env = env().await;
    let victim = provisioned(&env, "idv2", json!({"services": ["task-repo"]})).await;
    let attacker = provisioned(&env, "ida2", json!({"services": ["task-repo"]})).await;
    let own_id = tenant_id(&attacker);
    forge_status_id(&env, &attacker.name_any(), tenant_id(&victim)).await;
    let err = reconcile_settled(&env, &attacker.name_any())
        .await
        .expect_err("refused");
    assert!(err.is_permanent());
    let t = get(&env, &attacker.name_any()).await;
    assert_eq!(
        condition(&t, "Ready").map(|c| c.reason.as_str()),
        Some("TenantIdMismatch")
    );
    let reg = registry_entry(&attacker.name_any()).await.unwrap();
    assert_eq!(
        reg.get("tenant_id"),
        Some(&tenant_bson(own_id)),
        "the registry keeps the attacker's own id"
    );
    let reg = registry_entry(&victim.name_any()).await.unwrap();
    assert_eq!(reg.get("tenant_id"), Some(&tenant_bson(tenant_id(&victim))));
}

// --- Namespace owners ----------------------------------------------------------------------

#[tokio::test]
async fn two_namespaces_claiming_one_new_slug_at_once_only_one_wins() {
    let env = env().await;
    let name = prismicx_harness::unique_name("race");
    let spec: TenantSpec = serde_json::from_value(user_data_spec()).unwrap();
    let mut apis = Vec::new();
    for ns in ["team-a", "team-b"] {
        let api: kube::Api<Tenant> = kube::Api::namespaced(env.client.clone(), ns);
        let mut t = Tenant::new(&name, spec.clone());
        t.metadata.namespace = Some(ns.into());
        t.metadata.finalizers = Some(vec![tenant::FINALIZER.into()]);
        api.create(&PostParams::default(), &t).await.unwrap();
        apis.push(api);
    }
    let (a, b) = (
        apis[0].get(&name).await.unwrap(),
        apis[1].get(&name).await.unwrap(),
    );
    let (ra, rb) = tokio::join!(
        tenant::reconcile(Arc::new(a), env.ctx.clone()),
        tenant::reconcile(Arc::new(b), env.ctx.clone()),
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one claim wins: {ra:?} / {rb:?}"
    );
    let (winner, loser) = if ra.is_ok() {
        (&apis[0], &apis[1])
    } else {
        (&apis[1], &apis[0])
    };
    let lost = loser.get(&name).await.unwrap();
    assert_eq!(
        condition(&lost, "Ready").map(|c| c.reason.as_str()),
        Some("SlugTaken")
    );
    assert!(lost.status.as_ref().unwrap().tenant_id.is_none());
    let won = winner.get(&name).await.unwrap();
    let reg = registry_entry(&name).await.unwrap();
    assert_eq!(
        reg.get_str("namespace").unwrap(),
        won.namespace().unwrap(),
        "the registry names the winner's namespace"
    );
    assert_eq!(
        reg.get("tenant_id"),
        Some(&tenant_bson(tenant_id(&won))),
        "with the winner's id"
    );
}

#[tokio::test]
async fn a_slug_named_after_a_platform_user_gets_a_user_of_its_own() {
    // `registry-svc` once mapped onto tenant-mgmt's own MongoDB user `tenant_registry_svc`.
    let env = env().await;
    let name = "registry-svc";
    let spec: TenantSpec = serde_json::from_value(
        json!({"tier": "dedicated", "services": ["tenant-mgmt"], "deletionPolicy": "Delete"}),
    )
    .unwrap();
    let mut t = Tenant::new(name, spec);
    t.metadata.namespace = Some(NS.into());
    env.tenants
        .create(&PostParams::default(), &t)
        .await
        .unwrap();
    // A platform user of that name exists, as the DatabaseService reconciler makes it.
    let m = mongo_tenant().await;
    let admin_db = m.database("admin");
    let platform_user = "tenant_registry_svc";
    let _ = admin_db
        .run_command(doc! {"createUser": platform_user, "pwd": "platform-password", "roles": [{"role": "read", "db": "tenant_registry"}]})
        .await;
    let t = provision(&env, name).await;
    let user = secret_value(&env, &t, "mongodb-uri").await;
    assert!(
        !user.contains(&format!("//{platform_user}:")),
        "the tenant's MongoDB login is not the platform's user: {}",
        user.split('@').next_back().unwrap_or_default()
    );
    // The platform user keeps its password and its own roles; as tenant-mgmt's user it is
    // granted the tenant's dedicated registry database, like every service user.
    let as_platform =
        mongodb::Client::with_uri_str(prismicx_harness::servers().mongo_tenant.uri_as(
            platform_user,
            "platform-password",
            "admin",
        ))
        .await
        .unwrap();
    as_platform
        .database("admin")
        .run_command(doc! {"connectionStatus": 1})
        .await
        .expect("the platform user's password still works");
    let own_db = "tenant_registry__registry_svc".to_string();
    let roles = tenant_server_roles(platform_user).await;
    assert_eq!(
        roles,
        [
            ("tenant_registry".to_string(), "read".to_string()),
            (own_db.clone(), "readWrite".to_string())
        ],
        "the platform user's roles are its own plus the tenant's database"
    );
    delete(&env, name).await.expect("cleanup");
    assert_eq!(
        tenant_server_roles(platform_user).await,
        [("tenant_registry".to_string(), "read".to_string())],
        "deleting the tenant leaves the platform user as it was"
    );
    admin_db
        .run_command(doc! {"dropUser": platform_user})
        .await
        .unwrap();
}

// --- A dedicated tenant with its own MongoDB login ------------------------------------------

#[tokio::test]
async fn a_dedicated_tenants_mongodb_login_reaches_only_its_own_databases() {
    let env = env().await;
    let (a, b) = provisioned_pair(
        &env,
        (
            "mla",
            json!({"tier": "dedicated", "services": ["task-repo", "tenant-mgmt"]}),
        ),
        (
            "mlb",
            json!({"tier": "dedicated", "services": ["task-repo"]}),
        ),
    )
    .await;
    let b_db = format!("task_repository__{}", ident(&b.name_any()));
    let planted = doc! {"_id": "b-secret", "tenant_id": tenant_bson(tenant_id(&b)), "title": "b"};
    mongo_tenant()
        .await
        .database(&b_db)
        .collection::<Document>("tasks")
        .insert_one(planted.clone())
        .await
        .unwrap();

    // A's own credentials, as its Secret hands them out.
    let uri = secret_value(&env, &a, "mongodb-uri.task_repository").await;
    let own = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let a_db = format!("task_repository__{}", ident(&a.name_any()));
    own.database(&a_db)
        .collection::<Document>("tasks")
        .insert_one(doc! {"tenant_id": tenant_bson(tenant_id(&a)), "title": "mine"})
        .await
        .expect("A writes its own database");
    let refused = |what: &str, r: Result<(), mongodb::error::Error>| {
        assert!(r.is_err(), "A's login was allowed to {what}");
    };
    let b_tasks = own.database(&b_db).collection::<Document>("tasks");
    refused("read B's tasks", b_tasks.find_one(doc! {}).await.map(drop));
    refused(
        "write into B's database",
        b_tasks.insert_one(doc! {"title": "x"}).await.map(drop),
    );
    refused(
        "drop B's collection",
        own.database(&b_db)
            .collection::<Document>("tasks")
            .drop()
            .await,
    );
    refused(
        "list the databases",
        own.list_database_names().await.map(drop),
    );
    refused(
        "create a user",
        own.database("admin")
            .run_command(
                doc! {"createUser": "mine", "pwd": "x", "roles": [{"role": "root", "db": "admin"}]},
            )
            .await
            .map(drop),
    );
    refused(
        "grant itself a role",
        own.database("admin")
            .run_command(doc! {"grantRolesToUser": secret_value(&env, &a, "username").await, "roles": [{"role": "readWrite", "db": &b_db}]})
            .await
            .map(drop),
    );
    // The same login on mongodb-system (the registry, the shared collections): no such user.
    let system_uri = uri.replace(
        &prismicx_harness::servers().mongo_tenant.address(),
        &prismicx_harness::servers().mongo_system.address(),
    );
    let on_system = mongodb::Client::with_uri_str(&system_uri).await.unwrap();
    refused(
        "read the tenant registry",
        on_system
            .database("tenant_registry")
            .collection::<Document>("tenants")
            .find_one(doc! {})
            .await
            .map(drop),
    );
    assert_eq!(
        mongo_tenant()
            .await
            .database(&b_db)
            .collection::<Document>("tasks")
            .find_one(doc! {"_id": "b-secret"})
            .await
            .unwrap(),
        Some(planted),
        "B's document is unchanged"
    );
}

// --- A compromised service ------------------------------------------------------------------

/// The roles of `user` (in `admin`) on mongodb-tenant.
async fn tenant_server_roles(user: &str) -> Vec<(String, String)> {
    let info = mongo_tenant()
        .await
        .database("admin")
        .run_command(doc! {"usersInfo": {"user": user, "db": "admin"}})
        .await
        .unwrap();
    info.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("roles")
        .unwrap()
        .iter()
        .filter_map(|r| r.as_document())
        .map(|r| {
            (
                r.get_str("db").unwrap().to_string(),
                r.get_str("role").unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_services_mongodb_user_reaches_only_its_own_services_dedicated_tenants() {
    use prismicx_operator::database_service::dependencies;
    use prismicx_operator_api::ServiceKind;
    let env = env().await;
    let pw = prismicx_store::Secret::new("service-password-1".to_string());
    for kind in [ServiceKind::TaskRepo, ServiceKind::CategoryRepository] {
        dependencies::ensure(&env.ctx, kind, Some(&pw))
            .await
            .expect("service users");
    }
    let t = provisioned(
        &env,
        "svcd",
        json!({"tier": "dedicated", "services": ["task-repo", "category-repository"]}),
    )
    .await;
    let tasks_db = format!("task_repository__{}", ident(&t.name_any()));
    let categories_db = format!("category_repository__{}", ident(&t.name_any()));
    let roles = tenant_server_roles("task_repository_svc").await;
    assert!(
        roles.contains(&(tasks_db.clone(), "readWrite".into())),
        "{roles:?}"
    );
    assert!(
        roles
            .iter()
            .all(|(db, _)| db.starts_with("task_repository__")),
        "task-repo's user holds nothing but its tenants' databases: {roles:?}"
    );

    // As the service: its own tenant database works, another service's is refused.
    let s = prismicx_harness::servers();
    let svc = mongodb::Client::with_uri_str(s.mongo_tenant.uri_as(
        "task_repository_svc",
        pw.expose(),
        "admin",
    ))
    .await
    .unwrap();
    svc.database(&tasks_db)
        .collection::<Document>("tasks")
        .insert_one(doc! {"tenant_id": tenant_bson(tenant_id(&t)), "title": "t"})
        .await
        .expect("task-repo reaches its dedicated tenant");
    assert!(svc
        .database(&categories_db)
        .collection::<Document>("categories")
        .find_one(doc! {})
        .await
        .is_err());
    assert!(svc.list_database_names().await.is_err());

    // Back to standard: the grant goes with the database.
    patch_spec(&env, &t.name_any(), json!({"tier": "standard"})).await;
    provision(&env, &t.name_any()).await;
    let roles = tenant_server_roles("task_repository_svc").await;
    assert!(!roles.iter().any(|(db, _)| *db == tasks_db), "{roles:?}");

    // Dedicated again, then a grant revoked out of band is drift, and repaired.
    patch_spec(&env, &t.name_any(), json!({"tier": "dedicated"})).await;
    provision(&env, &t.name_any()).await;
    mongo_tenant()
        .await
        .database("admin")
        .run_command(doc! {"revokeRolesFromUser": "task_repository_svc", "roles": [{"role": "readWrite", "db": &tasks_db}]})
        .await
        .unwrap();
    reconcile(&env, &t.name_any()).await.expect("repair");
    let t = get(&env, &t.name_any()).await;
    let drifted = condition(&t, "Drifted").unwrap();
    assert_eq!(drifted.reason, "Repaired", "{}", drifted.message);
    assert!(drifted.message.contains("task_repository_svc"));
    assert!(tenant_server_roles("task_repository_svc")
        .await
        .contains(&(tasks_db, "readWrite".into())));

    // Deleted (Retain): the service loses the database too.
    delete(&env, &t.name_any()).await.expect("cleanup");
    assert!(!tenant_server_roles("task_repository_svc")
        .await
        .iter()
        .any(|(db, _)| db.ends_with(&ident(&t.name_any()))));
}

// --- Isolation broken out of band ---------------------------------------------------------

/// Someone with database access grants tenant A's login another tenant's schema: A's next
/// reconcile finds the leak (a Warning Event, the message naming the schema), takes the grant
/// back and verifies again.
#[tokio::test]
async fn a_grant_on_another_tenants_schema_is_found_by_the_probe_and_taken_back() {
    let env = env().await;
    let (a, b) = provisioned_pair(&env, ("isa", user_data_spec()), ("isb", user_data_spec())).await;
    let a_login = secret_value(&env, &a, "username").await;
    let b_schema = format!("tenant_{}", ident(&b.name_any()));
    let mut c = admin("system_users").await;
    exec(&mut c, &format!(
        "GRANT USAGE ON SCHEMA \"{b_schema}\" TO \"{a_login}\"; GRANT SELECT ON ALL TABLES IN SCHEMA \"{b_schema}\" TO \"{a_login}\""
    )).await;

    reconcile(&env, &a.name_any()).await.expect("repaired");
    let a = get(&env, &a.name_any()).await;
    let iso = condition(&a, "IsolationVerified").unwrap();
    assert_eq!(iso.status, "True");
    assert_eq!(iso.reason, "Repaired", "{}", iso.message);
    assert!(iso.message.contains(&b_schema), "{}", iso.message);
    let still = schema_usage(&mut c, &a_login, &b_schema).await;
    assert!(!still, "the grant was taken back");
    let mut as_a = connect_with_secret(&env, &a, "pooler-uri").await;
    assert!(
        sqlx::raw_sql(&format!("SELECT * FROM \"{b_schema}\".users"))
            .execute(&mut as_a)
            .await
            .is_err()
    );

    // The next reconcile finds nothing to repair.
    reconcile(&env, &a.name_any()).await.expect("clean");
    let a = get(&env, &a.name_any()).await;
    assert_eq!(
        condition(&a, "IsolationVerified").map(|c| c.reason.as_str()),
        Some("Verified")
    );
}

/// A dedicated tenant's MongoDB user granted another tenant's database out of band: the next
/// reconcile reports the drift and puts the user's roles back to its own databases.
#[tokio::test]
async fn a_mongodb_role_on_another_tenants_database_is_found_and_taken_back() {
    let env = env().await;
    let (a, b) = provisioned_pair(
        &env,
        (
            "mra",
            json!({"tier": "dedicated", "services": ["task-repo"]}),
        ),
        (
            "mrb",
            json!({"tier": "dedicated", "services": ["task-repo"]}),
        ),
    )
    .await;
    let a_user = secret_value(&env, &a, "username").await;
    let b_db = format!("task_repository__{}", ident(&b.name_any()));
    mongo_tenant()
        .await
        .database("admin")
        .run_command(
            doc! {"grantRolesToUser": &a_user, "roles": [{"role": "readWrite", "db": &b_db}]},
        )
        .await
        .unwrap();
    reconcile(&env, &a.name_any()).await.expect("repaired");
    let a = get(&env, &a.name_any()).await;
    let drifted = condition(&a, "Drifted").unwrap();
    assert_eq!(drifted.reason, "Repaired", "{}", drifted.message);
    assert!(
        drifted.message.contains("other roles than planned"),
        "{}",
        drifted.message
    );
    assert_eq!(
        condition(&a, "IsolationVerified").map(|c| c.status.as_str()),
        Some("True")
    );
    let roles = tenant_server_roles(&a_user).await;
    assert!(!roles.iter().any(|(db, _)| *db == b_db), "{roles:?}");
}

/// Another tenant's schema opened to every role (a grant to PUBLIC): the neighbour's probe sees
/// it and reports `IsolationVerified=False` with the schema (its own login holds no grant to
/// take back), and the owning tenant's reconcile repairs it as drift; the neighbour then
/// verifies again.
#[tokio::test]
async fn a_schema_opened_to_public_fails_the_neighbours_probe_until_its_owner_repairs_it() {
    let env = env().await;
    let (a, b) = provisioned_pair(&env, ("pua", user_data_spec()), ("pub", user_data_spec())).await;
    let b_schema = format!("tenant_{}", ident(&b.name_any()));
    let mut c = admin("system_users").await;
    exec(&mut c, &format!(
        "GRANT USAGE ON SCHEMA \"{b_schema}\" TO PUBLIC; GRANT SELECT ON ALL TABLES IN SCHEMA \"{b_schema}\" TO PUBLIC"
    )).await;

    let err = reconcile(&env, &a.name_any())
        .await
        .expect_err("the probe fails");
    assert!(err.to_string().contains(&b_schema), "{err}");
    let a_now = get(&env, &a.name_any()).await;
    let iso = condition(&a_now, "IsolationVerified").unwrap();
    assert_eq!(iso.status, "False");
    assert_eq!(iso.reason, "IsolationFailed");
    assert!(iso.message.contains(&b_schema), "{}", iso.message);

    // B's reconcile finds the grant as drift and takes it back.
    reconcile(&env, &b.name_any()).await.expect("repaired");
    let b_now = get(&env, &b.name_any()).await;
    let drifted = condition(&b_now, "Drifted").unwrap();
    assert_eq!(drifted.reason, "Repaired", "{}", drifted.message);
    assert!(drifted.message.contains("PUBLIC"), "{}", drifted.message);

    reconcile(&env, &a.name_any())
        .await
        .expect("verified again");
    let a_now = get(&env, &a.name_any()).await;
    assert_eq!(
        condition(&a_now, "IsolationVerified").map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("True", "Verified"))
    );
}
