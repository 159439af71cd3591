//! Tenant lifecycle events over the harness Redis invalidate a service's cached placements and
//! keys at once (the cache TTL here is an hour, so only the event can explain the change).

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::auth::{KeyStore, PresentedKey, Principal};
use prismicx_service_common::config::Secret;
use prismicx_service_common::events::{self, TenantEvent, TenantEventKind, TENANT_EVENTS_CHANNEL};
use prismicx_service_common::tenancy::{
    DirectoryError, Tenancy, TenantPlacement, TenantResolver, TenantSlug, TenantState, Tier,
};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A test double of the tenant registry (tenant-mgmt), not of Redis: placements and keys live in
/// maps the test changes behind the cache's back. Redis is the real harness server.
#[derive(Default)]
struct Registry {
    tenants: Mutex<HashMap<TenantSlug, TenantPlacement>>,
    keys: Mutex<HashMap<String, TenantSlug>>,
}

impl Registry {
    fn set_state(&self, slug: &TenantSlug, state: TenantState) {
        self.tenants
            .lock()
            .unwrap()
            .get_mut(slug)
            .expect("known tenant")
            .state = state;
    }
}

#[async_trait]
impl TenantResolver for Registry {
    async fn resolve(&self, slug: &TenantSlug) -> Result<Option<TenantPlacement>, DirectoryError> {
        Ok(self.tenants.lock().unwrap().get(slug).cloned())
    }
}

#[async_trait]
impl KeyStore for Registry {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        let digest = key.digest();
        let keys = self.keys.lock().unwrap();
        let known = |k: &String| PresentedKey::new(k.as_str()).digest().ct_eq(&digest);
        Ok(keys.iter().find(|(k, _)| known(k)).map(|(_, s)| s.clone()))
    }
}

struct Fixture {
    registry: Arc<Registry>,
    tenancy: Tenancy,
    slug: TenantSlug,
    id: Uuid,
    key: String,
    ready: mpsc::UnboundedReceiver<()>,
    invalidator: tokio::task::JoinHandle<()>,
    publisher: redis::aio::MultiplexedConnection,
}

impl Fixture {
    /// One active tenant with one key, a tenancy with a one-hour cache, and a subscribed
    /// invalidator.
    async fn start() -> Fixture {
        let registry = Arc::new(Registry::default());
        let slug = TenantSlug::parse(&unique_name("ev")).unwrap();
        let id = Uuid::new_v4();
        let key = unique_name("key-");
        registry.tenants.lock().unwrap().insert(
            slug.clone(),
            TenantPlacement {
                id,
                slug: slug.clone(),
                tier: Tier::Standard,
                state: TenantState::Active,
            },
        );
        registry
            .keys
            .lock()
            .unwrap()
            .insert(key.clone(), slug.clone());
        let tenancy = Tenancy::new(
            &Secret::new(unique_name("platform-")),
            registry.clone(),
            registry.clone(),
            Duration::from_secs(3600),
        );
        let url = servers().redis.url();
        let (ready_tx, mut ready) = mpsc::unbounded_channel();
        let invalidator =
            events::spawn_invalidator(Secret::new(url.clone()), tenancy.clone(), Some(ready_tx));
        tokio::time::timeout(Duration::from_secs(10), ready.recv())
            .await
            .expect("the invalidator subscribed within 10 s")
            .expect("ready channel open");
        let publisher = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Fixture {
            registry,
            tenancy,
            slug,
            id,
            key,
            ready,
            invalidator,
            publisher,
        }
    }

    async fn publish(&mut self, kind: TenantEventKind) {
        let receivers = events::publish(
            &mut self.publisher,
            &TenantEvent::new(kind, self.id, self.slug.clone()),
        )
        .await
        .unwrap();
        assert!(receivers >= 1, "no subscriber received the event");
    }

    async fn publish_raw(&mut self, payload: &[u8]) {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(TENANT_EVENTS_CHANNEL)
            .arg(payload)
            .query_async(&mut self.publisher)
            .await
            .unwrap();
    }

    /// The HTTP status `tenant_for` answers for the platform key naming this tenant.
    async fn status(&self) -> u16 {
        match self
            .tenancy
            .tenant_for(&Principal::Platform, Some(self.slug.as_str()))
            .await
        {
            Ok(p) => {
                assert_eq!(p.id, self.id);
                200
            }
            Err(e) => e.status().as_u16(),
        }
    }

    /// Polls `status` until it answers `expected` (at most 5 s); returns whether it did.
    async fn eventually_status(&self, expected: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.status().await == expected {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.invalidator.abort();
    }
}

#[tokio::test]
async fn a_suspension_event_ends_a_cached_active_placement() {
    let mut fx = Fixture::start().await;
    assert_eq!(fx.status().await, 200);

    // The registry says suspended, but the cached placement still says active.
    fx.registry.set_state(&fx.slug, TenantState::Suspended);
    assert_eq!(fx.status().await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fx.status().await, 200, "without an event, the cache holds");

    fx.publish(TenantEventKind::Suspended).await;
    assert!(
        fx.eventually_status(403).await,
        "the suspension event did not reach the cache within 5 s"
    );

    // Resumed: the registry says active again; the event makes it effective.
    fx.registry.set_state(&fx.slug, TenantState::Active);
    fx.publish(TenantEventKind::Resumed).await;
    assert!(fx.eventually_status(200).await);
    assert!(fx.ready.try_recv().is_err(), "the subscriber reconnected");
}

#[tokio::test]
async fn a_keys_changed_event_revokes_a_cached_key() {
    let mut fx = Fixture::start().await;
    let key = PresentedKey::new(fx.key.clone());
    assert_eq!(
        fx.tenancy.authenticate(&key).await.unwrap(),
        Principal::Tenant(fx.slug.clone())
    );
    fx.registry.keys.lock().unwrap().clear();
    assert!(fx.tenancy.authenticate(&key).await.is_ok(), "cached");

    fx.publish(TenantEventKind::KeysChanged).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fx.tenancy.authenticate(&key).await {
            Err(e) => {
                assert_eq!(e.status().as_u16(), 401);
                break;
            }
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await
            }
            Ok(_) => panic!("the revoked key still authenticates after 5 s"),
        }
    }
}

#[tokio::test]
async fn malformed_payloads_do_not_kill_the_subscriber() {
    let mut fx = Fixture::start().await;
    assert_eq!(fx.status().await, 200);
    fx.registry.set_state(&fx.slug, TenantState::Suspended);

    fx.publish_raw(b"not json at all").await;
    fx.publish_raw(br#"{"kind":"suspended"}"#).await;
    fx.publish_raw(br#"{"kind":"exploded","tenantId":"x","slug":"Bad Slug","at":0}"#)
        .await;
    fx.publish_raw(&[0xff, 0xfe, 0x00, 0x80]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fx.status().await, 200, "junk must not invalidate anything");

    // A valid event after the junk still lands …
    fx.publish(TenantEventKind::Suspended).await;
    assert!(fx.eventually_status(403).await);
    // … on the original subscription: a reconnect (which also clears the cache) would have
    // signalled ready again.
    assert!(fx.ready.try_recv().is_err(), "the subscriber reconnected");
    assert!(!fx.invalidator.is_finished());
}
