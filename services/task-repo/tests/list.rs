//! Listing: every sort paginated at several page sizes visits each task exactly once and in
//! the order the sort defines (computed here from the tasks themselves), every filter alone
//! and combined, and every bad parameter named.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use support::{ids, spawn, TestApp};

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

fn rank(p: &Value) -> i32 {
    ["low", "normal", "high", "urgent"]
        .iter()
        .position(|x| p == x)
        .unwrap() as i32
}

/// The order `sort` defines, from the tasks' own fields: tasks without a due date after every
/// dated one for `dueAt`, ties broken by id, everything reversed for `-…`.
fn expected_order(tasks: &[Value], sort: &str) -> Vec<String> {
    let (desc, field) = match sort.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, sort),
    };
    let key = |t: &Value| -> (i64, i64, uuid::Uuid) {
        let id = uuid::Uuid::parse_str(t["id"].as_str().unwrap()).unwrap();
        let k = match field {
            "createdAt" | "updatedAt" => (0, time(&t[field]).unwrap().timestamp_millis()),
            "dueAt" => match time(&t["dueAt"]) {
                Some(d) => (0, d.timestamp_millis()),
                None => (1, 0),
            },
            "priority" => (0, i64::from(rank(&t["priority"]))),
            _ => unreachable!(),
        };
        (k.0, k.1, id)
    };
    let mut sorted = tasks.to_vec();
    sorted.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    ids(&sorted)
}

