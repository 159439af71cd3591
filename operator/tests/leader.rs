//! Leader election against kube-fake-client's in-memory API server (no cluster needed):
//! `cargo test -p prismicx-operator --test leader`.
//!
//! Leases that are fresh, stale or held by someone else are built directly with the renewTime
//! each case needs, so no test waits for a lease to expire. Races are staged with the fake
//! client's interceptors, which let a competing candidate write between our read and our write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube_fake_client::{interceptor, ClientBuilder};
use prismicx_operator::leader::{LeaderElector, LeaseSettings};
use tokio::sync::watch;

const NAMESPACE: &str = "prismicx-system";
const LEASE: &str = "prismicx-operator-leader";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: NAMESPACE.into(),
        name: LEASE.into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        renew_interval: Duration::from_secs(5),
    }
}

/// `secs_ago` seconds before now.
fn ago(secs_ago: i64) -> MicroTime {
    let micros = chrono::Utc::now().timestamp_micros() - secs_ago * 1_000_000;
    MicroTime(Timestamp::from_microsecond(micros).expect("in range"))
}

/// A Lease held by `holder`, acquired an hour ago and last renewed `renewed_secs_ago` ago.
fn lease_held_by(holder: &str, renewed_secs_ago: i64, transitions: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            acquire_time: Some(ago(3600)),
            renew_time: Some(ago(renewed_secs_ago)),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

async fn empty_client() -> Result<kube::Client, kube_fake_client::Error> {
    ClientBuilder::new().with_resource::<Lease>().build().await
}

async fn client_with(lease: Lease) -> Result<kube::Client, kube_fake_client::Error> {
    ClientBuilder::new()
        .with_resource::<Lease>()
        .with_object(lease)
        .build()
        .await
}

/// A client with no Lease whose requests first go through `funcs`.
async fn intercepted(funcs: interceptor::Funcs) -> Result<kube::Client, kube_fake_client::Error> {
    ClientBuilder::new()
        .with_resource::<Lease>()
        .with_interceptor_funcs(funcs)
        .build()
        .await
}

async fn spec_of(client: &kube::Client) -> Result<LeaseSpec, kube::Error> {
    let lease = Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get(LEASE)
        .await?;
    Ok(lease.spec.unwrap_or_default())
}

/// Who holds the Lease now.
async fn holder(client: &kube::Client) -> Result<Option<String>, kube::Error> {
    Ok(spec_of(client).await?.holder_identity)
}

fn micros(t: &Option<MicroTime>) -> i64 {
    t.as_ref().expect("time is set").0.as_microsecond()
}

#[tokio::test]
async fn first_candidate_creates_the_lease_and_leads() -> TestResult {
    let client = empty_client().await?;
    let before = ago(0);
    let a = LeaderElector::new(client.clone(), settings("a"));

    assert!(a.try_acquire_or_renew().await?);

    let spec = spec_of(&client).await?;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));
    assert_eq!(micros(&spec.acquire_time), micros(&spec.renew_time));
    assert!(micros(&spec.renew_time) >= before.0.as_microsecond());
    Ok(())
}

#[tokio::test]
async fn second_candidate_is_refused_while_the_lease_is_fresh() -> TestResult {
    let client = empty_client().await?;
    let a = LeaderElector::new(client.clone(), settings("a"));
    let b = LeaderElector::new(client.clone(), settings("b"));

    assert!(a.try_acquire_or_renew().await?);
    let held = spec_of(&client).await?;
    assert!(!b.try_acquire_or_renew().await?);

    // The refused candidate wrote nothing.
    assert_eq!(spec_of(&client).await?, held);
    // And the holder keeps leading.
    assert!(a.try_acquire_or_renew().await?);
    Ok(())
}

