//! user-data's own test support: the application on the kit's tenants with its PostgreSQL
//! database (the service's real migrations, a login role that reaches it only through the
//! harness PgBouncer) ([`spawn_app`]), and its seed (a user).

#![allow(dead_code)]

use std::sync::Arc;

use axum::http::StatusCode;
use prismicx_harness::kit::{tenancy_of, tenants_with, PgOptions, PgService, ServiceApp};
use prismicx_user_data::{app, migrations, AppSettings, AppState};

prismicx_harness::service_app!(
    /// The application under test; the kit's `ServiceApp` plus this service's seeds.
    pub struct TestApp(AppState);
);

/// Options of [`spawn_app_with`].
pub struct Options {
    pub tenants: usize,
    pub suspended: Vec<usize>,
    pub dedicated: Vec<usize>,
    /// Route the shared pool through a PgBouncer alias of this size.
    pub shared_pool_alias_size: Option<u32>,
    pub client_pool_size: u32,
    pub settings: AppSettings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tenants: 2,
            suspended: vec![],
            dedicated: vec![],
            shared_pool_alias_size: None,
            client_pool_size: 8,
            settings: AppSettings::default(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// `tenants` tenants, those whose index is in `dedicated` dedicated and in `suspended`
/// suspended, the other options as by default.
pub async fn spawn_tiers(tenants: usize, dedicated: &[usize], suspended: &[usize]) -> TestApp {
    let (dedicated, suspended) = (dedicated.to_vec(), suspended.to_vec());
    spawn_app_with(Options {
        tenants,
        dedicated,
        suspended,
        ..Options::default()
    })
    .await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let tenants = tenants_with(opts.tenants, &opts.dedicated, &opts.suspended);
    let pool = PgOptions {
        shared_pool_alias_size: opts.shared_pool_alias_size,
        pool_size: opts.client_pool_size,
    };
    let pg = PgService::provision(
        &migrations::SCHEMA,
        tenants.iter().map(|t| &t.placement),
        pool,
    )
    .await;
    let state = AppState {
        db: Arc::new(pg.tenant_db()),
        tenancy: tenancy_of(&tenants),
    };
    let router = app(state.clone(), opts.settings);
    TestApp(ServiceApp::new(router, tenants, state).with_pg(pg))
}

impl TestApp {
    /// Creates a user for tenant `i`, returning its id.
    pub async fn create_user(&self, i: usize, email: &str, name: &str) -> String {
        let r = self
            .post(
                i,
                "/v1/users",
                serde_json::json!({"email": email, "displayName": name}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }
}