/// Twelve tasks with ties in every sort key (same due date, same priority, some created in
/// the same millisecond), some without a due date, some updated after creation.
async fn seed(app: &TestApp) -> Vec<Value> {
    let base = DateTime::parse_from_rfc3339("2031-06-01T09:00:00Z").unwrap();
    let mut created = Vec::new();
    let bodies: Vec<Value> = (0..12)
        .map(|i| {
            let priority = ["low", "normal", "high", "urgent"][i % 4];
            let mut b = json!({ "title": format!("task {i}"), "priority": priority });
            if i % 3 != 0 {
                // Two tasks share each due date.
                b["dueAt"] = json!((base + Duration::hours((i / 2) as i64)).to_rfc3339());
            }
            b
        })
        .collect();
    // Half of them created concurrently, so several share a createdAt millisecond.
    let (first, second) = bodies.split_at(6);
    for b in first {
        created.push(app.create(0, b.clone()).await);
    }
    let batch = futures::future::join_all(second.iter().map(|b| app.create(0, b.clone()))).await;
    created.extend(batch);
    // Touch a few so updatedAt differs from createdAt order.
    for t in [&created[0], &created[5], &created[2]] {
        let r = app
            .patch_if(
                0,
                &format!("/v1/tasks/{}", t["id"].as_str().unwrap()),
                1,
                json!({"description": "touched"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    app.list_all(0, "", 200).await
}

#[tokio::test]
async fn pagination_through_every_sort_visits_each_task_exactly_once_in_order() {
    let app = spawn(1, &[]).await;
    let tasks = seed(&app).await;
    assert_eq!(tasks.len(), 12);
    let all: HashSet<String> = ids(&tasks).into_iter().collect();
    for sort in [
        "createdAt",
        "-createdAt",
        "dueAt",
        "-dueAt",
        "priority",
        "-priority",
        "updatedAt",
        "-updatedAt",
    ] {
        let want = expected_order(&tasks, sort);
        for limit in [1, 5, 12, 200] {
            let got = ids(&app.list_all(0, &format!("sort={sort}"), limit).await);
            assert_eq!(got.len(), 12, "sort={sort} limit={limit}");
            assert_eq!(got.iter().cloned().collect::<HashSet<_>>(), all);
            assert_eq!(got, want, "sort={sort} limit={limit}");
        }
    }
    // The default order is createdAt.
    assert_eq!(
        ids(&app.list_all(0, "", 5).await),
        expected_order(&tasks, "createdAt")
    );
    // Tasks without a due date come after every dated one with dueAt, first with -dueAt.
    let by_due = app.list_all(0, "sort=dueAt", 200).await;
    let undated = by_due.iter().position(|t| t["dueAt"].is_null()).unwrap();
    assert!(by_due[undated..].iter().all(|t| t["dueAt"].is_null()));
    assert!(by_due[..undated].iter().all(|t| t["dueAt"].is_string()));
}

#[tokio::test]
async fn a_cursor_works_only_with_the_sort_it_was_made_for() {
    let app = spawn(1, &[]).await;
    for i in 0..3 {
        app.create_titled(0, &format!("t{i}")).await;
    }
    let r = app.get(0, "/v1/tasks?sort=-dueAt&limit=1").await;
    let cursor = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = app
        .get(0, &format!("/v1/tasks?sort=dueAt&cursor={cursor}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["cursor"]);
    let r = app.get(0, &format!("/v1/tasks?cursor={cursor}")).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "default sort is createdAt"
    );
    let r = app
        .get(0, &format!("/v1/tasks?sort=-dueAt&cursor={cursor}"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    // The last page has no nextCursor.
    assert!(r.body.get("nextCursor").is_none());
}

#[tokio::test]
async fn filters_select_exactly_the_matching_tasks() {
    let app = spawn(1, &[]).await;
    let past = (Utc::now() - Duration::days(2)).to_rfc3339();
    let soon = (Utc::now() + Duration::days(2)).to_rfc3339();
    let later = (Utc::now() + Duration::days(30)).to_rfc3339();
    // (title, body extras, transitions to apply)
    let specs: Vec<(&str, Value, &[&str])> = vec![
        (
            "Quarterly REPORT",
            json!({"priority": "high", "assignee": "u1", "labels": ["finance", "q2"], "dueAt": past}),
            &[],
        ),
        (
            "report draft",
            json!({"priority": "low", "assignee": "u2", "labels": ["finance"], "dueAt": past}),
            &["in_progress", "done"],
        ),
        (
            "a.b (c)+ [x]",
            json!({"priority": "urgent", "assignee": "u1", "labels": ["q2"], "dueAt": soon}),
            &["in_progress"],
        ),
        (
            "ab c",
            json!({"priority": "normal", "labels": ["Finance", "q2", "ops"], "dueAt": later}),
            &["cancelled"],
        ),
        (
            "plain",
            json!({"priority": "normal", "assignee": "u3", "dueAt": past}),
            &["in_progress"],
        ),
        ("no due", json!({"assignee": "u1"}), &[]),
    ];
    let mut by_title = std::collections::HashMap::new();
    for (title, extra, path) in &specs {
        let mut body = extra.clone();
        body["title"] = json!(title);
        let id = app.create(0, body).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (i, to) in path.iter().enumerate() {
            assert_eq!(
                app.transition(0, &id, i as i64 + 1, to).await.status,
                StatusCode::OK
            );
        }
        by_title.insert(*title, id);
    }
    let select = |titles: &[&str]| -> HashSet<String> {
        titles.iter().map(|t| by_title[t].clone()).collect()
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("status=todo".into(), vec!["Quarterly REPORT", "no due"]),
        (
            "status=todo,in_progress".into(),
            vec!["Quarterly REPORT", "no due", "a.b (c)+ [x]", "plain"],
        ),
        (
            "status=done&status=cancelled".into(),
            vec!["report draft", "ab c"],
        ),
        (
            "priority=high,urgent".into(),
            vec!["Quarterly REPORT", "a.b (c)+ [x]"],
        ),
        ("priority=normal".into(), vec!["ab c", "plain", "no due"]),
        (
            "assignee=u1".into(),
            vec!["Quarterly REPORT", "a.b (c)+ [x]", "no due"],
        ),
        ("assignee=U1".into(), vec![]),
        (
            "label=finance".into(),
            vec!["Quarterly REPORT", "report draft", "ab c"],
        ),
        ("label=FINANCE,q2".into(), vec!["Quarterly REPORT", "ab c"]),
        ("label=finance&label=q2&label=ops".into(), vec!["ab c"]),
        (
            format!("dueBefore={}", urlenc(&soon)),
            vec!["Quarterly REPORT", "report draft", "plain"],
        ),
        (
            format!("dueAfter={}", urlenc(&soon)),
            vec!["a.b (c)+ [x]", "ab c"],
        ),
        (
            format!("dueAfter={}&dueBefore={}", urlenc(&past), urlenc(&later)),
            vec!["Quarterly REPORT", "report draft", "a.b (c)+ [x]", "plain"],
        ),
        ("overdue=true".into(), vec!["Quarterly REPORT", "plain"]),
        (
            "overdue=false".into(),
            vec!["report draft", "a.b (c)+ [x]", "ab c", "no due"],
        ),
        ("q=report".into(), vec!["Quarterly REPORT", "report draft"]),
        ("q=RePoRt%20D".into(), vec!["report draft"]),
        // Regex metacharacters are taken literally.
        ("q=.".into(), vec!["a.b (c)+ [x]"]),
        ("q=a.b%20(c)%2B%20%5Bx%5D".into(), vec!["a.b (c)+ [x]"]),
        ("q=.*".into(), vec![]),
        ("q=b%20(".into(), vec!["a.b (c)+ [x]"]),
        ("q=%5E".into(), vec![]),
        ("q=%5Ba".into(), vec![]),
        (
            "q=%20%20".into(),
            vec![
                "Quarterly REPORT",
                "report draft",
                "a.b (c)+ [x]",
                "ab c",
                "plain",
                "no due",
            ],
        ),
        // Combined.
        (
            "status=todo,in_progress&assignee=u1&label=q2".into(),
            vec!["Quarterly REPORT", "a.b (c)+ [x]"],
        ),
        (
            "overdue=true&priority=high".into(),
            vec!["Quarterly REPORT"],
        ),
    ];
    for (query, titles) in cases {
        for limit in [1, 50] {
            let got = app.list_all(0, &query, limit).await;
            let got_ids: Vec<String> = ids(&got);
            let set: HashSet<String> = got_ids.iter().cloned().collect();
            assert_eq!(set.len(), got_ids.len(), "{query}: duplicates");
            assert_eq!(set, select(&titles), "{query} (limit {limit})");
        }
    }
    // Filters and sorts combine, and pagination stays in order.
    let got = app
        .list_all(0, "status=todo,in_progress&sort=-priority", 1)
        .await;
    let ranks: Vec<i32> = got.iter().map(|t| rank(&t["priority"])).collect();
    let mut sorted = ranks.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ranks, sorted);
    assert_eq!(got.len(), 4);
    assert_eq!(
        got.iter()
            .map(|t| t["status"].as_str().unwrap())
            .filter(|s| *s == "done" || *s == "cancelled")
            .count(),
        0
    );
}

fn urlenc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn bad_list_parameters_are_400_naming_the_parameter() {
    let app = spawn(1, &[]).await;
    app.create_titled(0, "one").await;
    let long_q = format!("q={}", "x".repeat(201));
    app.expect_bad_queries(
        0,
        "/v1/tasks",
        &[
            ("foo=1", "foo"),
            ("tenantId=x", "tenantId"),
            ("tenant_id=x", "tenant_id"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=ten", "limit"),
            ("limit=-1", "limit"),
            ("limit=1&limit=2", "limit"),
            ("sort=title", "sort"),
            ("sort=createdAt&sort=dueAt", "sort"),
            ("status=open", "status"),
            ("status=todo,", "status"),
            ("priority=extreme", "priority"),
            ("label=", "label"),
            ("label=a,,b", "label"),
            ("assignee=", "assignee"),
            ("dueBefore=tomorrow", "dueBefore"),
            ("dueAfter=2030-13-01T00:00:00Z", "dueAfter"),
            ("overdue=yes", "overdue"),
            ("overdue=1", "overdue"),
            (long_q.as_str(), "q"),
            ("q=%00", "q"),
            ("cursor=garbage", "cursor"),
            ("cursor=e30", "cursor"),
            // A well-formed cursor of the priority sort with an impossible key.
            ("sort=priority&cursor=eyJzIjoicHJpb3JpdHkiLCJrIjo5OSwiaWQiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAifQ", "cursor"),
        ],
    )
    .await;
    // Valid extremes are accepted.
    for query in [
        "limit=1",
        "limit=200",
        "sort=-updatedAt",
        "overdue=false",
        "q=%E2%9C%93",
    ] {
        let r = app.get(0, &format!("/v1/tasks?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    }
}

#[tokio::test]
async fn ties_in_the_sort_key_are_broken_by_id() {
    // Same priority and same due date for all: the order is the id order, both ways.
    let app = spawn(1, &[]).await;
    for i in 0..5 {
        app.create(
            0,
            json!({"title": format!("t{i}"), "dueAt": "2032-01-01T00:00:00Z"}),
        )
        .await;
    }
    let all = app.list_all(0, "", 200).await;
    let mut by_id = ids(&all);
    by_id.sort_by(|a, b| {
        uuid::Uuid::parse_str(a)
            .unwrap()
            .cmp(&uuid::Uuid::parse_str(b).unwrap())
    });
    for sort in ["priority", "dueAt"] {
        assert_eq!(
            ids(&app.list_all(0, &format!("sort={sort}"), 2).await),
            by_id
        );
        let mut rev = by_id.clone();
        rev.reverse();
        assert_eq!(
            ids(&app.list_all(0, &format!("sort=-{sort}"), 2).await),
            rev
        );
    }
}
