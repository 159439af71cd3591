//! Catalog lint: checks a service database against the tenancy contract, from the catalogs.
//!
//! For every table in the system schema and in every `tenant_*` schema (except
//! `schema_migrations`): row-level security enabled and forced; a policy for all commands whose
//! USING and WITH CHECK both test `app.tenant_id` and which applies to the given roles; no
//! permissive policy that ignores `app.tenant_id` (permissive policies are OR-ed); a `tenant_id uuid NOT NULL` column; an index
//! leading with `tenant_id`. For the given roles (the service's login and app roles): no
//! superuser, no BYPASSRLS, and no ownership of (or membership in a role owning) any of those
//! tables. Owners of tenant schemas must not be able to log in, and every tenant-schema table
//! carries the CHECK that pins `tenant_id` to the schema's tenant
//! ([`super::migrate::TENANT_ID_CHECK`]) through [`super::migrate::PIN_FUNCTION`], which keeps
//! the id out of the world-readable constraint definition.
//!
//! The operator uses it to verify isolation; the tests use it to prove a broken catalog is seen.

use anyhow::Result;
use sqlx::{FromRow, PgConnection};

use super::{query_as, SYSTEM_SCHEMA};

/// One breach of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `schema.table` or the role's name.
    pub object: String,
    pub problem: String,
}

#[derive(FromRow)]
struct TableFacts {
    schema: String,
    table: String,
    rls: bool,
    forced: bool,
    owner: String,
    owner_can_login: bool,
    tenant_id_type: Option<String>,
    tenant_id_not_null: Option<bool>,
    pinned: bool,
    pinned_privately: bool,
    tenant_index: bool,
    tenant_policy: bool,
    open_policies: Vec<String>,
}

const TABLES_SQL: &str = r#"
SELECT n.nspname::text AS schema,
       c.relname::text AS table,
       c.relrowsecurity AS rls,
       c.relforcerowsecurity AS forced,
       o.rolname::text AS owner,
       o.rolcanlogin AS owner_can_login,
       format_type(a.atttypid, a.atttypmod) AS tenant_id_type,
       a.attnotnull AS tenant_id_not_null,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.conname = 'tenant_id_is_this_tenant') AS pinned,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.conname = 'tenant_id_is_this_tenant'
                 AND EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
                               AND d.refclassid = 'pg_proc'::regclass
                               AND d.refobjid = to_regprocedure('prismicx_tenancy.row_is_schema_tenant(oid, uuid)'))
              ) AS pinned_privately,
       EXISTS (SELECT 1 FROM pg_index i
               WHERE i.indrelid = c.oid AND a.attnum IS NOT NULL AND i.indkey[0] = a.attnum) AS tenant_index,
       EXISTS (SELECT 1 FROM pg_policy p
               WHERE p.polrelid = c.oid AND p.polcmd = '*' AND p.polpermissive
                 AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app.tenant_id%'
                 AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid), pg_get_expr(p.polqual, p.polrelid)) LIKE '%app.tenant_id%'
                 AND pg_get_expr(p.polqual, p.polrelid) LIKE '%tenant_id%=%'
                 -- it must apply to every role the services query as (directly, to PUBLIC, or
                 -- to a role they are members of)
                 AND NOT EXISTS (
                   SELECT 1 FROM pg_roles q
                   WHERE q.rolname = ANY($2)
                     AND NOT (0 = ANY(p.polroles)
                              OR EXISTS (SELECT 1 FROM unnest(p.polroles) r
                                         WHERE r <> 0 AND pg_has_role(q.oid, r, 'USAGE'))))
              ) AS tenant_policy,
       ARRAY(SELECT p.polname::text FROM pg_policy p
             WHERE p.polrelid = c.oid AND p.polpermissive
               AND ((p.polqual IS NOT NULL AND pg_get_expr(p.polqual, p.polrelid) NOT LIKE '%app.tenant_id%')
                    OR (p.polwithcheck IS NOT NULL AND pg_get_expr(p.polwithcheck, p.polrelid) NOT LIKE '%app.tenant_id%'))
             ORDER BY 1) AS open_policies
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles o ON o.oid = c.relowner
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p')
  AND (n.nspname = $1 OR n.nspname LIKE $3)
  AND c.relname <> 'schema_migrations'
ORDER BY 1, 2
"#;

