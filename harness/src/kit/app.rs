//! [`ServiceApp`]: a service's application under test with its tenants, its state and (for a
//! PostgreSQL service) its database, called as tenant `i` by index.

use axum::http::{Method, StatusCode};
use axum::Router;
use serde_json::Value;

use prismicx_service_common::mongo::{MongoLayout, MongoStore};
use prismicx_service_common::pg::migrate::ServiceSchema;
use prismicx_service_common::tenancy::Tenancy;

use super::{mongo_store, tenancy_of, ApiClient, Call, PgService, Reply, TestTenant, PLATFORM_KEY};

/// A service's application driven in process, the tenants it serves and the state it was built
/// from (`S`, the service's own `AppState`: the kit does not know the services' crates).
#[derive(Debug)]
pub struct ServiceApp<S> {
    pub api: ApiClient,
    pub tenants: Vec<TestTenant>,
    pub state: S,
    /// The service's PostgreSQL database, when it has one.
    pub pg: Option<PgService>,
}

impl<S> ServiceApp<S> {
    /// `router` built from `state`, serving `tenants`.
    pub fn new(router: Router, tenants: Vec<TestTenant>, state: S) -> Self {
        ServiceApp {
            api: ApiClient::new(router),
            tenants,
            state,
            pg: None,
        }
    }

    /// A MongoDB service: `tenants` with `layout` provisioned for them ([`mongo_store`]) and
    /// authenticated by [`tenancy_of`]; `build` makes the service's router and state of those.
    pub async fn on_mongo(
        layout: MongoLayout,
        tenants: Vec<TestTenant>,
        build: impl FnOnce(MongoStore, Tenancy) -> (Router, S),
    ) -> Self {
        let store = mongo_store(layout, &tenants).await;
        let (router, state) = build(store, tenancy_of(&tenants));
        ServiceApp::new(router, tenants, state)
    }

    /// The same, with the PostgreSQL database the state runs on.
    pub fn with_pg(mut self, pg: PgService) -> Self {
        self.pg = Some(pg);
        self
    }

    pub fn tenant(&self, i: usize) -> &TestTenant {
        &self.tenants[i]
    }

    /// The PostgreSQL database; fails the test when the service has none.
    pub fn pg(&self) -> &PgService {
        self.pg
            .as_ref()
            .expect("this service has no PostgreSQL database")
    }

    /// A superuser connection to the service's database (to check what really is stored).
    pub async fn admin(&self) -> sqlx::PgConnection {
        self.pg().admin().await
    }

    /// `template` with `{login}` the service's login role and, for each tenant N, `{schemaN}`
    /// its quoted schema and `{identN}` its schema's plain name (`tenant_<slug>`).
    pub fn fill(&self, template: &str) -> String {
        let mut out = template.to_string();
        if let Some(pg) = &self.pg {
            out = out.replace("{login}", &pg.login);
        }
        for (n, t) in self.tenants.iter().enumerate() {
            out = out
                .replace(&format!("{{schema{n}}}"), &t.quoted_schema())
                .replace(&format!("{{ident{n}}}"), &t.pg_schema());
        }
        out
    }

    /// The catalog keeps the tenancy contract, the lint inspecting the `tables` tables of
    /// `pg_tables` matching `filter` ([`PgService::expect_contract_kept`]), and still does after
    /// the first tenant is provisioned again with `schema`, which changes nothing
    /// ([`PgService::expect_reprovision_idempotent`]).
    pub async fn expect_catalog_contract(&self, schema: &ServiceSchema, filter: &str, tables: i64) {
        let pg = self.pg();
        pg.expect_contract_kept(filter, tables).await;
        pg.expect_reprovision_idempotent(schema, &self.tenant(0).placement)
            .await;
    }

    /// Runs `sql` ([`ServiceApp::fill`]ed) as the superuser, then expects the catalog lint to
    /// report `object` with a problem containing `needle`.
    pub async fn expect_lint_catches(&self, sql: &str, object: &str, needle: &str) {
        use sqlx::Executor;
        let (sql, object) = (self.fill(sql), self.fill(object));
        self.admin().await.execute(sql.as_str()).await.expect(&sql);
        let found = self.pg().lint().await;
        assert!(
            found
                .iter()
                .any(|v| v.object == object && v.problem.contains(needle)),
            "after {sql}: expected `{needle}` on {object}, got {found:?}"
        );
    }

    /// `method path` as tenant `i` with its own key.
    pub async fn call(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.api
            .as_tenant(&self.tenants[i], method, path, body)
            .await
    }

    /// `method path` with the platform key, acting for tenant `i` (`X-Tenant`).
    pub async fn platform(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let slug = self.tenants[i].slug();
        self.api.as_platform(slug, method, path, body).await
    }

