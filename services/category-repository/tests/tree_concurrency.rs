//! Concurrency of tree changes against the real MongoDB wire server: racing subtree moves never
//! produce a cycle (at most one of two mutually exclusive moves commits), concurrent inserts keep
//! sibling positions contiguous, and a cascade delete racing an insert below it leaves no orphan.
//! After every round the tenant's stored nodes are read raw and checked as a whole.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{spawn, TestApp};

/// One round: builds X and Y (each with a child) in the shape `variant` picks, then races
/// "X under Y'" against "Y under X'" where Y' is in Y's subtree and X' in X's — together they
/// would close a cycle. Returns how many moves succeeded.
async fn race_round(app: &TestApp, t: usize, round: usize) -> usize {
    let tag = format!("r{round}");
    let (x, y) = match round % 3 {
        // Siblings under one root.
        0 => {
            let r = app.create(t, &format!("{tag}-root"), None).await;
            (
                app.create(t, &format!("{tag}-x"), Some(&r)).await,
                app.create(t, &format!("{tag}-y"), Some(&r)).await,
            )
        }
        // Two roots.
        1 => (
            app.create(t, &format!("{tag}-x"), None).await,
            app.create(t, &format!("{tag}-y"), None).await,
        ),
        // Different branches at different depths.
        _ => {
            let r1 = app.create(t, &format!("{tag}-r1"), None).await;
            let r2 = app.create(t, &format!("{tag}-r2"), None).await;
            let mid = app.create(t, &format!("{tag}-mid"), Some(&r2)).await;
            (
                app.create(t, &format!("{tag}-x"), Some(&r1)).await,
                app.create(t, &format!("{tag}-y"), Some(&mid)).await,
            )
        }
    };
    let x_child = app.create(t, &format!("{tag}-x-child"), Some(&x)).await;
    let y_child = app.create(t, &format!("{tag}-y-child"), Some(&y)).await;
    // Alternate between targeting the nodes themselves and their children (a deep cycle).
    let (x_target, y_target) = if round % 2 == 0 {
        (y.clone(), x.clone())
    } else {
        (y_child.clone(), x_child.clone())
    };
    let before = app.check_tree(t).await.len();

    let (a1, a2) = (app.api.clone(), app.api.clone());
    let (t1, t2) = (app.tenant(t).clone(), app.tenant(t).clone());
    let (p1, p2) = (
        format!("/v1/categories/{x}/move"),
        format!("/v1/categories/{y}/move"),
    );
    let m1 = tokio::spawn(async move {
        a1.as_tenant(&t1, Method::POST, &p1, Some(json!({"parentId": x_target})))
            .await
    });
    let m2 = tokio::spawn(async move {
        a2.as_tenant(&t2, Method::POST, &p2, Some(json!({"parentId": y_target})))
            .await
    });
    let (r1, r2) = (m1.await.unwrap(), m2.await.unwrap());
    for r in [&r1, &r2] {
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::CONFLICT,
            "round {round}: unexpected {} {}",
            r.status,
            r.body
        );
        if r.status == StatusCode::CONFLICT {
            assert!(r.is_problem());
        }
    }
    let ok = [&r1, &r2]
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(ok <= 1, "round {round}: both moves committed");

    let nodes = app.check_tree(t).await;
    assert_eq!(
        nodes.len(),
        before,
        "round {round}: nodes appeared or vanished"
    );
    // The stored tree is the one the winner's answer describes.
    let id = |s: &str| s.parse::<uuid::Uuid>().unwrap();
    if r1.status == StatusCode::OK {
        assert_eq!(
            nodes[&id(&x)].parent.map(|p| p.to_string()),
            Some(r1.str("parentId"))
        );
    }
    if r2.status == StatusCode::OK {
        assert_eq!(
            nodes[&id(&y)].parent.map(|p| p.to_string()),
            Some(r2.str("parentId"))
        );
    }
    if ok == 0 {
        // Neither moved: both are where they were.
        assert!(!nodes[&id(&x)].ancestors.contains(&id(&y)));
        assert!(!nodes[&id(&y)].ancestors.contains(&id(&x)));
    }
    ok
}

