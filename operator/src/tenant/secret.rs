//! The tenant's credentials Secret: built by a pure function from the plan, the addresses
//! tenants use and the tenant's password; applied with server-side apply and owned by the Tenant.
//!
//! Stable keys: `host`, `port`, `dbname`, `username`, `password`, `uri`, `pooler-uri`,
//! `mongodb-uri`. They describe the tenant's first PostgreSQL service database
//! (`system_users` when it uses user-data); `pooler-uri.<db>` and `uri.<db>` name every
//! PostgreSQL database, `mongodb-uri.<db>` every dedicated MongoDB database. A standard
//! tenant's `mongodb-uri` is empty: shared collections have no per-tenant access control in
//! MongoDB, so standard tenants reach their documents only through the services.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::ObjectMeta;
use kube::Api;
use prismicx_store::Secret as Hidden;
use rand::distributions::Alphanumeric;
use rand::Rng;

use super::plan::TenantPlan;
use crate::dataplane::Endpoints;
use crate::error::Result;

/// A fresh tenant password: 32 random alphanumeric characters (no escaping needed in URIs).
pub fn new_password() -> Hidden<String> {
    Hidden::new(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect(),
    )
}

/// The Secret for `plan`.
pub fn build(
    plan: &TenantPlan,
    endpoints: &Endpoints,
    password: &Hidden<String>,
    namespace: &str,
    owner: Option<OwnerReference>,
) -> Secret {
    let user = plan.login_role();
    let pw = password.expose();
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let first = plan.postgres.first();
    let direct = |db: &str| {
        format!(
            "postgres://{user}:{pw}@{}:{}/{db}",
            endpoints.postgres_host, endpoints.postgres_port
        )
    };
    let pooled = |db: &str| {
        format!(
            "postgres://{user}:{pw}@{}:{}/{db}",
            endpoints.pooler_host, endpoints.pooler_port
        )
    };
    data.insert("host".into(), endpoints.postgres_host.clone());
    data.insert("port".into(), endpoints.postgres_port.to_string());
    data.insert("username".into(), user.clone());
    data.insert("password".into(), pw.clone());
    data.insert(
        "dbname".into(),
        first.map(|p| p.database.to_string()).unwrap_or_default(),
    );
    data.insert(
        "uri".into(),
        first.map(|p| direct(p.database)).unwrap_or_default(),
    );
    data.insert(
        "pooler-uri".into(),
        first
            .map(|p| {
                pooled(
                    p.pool
                        .as_ref()
                        .map(|x| x.alias.as_str())
                        .unwrap_or(p.database),
                )
            })
            .unwrap_or_default(),
    );
    for p in &plan.postgres {
        data.insert(format!("uri.{}", p.database), direct(p.database));
        data.insert(
            format!("pooler-uri.{}", p.database),
            pooled(
                p.pool
                    .as_ref()
                    .map(|x| x.alias.as_str())
                    .unwrap_or(p.database),
            ),
        );
    }
    let mongo_uri = |db: &str| {
        format!(
            "mongodb://{}:{pw}@{}/{db}?authSource=admin",
            plan.mongo_user, endpoints.mongo_tenant_address
        )
    };
    let mut mongodb_uri = String::new();
    if plan.dedicated() {
        for (i, m) in plan.mongo.iter().enumerate() {
            let uri = mongo_uri(&m.dedicated_database);
            if i == 0 {
                mongodb_uri = uri.clone();
            }
            data.insert(format!("mongodb-uri.{}", m.layout.database), uri);
        }
    }
    data.insert("mongodb-uri".into(), mongodb_uri);
    Secret {
        metadata: ObjectMeta {
            name: Some(plan.secret_name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "prismicx-operator".to_string(),
                ),
                (
                    "prismicx.io/tenant".to_string(),
                    plan.slug.as_str().to_string(),
                ),
            ])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The password in the tenant's existing Secret, if there is one.
pub async fn existing_password(api: &Api<Secret>, name: &str) -> Result<Option<Hidden<String>>> {
    let found = api.get_opt(name).await?;
    Ok(found
        .and_then(|s| s.data)
        .and_then(|d| d.get("password").cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|p| !p.is_empty())
        .map(Hidden::new))
}

/// Applies the Secret (server-side apply; the operator owns every key).
pub async fn apply(api: &Api<Secret>, secret: &Secret) -> Result<()> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(secret).map_err(|e| crate::Error::Config(e.to_string()))?;
    body["apiVersion"] = "v1".into();
    body["kind"] = "Secret".into();
    api.patch(
        &name,
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Deletes the Secret (gone already: fine).
pub async fn delete(api: &Api<Secret>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use prismicx_operator_api::Tenant;
    use uuid::Uuid;

    fn endpoints() -> Endpoints {
        Endpoints {
            postgres_host: "pg".into(),
            postgres_port: 5432,
            pooler_host: "pgb".into(),
            pooler_port: 6432,
            pool_server_host: "pg".into(),
            pool_server_port: 5432,
            mongo_tenant_address: "mt:27017".into(),
            mongo_system_address: "ms:27018".into(),
        }
    }

    fn plan(spec: serde_json::Value) -> TenantPlan {
        let t = Tenant::new("acme", serde_json::from_value(spec).unwrap());
        super::super::plan::plan(&t, Uuid::from_u128(1), &Catalog::platform(), 10).unwrap()
    }

    fn get(s: &Secret, k: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap()
    }

    #[test]
    fn stable_keys_for_a_standard_tenant() {
        let pw = Hidden::new("pw".to_string());
        let s = build(&plan(serde_json::json!({})), &endpoints(), &pw, "ns", None);
        for k in [
            "host",
            "port",
            "dbname",
            "username",
            "password",
            "uri",
            "pooler-uri",
            "mongodb-uri",
        ] {
            assert!(s.data.as_ref().unwrap().contains_key(k), "{k}");
        }
        assert_eq!(get(&s, "username"), "tenant_acme_login");
        assert_eq!(get(&s, "dbname"), "system_users");
        assert_eq!(
            get(&s, "uri"),
            "postgres://tenant_acme_login:pw@pg:5432/system_users"
        );
        assert_eq!(
            get(&s, "pooler-uri"),
            "postgres://tenant_acme_login:pw@pgb:6432/system_users"
        );
        assert_eq!(
            get(&s, "pooler-uri.management_system_repository"),
            "postgres://tenant_acme_login:pw@pgb:6432/management_system_repository"
        );
        assert_eq!(get(&s, "mongodb-uri"), "");
        assert_eq!(s.metadata.name.as_deref(), Some("acme-db-credentials"));
    }

    #[test]
    fn a_dedicated_tenant_connects_through_its_own_pool_and_database() {
        let pw = Hidden::new("pw".to_string());
        let s = build(
            &plan(serde_json::json!({"tier": "dedicated", "services": ["user-data", "task-repo"]})),
            &endpoints(),
            &pw,
            "ns",
            None,
        );
        assert_eq!(
            get(&s, "pooler-uri"),
            "postgres://tenant_acme_login:pw@pgb:6432/system_users__acme"
        );
        assert_eq!(
            get(&s, "mongodb-uri"),
            "mongodb://tenant_acme_login:pw@mt:27017/task_repository__acme?authSource=admin"
        );
    }

    #[test]
    fn passwords_are_long_and_random() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.expose().len(), 32);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "[redacted]");
    }
}
