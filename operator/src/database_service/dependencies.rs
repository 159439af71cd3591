//! What a service needs in its databases before its first rollout, made idempotently on every
//! reconcile (so a dropped role or user is put back, and a password changed in the Secret is
//! carried to the servers):
//!
//! - PostgreSQL services: the service database with its system schema and migrations (from the
//!   catalog, [`crate::tenant::postgres::ensure_database`]) and the login role `<db>_svc`
//!   (LOGIN, NOBYPASSRLS, member of `<db>_app`, owning nothing;
//!   `migrate::ensure_login_role`). The role connects through PgBouncer, which looks its
//!   password up with `auth_query`.
//! - MongoDB services: the user `<db>_svc` on mongodb-system, defined in the service database
//!   itself (`authSource=<db>`), with `readWrite` on it and `read` on `tenant_registry`; and the
//!   user `<db>_svc` on mongodb-tenant, defined in `admin`, with `readWrite` on each dedicated
//!   tenant database of that service (`<db>__<slug>`) that exists, and nothing else. The Tenant
//!   reconciler grants a new dedicated tenant's database to the service user and revokes it when
//!   the tenant leaves the tier or is deleted ([`crate::tenant::mongo`]), so a service reaches
//!   only its own service's tenant databases: a compromised task-repo cannot read
//!   category-repository's dedicated tenants, nor any database that is not a tenant's.
//!
//! With `spec.databaseSecret` the credentials are the user's: only the PostgreSQL database and
//! its system schema are ensured; no role or user is created or changed.

use anyhow::{Context as _, Result};
use mongodb::bson::{doc, Document};
use prismicx_operator_api::ServiceKind;
use prismicx_store::pg::migrate;
use prismicx_store::Secret as Hidden;

use super::build::service_user;
use crate::context::Context;
use crate::error::{Error, Step, StepContext};

/// Ensures the service's databases, and with `password` its logins; returns what was ensured.
pub async fn ensure(
    ctx: &Context,
    kind: ServiceKind,
    password: Option<&Hidden<String>>,
) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    if let Some(db) = kind.postgres_database() {
        let layout = ctx.catalog.service(kind).postgres.ok_or_else(|| {
            Error::Config(format!("the catalog has no PostgreSQL layout for {db}"))
        })?;
        async {
            ctx.check_fault(Step::Postgres)?;
            crate::tenant::postgres::ensure_database(&ctx.data, layout.database, &layout).await?;
            if let Some(pw) = password {
                let login = service_user(layout.database);
                let mut conn = ctx.data.pg(layout.database).await?;
                migrate::ensure_login_role(&mut conn, &login, pw)
                    .await
                    .with_context(|| format!("login role {login}"))?;
            }
            anyhow::Ok(())
        }
        .await
        .step(Step::Postgres)?;
        done.push(match password {
            Some(_) => format!(
                "PostgreSQL {} with login {}",
                layout.database,
                service_user(layout.database)
            ),
            None => format!("PostgreSQL {}", layout.database),
        });
    }
    if let (Some(db), Some(pw)) = (kind.mongo_database(), password) {
        async {
            ctx.check_fault(Step::Mongo)?;
            let user = service_user(db);
            let mut system_roles = vec![doc! { "role": "readWrite", "db": db }];
            if db != TENANT_REGISTRY {
                system_roles.push(doc! { "role": "read", "db": TENANT_REGISTRY });
            }
            ensure_user(&ctx.data.mongo_system, db, &user, pw, system_roles)
                .await
                .context("mongodb-system")?;
            ensure_user(
                &ctx.data.mongo_tenant,
                "admin",
                &user,
                pw,
                tenant_server_roles(&ctx.data.mongo_tenant, db).await?,
            )
            .await
            .context("mongodb-tenant")?;
            anyhow::Ok(())
        }
        .await
        .step(Step::Mongo)?;
        done.push(format!("MongoDB user {}", service_user(db)));
    }
    Ok(done)
}

/// The roles of service database `db`'s user on mongodb-tenant: `readWrite` on every dedicated
/// tenant database of that service that exists now (the Tenant reconciler grants later ones).
async fn tenant_server_roles(client: &mongodb::Client, db: &str) -> Result<Vec<Document>> {
    let prefix = format!("{db}__");
    let names = client
        .list_database_names()
        .await
        .context("listing databases on mongodb-tenant")?;
    Ok(names
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| doc! { "role": "readWrite", "db": n })
        .collect())
}

/// The tenant registry's database, which every MongoDB service may read.
const TENANT_REGISTRY: &str = "tenant_registry";

/// Creates `user` in `auth_db` with `roles` and `password`, or updates it to them.
async fn ensure_user(
    client: &mongodb::Client,
    auth_db: &str,
    user: &str,
    password: &Hidden<String>,
    roles: Vec<Document>,
) -> Result<()> {
    let db = client.database(auth_db);
    let exists = user_exists(&db, user).await?;
    let update = doc! { "updateUser": user, "pwd": password.expose(), "roles": roles.clone() };
    if exists {
        return db
            .run_command(update)
            .await
            .map(drop)
            .map_err(|e| anyhow::anyhow!("updating user {user}: {}", redact(&e)));
    }
    let create = doc! { "createUser": user, "pwd": password.expose(), "roles": roles };
    match db.run_command(create).await {
        Ok(_) => Ok(()),
        // Created meanwhile (51003 UserAlreadyExists, or a duplicate key): update it instead.
        Err(e) if command_code(&e).is_some_and(|c| c == 51003 || c == 11000) => db
            .run_command(update)
            .await
            .map(drop)
            .map_err(|e| anyhow::anyhow!("updating user {user}: {}", redact(&e))),
        Err(e) => Err(anyhow::anyhow!("creating user {user}: {}", redact(&e))),
    }
}

async fn user_exists(db: &mongodb::Database, user: &str) -> Result<bool> {
    let reply = db
        .run_command(doc! { "usersInfo": { "user": user, "db": db.name() } })
        .await
        .with_context(|| format!("usersInfo {user} in {}", db.name()))?;
    Ok(reply.get_array("users").is_ok_and(|a| !a.is_empty()))
}

fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// A driver error's text without the command it carried (which holds a password).
fn redact(e: &mongodb::error::Error) -> String {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => format!("{} (code {})", c.code_name, c.code),
        _ => "the server refused the command".into(),
    }
}