#[derive(FromRow)]
struct RoleFacts {
    role: String,
    exists: bool,
    superuser: bool,
    bypassrls: bool,
    owns: Vec<String>,
}

const ROLES_SQL: &str = r#"
SELECT r.name AS role,
       (pr.oid IS NOT NULL) AS exists,
       coalesce(pr.rolsuper, false) AS superuser,
       coalesce(pr.rolbypassrls, false) AS bypassrls,
       coalesce(ARRAY(
         SELECT n.nspname || '.' || c.relname
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm')
           AND (n.nspname = $1 OR n.nspname LIKE $3)
           AND pr.oid IS NOT NULL
           AND pg_has_role(pr.oid, c.relowner, 'MEMBER')
         ORDER BY 1), '{}') AS owns
FROM unnest($2::text[]) AS r(name)
LEFT JOIN pg_roles pr ON pr.rolname = r.name
"#;

/// Lints the connected database: the system schema and every tenant schema. `roles` are the
/// roles services query as (login and app roles).
pub async fn lint_database(conn: &mut PgConnection, roles: &[String]) -> Result<Vec<Violation>> {
    lint(conn, roles, "tenant\\_%").await
}

/// Lints the system schema and one tenant schema only (the operator's per-tenant check, whose
/// cost does not grow with the number of tenants in the database).
pub async fn lint_tenant_schema(
    conn: &mut PgConnection,
    roles: &[String],
    schema: &str,
) -> Result<Vec<Violation>> {
    let pattern = schema
        .replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%");
    lint(conn, roles, &pattern).await
}

async fn lint(conn: &mut PgConnection, roles: &[String], schemas: &str) -> Result<Vec<Violation>> {
    let mut out = Vec::new();
    let tables: Vec<TableFacts> = query_as(TABLES_SQL)
        .bind(SYSTEM_SCHEMA)
        .bind(roles)
        .bind(schemas)
        .fetch_all(&mut *conn)
        .await?;
    for t in tables {
        let object = format!("{}.{}", t.schema, t.table);
        let mut v = |problem: &str| {
            out.push(Violation {
                object: object.clone(),
                problem: problem.to_string(),
            })
        };
        if !t.rls {
            v("row-level security is not enabled");
        }
        if !t.forced {
            v("row-level security is not forced (the owner would bypass it)");
        }
        if !t.tenant_policy {
            v("no policy for all commands tests tenant_id against app.tenant_id");
        }
        if !t.open_policies.is_empty() {
            // Permissive policies are OR-ed: one that ignores the tenant opens the table.
            v(&format!(
                "permissive policy {} does not test app.tenant_id",
                t.open_policies.join(", ")
            ));
        }
        match (t.tenant_id_type.as_deref(), t.tenant_id_not_null) {
            (None, _) => v("has no tenant_id column"),
            (Some(ty), _) if ty != "uuid" => v("tenant_id is not a uuid"),
            (_, Some(false)) => v("tenant_id is nullable"),
            _ => {}
        }
        if !t.tenant_index {
            v("no index leads with tenant_id");
        }
        if t.schema != SYSTEM_SCHEMA && !t.pinned {
            v("has no CHECK pinning tenant_id to the schema's tenant");
        } else if t.schema != SYSTEM_SCHEMA && !t.pinned_privately {
            // Every role reads pg_constraint: a CHECK spelling out the id publishes it.
            v("the CHECK pinning tenant_id does not call prismicx_tenancy.row_is_schema_tenant (it may print the tenant id)");
        }
        if t.schema != SYSTEM_SCHEMA && t.owner_can_login {
            v("is owned by a role that can log in");
        }
        let _ = t.owner;
    }
    let facts: Vec<RoleFacts> = query_as(ROLES_SQL)
        .bind(SYSTEM_SCHEMA)
        .bind(roles)
        .bind(schemas)
        .fetch_all(&mut *conn)
        .await?;
    for r in facts {
        let mut v = |problem: String| {
            out.push(Violation {
                object: r.role.clone(),
                problem,
            })
        };
        if !r.exists {
            v("role does not exist".into());
            continue;
        }
        if r.superuser {
            v("is a superuser".into());
        }
        if r.bypassrls {
            v("has BYPASSRLS".into());
        }
        if !r.owns.is_empty() {
            v(format!(
                "owns (or is a member of the owner of) {}",
                r.owns.join(", ")
            ));
        }
    }
    Ok(out)
}