    /// `POST path` with `body` and the platform key acting for tenant `i`: must be 201, the
    /// created resource tenant `i`'s.
    pub async fn expect_platform_creates(&self, i: usize, path: &str, body: Value) -> Reply {
        let r = self.platform(i, Method::POST, path, Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
        assert_eq!(r.body["tenantId"], self.tenants[i].id().to_string());
        r
    }

    /// `method path` as tenant `i` with `If-Match: "<tag>"`.
    pub async fn call_if(
        &self,
        i: usize,
        method: Method,
        path: &str,
        tag: i64,
        body: Option<Value>,
    ) -> Reply {
        self.api
            .as_tenant_if(&self.tenants[i], method, path, tag, body)
            .await
    }

    /// `method path` as tenant `i` with `body` sent as it is under `content_type`.
    pub async fn raw_body(
        &self,
        i: usize,
        method: Method,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> Reply {
        self.api
            .raw_as(&self.tenants[i], method, path, content_type, body)
            .await
    }

    /// `GET path` as tenant `i`.
    pub async fn get(&self, i: usize, path: &str) -> Reply {
        self.call(i, Method::GET, path, None).await
    }

    /// `DELETE path` as tenant `i`.
    pub async fn delete(&self, i: usize, path: &str) -> Reply {
        self.call(i, Method::DELETE, path, None).await
    }

    /// `POST path` with the JSON `body` as tenant `i`.
    pub async fn post(&self, i: usize, path: &str, body: Value) -> Reply {
        self.call(i, Method::POST, path, Some(body)).await
    }

    /// `PUT path` with the JSON `body` as tenant `i`.
    pub async fn put(&self, i: usize, path: &str, body: Value) -> Reply {
        self.call(i, Method::PUT, path, Some(body)).await
    }

    /// `PATCH path` with the JSON `body` as tenant `i`.
    pub async fn patch(&self, i: usize, path: &str, body: Value) -> Reply {
        self.call(i, Method::PATCH, path, Some(body)).await
    }

    /// Every item of the list at `path` as tenant `i`, page by page (`limit` a page, following
    /// `nextCursor`), each page checked: 200 and at most `limit` items.
    pub async fn all_pages(&self, i: usize, path: &str, limit: u32) -> Vec<Value> {
        self.api.all_pages(&self.tenants[i].key, path, limit).await
    }

    /// `PUT path` with `If-Match: "<tag>"` and the JSON `body` as tenant `i`.
    pub async fn put_if(&self, i: usize, path: &str, tag: i64, body: Value) -> Reply {
        self.call_if(i, Method::PUT, path, tag, Some(body)).await
    }

    /// `PATCH path` with `If-Match: "<tag>"` and the JSON `body` as tenant `i`.
    pub async fn patch_if(&self, i: usize, path: &str, tag: i64, body: Value) -> Reply {
        self.call_if(i, Method::PATCH, path, tag, Some(body)).await
    }

    /// `PATCH path` with `body` and the malformed `If-Match: *` as tenant `i`: must be a 400
    /// naming `If-Match`.
    pub async fn expect_malformed_if_match(&self, i: usize, path: &str, body: Value) {
        let call = Call::new(Method::PATCH, path)
            .key(&self.tenants[i].key)
            .header("if-match", "*");
        let r = self.api.send(call.json(body)).await;
        r.expect_fields(StatusCode::BAD_REQUEST, &["If-Match"], "If-Match: *");
    }

    /// `DELETE path` with `If-Match: "<tag>"` as tenant `i`.
    pub async fn delete_if(&self, i: usize, path: &str, tag: i64) -> Reply {
        self.call_if(i, Method::DELETE, path, tag, None).await
    }

    /// Sends each `(method, path, expected status)` as tenant `i` without a body, in order;
    /// a failure names the step.
    pub async fn expect_statuses<P: AsRef<str>>(
        &self,
        i: usize,
        steps: &[(Method, P, StatusCode)],
    ) {
        for (method, path, want) in steps {
            let path = path.as_ref();
            let r = self.call(i, method.clone(), path, None).await;
            assert_eq!(r.status, *want, "{method} {path}: {}", r.body);
        }
    }

    /// Sends each `(method, path, If-Match tag, body, expected status)` as tenant `i`, in order;
    /// a failure names the step, and every 412 must be a problem document.
    pub async fn expect_conditional<P: AsRef<str>>(
        &self,
        i: usize,
        steps: &[(Method, P, i64, Option<Value>, StatusCode)],
    ) {
        for (method, path, tag, body, want) in steps {
            let path = path.as_ref();
            let what = format!("{method} {path} If-Match {tag} {body:?}");
            let r = self
                .call_if(i, method.clone(), path, *tag, body.clone())
                .await;
            assert_eq!(r.status, *want, "{what}: {}", r.body);
            if *want == StatusCode::PRECONDITION_FAILED {
                assert!(r.is_problem(), "{what}");
            }
        }
    }

    /// Sends each `(method, path, body, expected status)` as tenant `i`, in order; a failure
    /// names the step.
    pub async fn expect_each<P: AsRef<str>>(
        &self,
        i: usize,
        steps: &[(Method, P, Option<Value>, StatusCode)],
    ) {
        for (method, path, body, want) in steps {
            let path = path.as_ref();
            let r = self.call(i, method.clone(), path, body.clone()).await;
            assert_eq!(r.status, *want, "{method} {path} {body:?}: {}", r.body);
        }
    }

    /// The refusals every service's tenant API shares, on `GET path`: no key and an unknown key
    /// are 401 problems, tenant 0's key naming tenant 1 in `X-Tenant` is 403, the platform key
    /// without `X-Tenant` is 400 naming it, and the platform key for an unknown tenant is 404.
    pub async fn expect_key_refusals(&self, path: &str) {
        let r = self.api.send(Call::new(Method::GET, path)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "no key: {}", r.body);
        assert!(r.is_problem(), "no key: {:?}", r.headers);
        let r = self
            .api
            .send(Call::new(Method::GET, path).key("not-a-key"))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "unknown key: {}",
            r.body
        );
        let r = self
            .api
            .send(
                Call::new(Method::GET, path)
                    .key(&self.tenants[0].key)
                    .header("x-tenant", self.tenants[1].slug()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "another tenant's slug: {}",
            r.body
        );
        let r = self
            .api
            .send(Call::new(Method::GET, path).key(PLATFORM_KEY))
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "platform key alone: {}",
            r.body
        );
        assert_eq!(r.error_fields(), ["X-Tenant"]);
        let r = self
            .api
            .as_platform("no-such-tenant", Method::GET, path, None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "unknown tenant: {}",
            r.body
        );
    }

    /// The platform routes: `/healthz` and `/readyz` answer 200; returns `/openapi.json`'s
    /// answer (200 checked) for the caller to look into.
    pub async fn expect_platform_routes(&self) -> Reply {
        for path in ["/healthz", "/readyz"] {
            let r = self.api.send(Call::new(Method::GET, path)).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        }
        let r = self.api.send(Call::new(Method::GET, "/openapi.json")).await;
        assert_eq!(r.status, StatusCode::OK, "/openapi.json");
        r
    }

    /// For each `(body, status, fields)`, `method path` with `body` as tenant `i` must answer
    /// `status` with exactly `fields` named in its problem's `errors` (in order); a failure names
    /// the body.
    pub async fn expect_errors(
        &self,
        i: usize,
        method: Method,
        path: &str,
        cases: &[(Value, StatusCode, &[&str])],
    ) {
        for (body, want, fields) in cases {
            let r = self.call(i, method.clone(), path, Some(body.clone())).await;
            assert_eq!(r.status, *want, "{method} {path} {body}: {}", r.body);
            assert_eq!(r.error_fields(), *fields, "{method} {path} {body}");
        }
    }

    /// For each `(query, field)`, `GET <path>?<query>` as tenant `i` must be a 400
    /// `application/problem+json` answer naming exactly `field` in its `errors`.
    pub async fn expect_bad_queries(&self, i: usize, path: &str, cases: &[(&str, &str)]) {
        for (query, field) in cases {
            let r = self.get(i, &format!("{path}?{query}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
            assert!(r.is_problem(), "{query}: not problem+json");
            assert_eq!(r.error_fields(), [*field], "{query}");
        }
    }
}

/// Declares a service's `TestApp`: a newtype over [`ServiceApp`] of the service's state that
/// derefs to it, so the service's support adds its own seeds as inherent methods.
///
/// ```ignore
/// prismicx_harness::service_app!(pub struct TestApp(AppState));
/// ```
#[macro_export]
macro_rules! service_app {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($state:ty);) => {
        $(#[$meta])*
        $vis struct $name(pub $crate::kit::ServiceApp<$state>);

        impl ::std::ops::Deref for $name {
            type Target = $crate::kit::ServiceApp<$state>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
    // A MongoDB service: also `spawn(n, &dedicated)` and `spawn_tenants(tenants)`, which
    // provision `$layout` for the tenants and build the state with `$state_of(store, tenancy)`
    // and the router with `$router_of(state)`.
    ($(#[$meta:meta])* $vis:vis struct $name:ident($state:ty); mongo $layout:expr, $state_of:expr, $router_of:expr) => {
        $crate::service_app!($(#[$meta])* $vis struct $name($state););

        /// `n` tenants, those at the indexes in `dedicated` of the dedicated tier, and the
        /// application serving them.
        pub async fn spawn(n: usize, dedicated: &[usize]) -> $name {
            spawn_tenants($crate::kit::test_tenants(n, dedicated)).await
        }

        /// The application serving `tenants`.
        pub async fn spawn_tenants(tenants: Vec<$crate::kit::TestTenant>) -> $name {
            let app = $crate::kit::ServiceApp::on_mongo($layout, tenants, |store, tenancy| {
                let state: $state = $state_of(store, tenancy);
                ($router_of(state.clone()), state)
            });
            $name(app.await)
        }
    };
}
