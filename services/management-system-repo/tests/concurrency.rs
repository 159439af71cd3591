//! Concurrency against the real servers, requests running in parallel on a multi-threaded
//! runtime: configuration writers racing for the next version (with and without If-Match, in
//! both tiers), system updates racing on one ETag, and a system deleted while configurations
//! are being written to it. The checks are on what is stored, never on timing.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use prismicx_harness::kit::Call;
use serde_json::json;
use support::{spawn_tiers, TestApp};

async fn two_tier_app() -> Arc<TestApp> {
    Arc::new(spawn_tiers(2, &[1], &[]).await)
}

fn cfg(system: &str) -> String {
    format!("/v1/systems/{system}/configuration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_the_same_if_match_exactly_one_wins() {
    let app = two_tier_app().await;
    for t in 0..2 {
        let sys = app.create_system(t, "raced", None).await;
        assert_eq!(
            app.put_config(t, &sys, json!({"writer": "initial"})).await,
            1
        );
        for round in 1..=3_i64 {
            let writers = (0..6).map(|w| {
                let (app, sys) = (app.clone(), sys.clone());
                tokio::spawn(async move {
                    let r = app
                        .put_if(
                            t,
                            &cfg(&sys),
                            round,
                            json!({"config": {"writer": w, "round": round}}),
                        )
                        .await;
                    (w, r)
                })
            });
            let mut winners = Vec::new();
            for h in writers.collect::<Vec<_>>() {
                let (w, r) = h.await.unwrap();
                match r.status {
                    StatusCode::CREATED => {
                        assert_eq!(r.body["version"], round + 1);
                        winners.push(w);
                    }
                    StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                        assert!(r.is_problem())
                    }
                    other => panic!("tenant {t} writer {w}: unexpected {other}: {:?}", r.body),
                }
            }
            assert_eq!(
                winners.len(),
                1,
                "tenant {t} round {round}: winners {winners:?}"
            );
            // Stored: versions 1..=round+1 exactly once each, the new one holding the winner's.
            let raw = app.raw_configs(t, &sys).await;
            let versions: Vec<i64> = raw.iter().map(|d| d.get_i64("version").unwrap()).collect();
            assert_eq!(versions, (1..=round + 1).collect::<Vec<_>>(), "tenant {t}");
            let latest = app.get(t, &cfg(&sys)).await;
            assert_eq!(
                latest.body["config"],
                json!({"writer": winners[0], "round": round})
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_without_if_match_all_land_in_gapless_versions() {
    let app = two_tier_app().await;
    for t in 0..2 {
        let sys = app.create_system(t, "busy", None).await;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (app, sys) = (app.clone(), sys.clone());
                tokio::spawn(async move {
                    let r = app
                        .put(t, &cfg(&sys), json!({"config": {"writer": w}}))
                        .await;
                    assert_eq!(r.status, StatusCode::CREATED, "writer {w}: {:?}", r.body);
                    (w, r.body["version"].as_i64().unwrap())
                })
            })
            .collect();
        let mut told = Vec::new();
        for h in writers {
            told.push(h.await.unwrap());
        }
        let numbers: BTreeSet<i64> = told.iter().map(|(_, v)| *v).collect();
        assert_eq!(
            numbers,
            (1..=8).collect::<BTreeSet<_>>(),
            "tenant {t}: {told:?}"
        );
        let raw = app.raw_configs(t, &sys).await;
        assert_eq!(raw.len(), 8);
        for (w, v) in told {
            let doc = &raw[(v - 1) as usize];
            assert_eq!(doc.get_i64("version").unwrap(), v);
            assert_eq!(
                doc.get_document("config")
                    .unwrap()
                    .get_i64("writer")
                    .unwrap(),
                w
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_system_updates_on_one_etag_lose_nothing_silently() {
    let app = two_tier_app().await;
    for t in 0..2 {
        let sys = app.create_system(t, "patched", None).await;
        let path = format!("/v1/systems/{sys}");
        let writers: Vec<_> = (0..6)
            .map(|w| {
                let (app, path) = (app.clone(), path.clone());
                tokio::spawn(async move {
                    let r = app
                        .patch_if(t, &path, 1, json!({"description": format!("writer {w}")}))
                        .await;
                    (w, r.status)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for h in writers {
            let (w, status) = h.await.unwrap();
            match status {
                StatusCode::OK => winners.push(w),
                StatusCode::PRECONDITION_FAILED => {}
                other => panic!("writer {w}: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "tenant {t}");
        let r = app.get(t, &path).await;
        assert_eq!(r.body["revision"], 2);
        assert_eq!(r.body["description"], format!("writer {}", winners[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_system_deleted_while_configurations_are_written_leaves_none_behind() {
    let app = two_tier_app().await;
    for t in 0..2 {
        for attempt in 0..3 {
            let sys = app
                .create_system(t, &format!("short-lived-{attempt}"), None)
                .await;
            app.put_config(t, &sys, json!({"seed": true})).await;
            let mut tasks: Vec<_> = (0..5)
                .map(|w| {
                    let (app, sys) = (app.clone(), sys.clone());
                    tokio::spawn(async move {
                        let r = app.put(t, &cfg(&sys), json!({"config": {"w": w}})).await;
                        r.status
                    })
                })
                .collect();
            let (app2, sys2) = (app.clone(), sys.clone());
            tasks.insert(
                2,
                tokio::spawn(async move {
                    app2.api
                        .send(
                            Call::new(Method::DELETE, format!("/v1/systems/{sys2}"))
                                .key(&app2.tenant(t).key),
                        )
                        .await
                        .status
                }),
            );
            let statuses: Vec<StatusCode> = futures::future::join_all(tasks)
                .await
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(statuses[2], StatusCode::NO_CONTENT);
            for s in statuses {
                assert!(
                    [
                        StatusCode::CREATED,
                        StatusCode::NOT_FOUND,
                        StatusCode::NO_CONTENT
                    ]
                    .contains(&s),
                    "{s}"
                );
            }
            assert!(
                app.raw_configs(t, &sys).await.is_empty(),
                "tenant {t}: configurations of a deleted system survived"
            );
        }
    }
}