#[tokio::test]
async fn holder_renews_without_a_transition() -> TestResult {
    // Renewed 10 s ago: still fresh (15 s), so nobody else may take it.
    let client = client_with(lease_held_by("a", 10, 2)).await?;
    let old = spec_of(&client).await?;
    let a = LeaderElector::new(client.clone(), settings("a"));

    assert!(a.try_acquire_or_renew().await?);

    let new = spec_of(&client).await?;
    assert_eq!(new.holder_identity.as_deref(), Some("a"));
    assert!(
        micros(&new.renew_time) >= micros(&old.renew_time) + 9_000_000,
        "renewTime moved to now"
    );
    assert_eq!(new.acquire_time, old.acquire_time);
    assert_eq!(new.lease_transitions, Some(2));
    Ok(())
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_transitions_increment() -> TestResult {
    // Renewed 60 s ago with a 15 s lease: the holder is gone.
    let client = client_with(lease_held_by("a", 60, 3)).await?;
    let before = ago(0);
    let b = LeaderElector::new(client.clone(), settings("b"));

    assert!(b.try_acquire_or_renew().await?);

    let spec = spec_of(&client).await?;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert!(micros(&spec.acquire_time) >= before.0.as_microsecond());
    assert_eq!(micros(&spec.acquire_time), micros(&spec.renew_time));

    // The old holder, coming back, finds the lease fresh under b and does not lead.
    let a = LeaderElector::new(client.clone(), settings("a"));
    assert!(!a.try_acquire_or_renew().await?);
    assert_eq!(holder(&client).await?.as_deref(), Some("b"));
    Ok(())
}

#[tokio::test]
async fn release_lets_the_other_candidate_acquire_at_once() -> TestResult {
    let client = empty_client().await?;
    let a = LeaderElector::new(client.clone(), settings("a"));
    let b = LeaderElector::new(client.clone(), settings("b"));
    assert!(a.try_acquire_or_renew().await?);
    assert!(!b.try_acquire_or_renew().await?);

    // Releasing a lease someone else holds changes nothing.
    b.release().await?;
    assert_eq!(holder(&client).await?.as_deref(), Some("a"));

    a.release().await?;
    assert_eq!(spec_of(&client).await?.holder_identity, None);

    // b does not wait for a's renewTime to age out.
    assert!(b.try_acquire_or_renew().await?);
    let spec = spec_of(&client).await?;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // Releasing twice, or a lease that does not exist, is fine.
    a.release().await?;
    LeaderElector::new(empty_client().await?, settings("a"))
        .release()
        .await?;
    Ok(())
}

#[tokio::test]
async fn fake_api_rejects_a_replace_with_a_stale_resource_version() -> TestResult {
    // The race tests below rely on this server behaviour.
    let client = client_with(lease_held_by("a", 0, 0)).await?;
    let api = Api::<Lease>::namespaced(client, NAMESPACE);
    let read = api.get(LEASE).await?;
    api.replace(LEASE, &PostParams::default(), &read).await?;

    let err = api
        .replace(LEASE, &PostParams::default(), &read)
        .await
        .expect_err("the second write carries a stale resourceVersion");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.is_conflict()),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn takeover_that_loses_the_race_is_not_leader() -> TestResult {
    // b reads the expired lease; before its replace lands, "racer" takes the lease over.
    let raced = Arc::new(AtomicBool::new(false));
    let funcs = interceptor::Funcs::new().replace({
        let raced = raced.clone();
        move |ctx| {
            if !raced.swap(true, Ordering::SeqCst) {
                let mut current: Lease = ctx.client.get(ctx.namespace, ctx.name)?;
                let spec = current.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some("racer".into());
                spec.renew_time = Some(ago(0));
                ctx.client
                    .update(ctx.namespace, &current, &PostParams::default())?;
            }
            Ok(None) // let b's (now stale) replace proceed
        }
    });
    let client = ClientBuilder::new()
        .with_resource::<Lease>()
        .with_object(lease_held_by("a", 60, 0))
        .with_interceptor_funcs(funcs)
        .build()
        .await?;
    let b = LeaderElector::new(client.clone(), settings("b"));

    assert!(!b.try_acquire_or_renew().await?, "a 409 is 'not leader'");
    assert!(raced.load(Ordering::SeqCst));
    assert_eq!(holder(&client).await?.as_deref(), Some("racer"));

    // Next round b sees the racer's fresh lease and stays a follower.
    assert!(!b.try_acquire_or_renew().await?);
    Ok(())
}

#[tokio::test]
async fn create_that_loses_the_race_is_not_leader() -> TestResult {
    // a finds no lease; before its create lands, "racer" creates one.
    let raced = Arc::new(AtomicBool::new(false));
    let funcs = interceptor::Funcs::new().create({
        let raced = raced.clone();
        move |ctx| {
            if !raced.swap(true, Ordering::SeqCst) {
                ctx.client.create(
                    ctx.namespace,
                    &lease_held_by("racer", 0, 0),
                    &PostParams::default(),
                )?;
            }
            Ok(None)
        }
    });
    let client = intercepted(funcs).await?;
    let a = LeaderElector::new(client.clone(), settings("a"));

    assert!(!a.try_acquire_or_renew().await?);
    assert!(raced.load(Ordering::SeqCst));
    assert_eq!(holder(&client).await?.as_deref(), Some("racer"));
    Ok(())
}

#[tokio::test]
async fn other_api_errors_are_errors() -> TestResult {
    let funcs = interceptor::Funcs::new()
        .get(|_| Err(kube_fake_client::Error::Internal("etcd unavailable".into())));
    let client = intercepted(funcs).await?;
    let a = LeaderElector::new(client, settings("a"));

    let err = a
        .try_acquire_or_renew()
        .await
        .expect_err("a 500 is not a lost race");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 500),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn spawned_loop_publishes_leadership_and_releases_on_shutdown() -> TestResult {
    // The API can be switched off to see the loop step down.
    let api_down = Arc::new(AtomicBool::new(false));
    let funcs = interceptor::Funcs::new().get({
        let api_down = api_down.clone();
        move |_| {
            if api_down.load(Ordering::SeqCst) {
                Err(kube_fake_client::Error::Internal("unavailable".into()))
            } else {
                Ok(None)
            }
        }
    });
    let client = intercepted(funcs).await?;
    let fast = LeaseSettings {
        renew_interval: Duration::from_millis(20),
        lease_duration: Duration::from_millis(1500),
        ..settings("a")
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut leading = LeaderElector::new(client.clone(), fast).spawn(stop_rx);
    let within = Duration::from_secs(5);

    tokio::time::timeout(within, leading.wait_for(|l| *l)).await??;
    assert_eq!(holder(&client).await?.as_deref(), Some("a"));

    // A few failing rounds within the renew deadline (2/3 of the lease) keep the leadership…
    api_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        *leading.borrow(),
        "one lost renewal does not end leadership"
    );
    // …failing past the deadline ends it, before the lease expires for others.
    tokio::time::timeout(within, leading.wait_for(|l| !*l)).await??;
    // And leadership comes back with the API.
    api_down.store(false, Ordering::SeqCst);
    tokio::time::timeout(within, leading.wait_for(|l| *l)).await??;

    // Shutdown: leadership drops, the lease is released, and the task ends (sender dropped).
    stop_tx.send(true)?;
    tokio::time::timeout(within, async { while leading.changed().await.is_ok() {} }).await?;
    assert!(!*leading.borrow());
    assert_eq!(spec_of(&client).await?.holder_identity, None);
    Ok(())
}

#[tokio::test]
async fn spawned_loop_stops_when_the_shutdown_sender_is_dropped() -> TestResult {
    let client = empty_client().await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut leading = LeaderElector::new(client.clone(), settings("a")).spawn(stop_rx);
    tokio::time::timeout(Duration::from_secs(5), leading.wait_for(|l| *l)).await??;

    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(5), async {
        while leading.changed().await.is_ok() {}
    })
    .await?;
    assert_eq!(spec_of(&client).await?.holder_identity, None);
    Ok(())
}
