//! The watch protocol end to end: kube-runtime watchers and a Controller, 410 relists,
//! bookmarks, label-filtered watches, and Lease leader election.
#![allow(clippy::unwrap_used)]

mod common;

use common::MergePatch;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use prismicx_local_apiserver::ServerOptions;
use serde_json::json;

fn cm(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": v}})).unwrap()
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin),
) -> Event<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("a watcher event within 10 s")
        .unwrap()
        .expect("the stream goes on")
}

#[tokio::test]
async fn watcher_sees_added_modified_deleted_in_order() {
    let (_server, client) = common::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &cm("before", "0"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().any_semantic()).boxed();
    assert!(matches!(next_event(&mut stream).await, Event::Init));
    match next_event(&mut stream).await {
        Event::InitApply(o) => assert_eq!(o.name_any(), "before"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next_event(&mut stream).await, Event::InitDone));

    api.create(&PostParams::default(), &cm("w", "1"))
        .await
        .unwrap();
    api.merge("w", json!({"data": {"v": "2"}})).await.unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next_event(&mut stream).await {
            Event::Apply(o) => {
                seen.push(format!("apply {} {}", o.name_any(), o.data.unwrap()["v"]))
            }
            Event::Delete(o) => seen.push(format!("delete {}", o.name_any())),
            _ => {}
        }
    }
    assert_eq!(seen, ["apply w 1", "apply w 2", "delete w"]);
}