async fn racing_moves(tier_dedicated: bool) {
    let app = spawn(1, if tier_dedicated { &[0] } else { &[] }).await;
    let mut committed = 0;
    for round in 0..10 {
        committed += race_round(&app, 0, round).await;
    }
    // A scheme that refuses every contended move would be safe but useless: the loser must
    // only lose to a winner.
    assert!(
        committed >= 5,
        "only {committed} of 10 rounds moved anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_subtree_moves_never_produce_a_cycle_standard() {
    racing_moves(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_subtree_moves_never_produce_a_cycle_dedicated() {
    racing_moves(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_and_moves_keep_sibling_positions_contiguous() {
    let app = spawn(1, &[]).await;
    let parent = app.create(0, "parent", None).await;
    let other = app.create(0, "other", None).await;
    let movers = [
        app.create(0, "m0", Some(&other)).await,
        app.create(0, "m1", Some(&other)).await,
    ];
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (api, t, parent) = (app.api.clone(), app.tenant(0).clone(), parent.clone());
        tasks.push(tokio::spawn(async move {
            // Half insert at the front, half append: both shift or extend the same set.
            let body = if i % 2 == 0 {
                json!({"name": format!("c{i}"), "parentId": parent, "position": 0})
            } else {
                json!({"name": format!("c{i}"), "parentId": parent})
            };
            api.as_tenant(&t, Method::POST, "/v1/categories", Some(body))
                .await
        }));
    }
    for m in &movers {
        let (api, t, parent, m) = (
            app.api.clone(),
            app.tenant(0).clone(),
            parent.clone(),
            m.clone(),
        );
        tasks.push(tokio::spawn(async move {
            api.as_tenant(
                &t,
                Method::POST,
                &format!("/v1/categories/{m}/move"),
                Some(json!({"parentId": parent, "position": 0})),
            )
            .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let r = task.await.unwrap();
        // Every change either committed or was told to retry; none broke the tree.
        assert!(
            r.status == StatusCode::CREATED
                || r.status == StatusCode::OK
                || r.status == StatusCode::CONFLICT,
            "{} {}",
            r.status,
            r.body
        );
        if r.status != StatusCode::CONFLICT {
            created += 1;
        }
    }
    let nodes = app.check_tree(0).await;
    let under_parent = nodes
        .values()
        .filter(|n| n.parent.map(|p| p.to_string()) == Some(parent.clone()))
        .count();
    assert_eq!(under_parent, created);
    assert_eq!(app.child_names(0, Some(&parent)).await.len(), created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_delete_racing_an_insert_below_leaves_no_orphan() {
    let app = spawn(1, &[0]).await;
    for round in 0..4 {
        let root = app.create(0, &format!("r{round}"), None).await;
        let mid = app.create(0, "mid", Some(&root)).await;
        let leaf = app.create(0, "leaf", Some(&mid)).await;
        let (api, t) = (app.api.clone(), app.tenant(0).clone());
        let del_path = format!("/v1/categories/{root}?cascade=true");
        let del =
            tokio::spawn(async move { api.as_tenant(&t, Method::DELETE, &del_path, None).await });
        let (api, t) = (app.api.clone(), app.tenant(0).clone());
        let ins = tokio::spawn(async move {
            api.as_tenant(
                &t,
                Method::POST,
                "/v1/categories",
                Some(json!({"name": "late", "parentId": leaf})),
            )
            .await
        });
        let (d, i) = (del.await.unwrap(), ins.await.unwrap());
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
        assert!(
            [
                StatusCode::CREATED,
                StatusCode::NOT_FOUND,
                StatusCode::CONFLICT
            ]
            .contains(&i.status),
            "{} {}",
            i.status,
            i.body
        );
        // Whatever the order, the subtree is gone as a whole: no orphan survives.
        let nodes = app.check_tree(0).await;
        assert!(nodes.is_empty(), "round {round}: left {nodes:?}");
        assert_eq!(app.category(0, &mid).await.status, StatusCode::NOT_FOUND);
    }
}