fn watcher(
    api: Api<ConfigMap>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> {
    kube::runtime::watcher(api, config)
}

#[tokio::test]
async fn raw_watch_events_bookmarks_and_label_transitions() {
    let (_server, client) = common::start_with(ServerOptions {
        bookmark_interval: Duration::from_millis(200),
        ..common::options()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let start = api
        .create(&PostParams::default(), &cm("x", "0"))
        .await
        .unwrap();
    let rv = start.resource_version().unwrap();
    let wp = WatchParams::default().labels("app=demo").timeout(30);
    let mut events = api.watch(&wp, &rv).await.unwrap().boxed();
    // Entering the selector is ADDED, leaving it DELETED; bookmarks arrive in between.
    api.merge("x", json!({"metadata": {"labels": {"app": "demo"}}}))
        .await
        .unwrap();
    api.merge("x", json!({"data": {"v": "1"}})).await.unwrap();
    api.merge("x", json!({"metadata": {"labels": {"app": "other"}}}))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut bookmarks = 0;
    let mut last_bookmark_rv = 0u64;
    while kinds.len() < 3 || bookmarks == 0 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Bookmark(b) => {
                bookmarks += 1;
                last_bookmark_rv = b.metadata.resource_version.parse().unwrap();
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    assert!(last_bookmark_rv >= rv.parse::<u64>().unwrap());
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410_and_the_watcher_relists() {
    let (server, client) = common::start_with(ServerOptions {
        watch_history: 3,
        // No bookmark may refresh the watcher's resourceVersion during the test.
        bookmark_interval: Duration::from_secs(3600),
        ..common::options()
    })
    .await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    common::create_namespace(&namespaces, "busy").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let busy: Api<ConfigMap> = Api::namespaced(client.clone(), "busy");
    let first = api
        .create(&PostParams::default(), &cm("first", "0"))
        .await
        .unwrap();

    // A raw watch from an old resourceVersion after the history moved on: ERROR 410.
    for i in 0..5 {
        busy.create(&PostParams::default(), &cm(&format!("noise{i}"), "n"))
            .await
            .unwrap();
    }
    let mut raw = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match raw.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error, got {other:?}"),
    }

    // A watcher on `default` only: the noise in `busy` compacts the shared history, and when its
    // watch is cut it resumes from a resourceVersion that is too old, gets 410 and relists.
    let mut stream = watcher(api.clone(), watcher::Config::default().any_semantic()).boxed();
    assert!(matches!(next_event(&mut stream).await, Event::Init));
    assert!(matches!(next_event(&mut stream).await, Event::InitApply(_)));
    assert!(matches!(next_event(&mut stream).await, Event::InitDone));
    for i in 5..10 {
        busy.create(&PostParams::default(), &cm(&format!("noise{i}"), "n"))
            .await
            .unwrap();
    }
    // Give the watch time to see (and skip) the noise, then cut it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.close_watches();
    api.create(&PostParams::default(), &cm("second", "0"))
        .await
        .unwrap();
    let mut relisted = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the watcher relists within 10 s")
            .expect("the stream goes on");
        match ev {
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitApply(o)) => relisted.push(o.name_any()),
            Ok(Event::InitDone) => break,
            Ok(other) => panic!("expected a relist, got {other:?}"),
            // kube-runtime reports the 410 before relisting.
            Err(_) => {}
        }
    }
    relisted.sort();
    assert_eq!(relisted, ["first", "second"]);
}

#[tokio::test]
async fn controller_reconciles_configmaps_on_change() {
    let (_server, client) = common::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    // The reconciler writes `data.seen` = `data.v` (server-side apply, like the operator).
    async fn reconcile(
        cm: Arc<ConfigMap>,
        api: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let v = cm
            .data
            .as_ref()
            .and_then(|d| d.get("v"))
            .cloned()
            .unwrap_or_default();
        if cm.data.as_ref().and_then(|d| d.get("seen")) != Some(&v) {
            api.patch(
                &cm.name_any(),
                &PatchParams::apply("reconciler").force(),
                &Patch::Apply(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"seen": v}}),
                ),
            )
            .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Api<ConfigMap>>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctx = Arc::new(api.clone());
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default().any_semantic())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    api.create(&PostParams::default(), &cm("c", "1"))
        .await
        .unwrap();
    common::eventually("the first reconcile", || {
        let api = api.clone();
        async move { (api.get("c").await.ok()?.data?.get("seen")? == "1").then_some(()) }
    })
    .await;
    api.merge("c", json!({"data": {"v": "2"}})).await.unwrap();
    common::eventually("the reconcile after a change", || {
        let api = api.clone();
        async move { (api.get("c").await.ok()?.data?.get("seen")? == "2").then_some(()) }
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn lease_leader_election_flow() {
    let (_server, client) = common::start().await;
    let leases: Api<Lease> = Api::default_namespaced(client);
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    assert!(leases.get_opt("leader").await.unwrap().is_none());
    leases.create(&PostParams::default(), &lease).await.unwrap();
    // A racing create loses with AlreadyExists.
    match leases.create(&PostParams::default(), &lease).await {
        Err(kube::Error::Api(s)) => assert!(s.is_already_exists()),
        other => panic!("{other:?}"),
    }
    let mut read_a = leases.get("leader").await.unwrap();
    let mut read_b = read_a.clone();
    read_a.spec.as_mut().unwrap().lease_transitions = Some(1);
    let renewed = leases
        .replace("leader", &PostParams::default(), &read_a)
        .await
        .unwrap();
    assert_ne!(renewed.resource_version(), read_b.resource_version());
    // B writes with the resourceVersion it read before A's renewal: Conflict.
    read_b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    match leases
        .replace("leader", &PostParams::default(), &read_b)
        .await
    {
        Err(kube::Error::Api(s)) => assert!(s.is_conflict()),
        other => panic!("{other:?}"),
    }
    // After re-reading, B's takeover succeeds.
    let mut fresh = leases.get("leader").await.unwrap();
    fresh.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let taken = leases
        .replace("leader", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn event_recorder_publishes_events() {
    let (_server, client) = common::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let c = api
        .create(&PostParams::default(), &cm("evented", "1"))
        .await
        .unwrap();
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "test".into(),
            instance: None,
        },
    );
    let ev = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = c.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    // The same event again becomes a series (a merge patch of the first).
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(client);
    let list = events.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].reason.as_deref(), Some("Tested"));
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));
}
