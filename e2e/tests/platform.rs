//! The platform end to end, through its public surfaces only: the Kubernetes API (Tenants,
//! DatabaseServices), kubectl, and the services' HTTP APIs. The same scenarios run against the
//! local platform (`make test`) and a kind cluster (`make e2e-kind`); see the crate docs.
//!
//! The scenarios run one at a time (`SERIAL`): some restart the operator or roll a service,
//! which would disturb the others.

// A std Mutex guard held across awaits serialises whole scenarios; each runs on its own runtime
// thread, so holding it cannot deadlock a runtime.
#![allow(clippy::await_holding_lock, clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use prismicx_e2e::*;
use serde_json::json;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn platform() -> &'static Target {
    target(env!("CARGO_BIN_EXE_prismicx-e2e-node"))
}

/// A Ready tenant of `tier` and a key for it.
async fn ready_tenant(t: &Target, prefix: &str, tier: &str) -> (String, String) {
    let name = unique(prefix);
    create_tenant(t, &name, json!({"tier": tier}))
        .await
        .unwrap();
    wait_tenant(t, &name, "True", None).await.unwrap();
    let key = issue_key(t, &name).await.unwrap();
    (name, key)
}

#[tokio::test]
async fn the_services_become_ready_and_kubectl_shows_the_printer_columns() {
    let _s = serial();
    let t = platform();
    for name in t.urls.keys() {
        let ds = database_service(t, name).await.unwrap();
        assert_eq!(
            condition(&ds, "Available").map(|c| c.0).as_deref(),
            Some("True"),
            "{name}: {}",
            ds["status"]
        );
        let ready = reqwest::get(format!("{}/readyz", t.url(name)))
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{name}");
    }

    let (name, _) = ready_tenant(t, "cols-", "standard").await;
    let out = std::process::Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(&t.kubeconfig)
        .args(["-n", &t.namespace, "get", "tenants"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap_or_default().to_string();
    // The columns the CRD declares (crds/), as kubectl prints them.
    for col in tenant_printer_columns() {
        let col = col.to_uppercase();
        assert!(header.contains(&col), "{col} not in {header:?}");
    }
    let row = text.lines().find(|l| l.starts_with(&name)).unwrap();
    assert!(row.contains("standard"), "{row}");
    delete_tenant(t, &name).await.unwrap();
}

/// The printer column names of the Tenant CRD in `crds/` (kubectl adds NAME and AGE itself when
/// the CRD does not declare them).
fn tenant_printer_columns() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/tenants.prismicx.io.yaml"
    );
    let crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(!columns.is_empty());
    columns
}

#[tokio::test]
async fn every_service_serves_both_tiers_and_no_key_crosses_tenants() {
    let _s = serial();
    let t = platform();
    let (standard, s_key) = ready_tenant(t, "std-", "standard").await;
    let (dedicated, d_key) = ready_tenant(t, "ded-", "dedicated").await;
    // Each tenant's resources get names of their own, so a read of the other's is a real probe.
    let (s_probes, d_probes) = (probes(&unique("s")), probes(&unique("d")));
    for (s_probe, d_probe) in s_probes.iter().zip(&d_probes) {
        let probe = s_probe;
        let mut urls = Vec::new();
        for (p, key) in [(s_probe, &s_key), (d_probe, &d_key)] {
            let url = create_probe(t, p, key).await.unwrap();
            assert_eq!(status_of(&url, key, None).await.unwrap(), 200, "{url}");
            urls.push(url);
        }
        // Each tenant's key against the other's resource, and naming the other tenant.
        for (url, attacker, victim) in [
            (&urls[0], &d_key, &standard),
            (&urls[1], &s_key, &dedicated),
        ] {
            assert_eq!(
                status_of(url, attacker, None).await.unwrap(),
                404,
                "{}: another tenant's key read {url}",
                probe.service
            );
            assert_eq!(
                status_of(url, attacker, Some(victim)).await.unwrap(),
                403,
                "{}: X-Tenant with another tenant's key",
                probe.service
            );
        }
        // The platform key reaches each resource through X-Tenant.
        assert_eq!(
            status_of(&urls[1], &t.platform_key, Some(&dedicated))
                .await
                .unwrap(),
            200
        );
    }
    delete_tenant(t, &standard).await.unwrap();
    delete_tenant(t, &dedicated).await.unwrap();
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_everywhere_and_served_again_when_resumed() {
    let _s = serial();
    let t = platform();
    let (name, key) = ready_tenant(t, "sus-", "dedicated").await;
    let lists: Vec<String> = [
        ("tenant-mgmt-service", "/v1/settings"),
        ("user-data-service", "/v1/users"),
        ("task-repo-service", "/v1/tasks"),
        ("category-repository-service", "/v1/categories"),
        ("management-system-repo", "/v1/systems"),
    ]
    .iter()
    .map(|(s, p)| format!("{}{p}", t.url(s)))
    .collect();
    for u in &lists {
        assert_eq!(status_of(u, &key, None).await.unwrap(), 200, "{u}");
    }
    // Suspending: Ready stays True (provisioned), its reason says access is suspended, and every
    // list is refused; resuming serves them again.
    for (suspended, reason, want, what) in [
        (true, "Suspended", 403, "refused"),
        (false, "Provisioned", 200, "served"),
    ] {
        patch_tenant(t, &name, json!({ "suspended": suspended }))
            .await
            .unwrap();
        wait_tenant(t, &name, "True", Some(reason)).await.unwrap();
        for u in &lists {
            eventually(&format!("{u} {what}"), Duration::from_secs(30), || async {
                Ok((status_of(u, &key, None).await? == want).then_some(()))
            })
            .await
            .unwrap();
        }
    }
    delete_tenant(t, &name).await.unwrap();
}

#[tokio::test]
async fn deletion_with_retain_keeps_the_data_and_with_delete_removes_it() {
    let _s = serial();
    let t = platform();
    let (name, key) = ready_tenant(t, "ret-", "standard").await;
    let tag = unique("r");
    let mut created = Vec::new();
    for probe in probes(&tag) {
        created.push(create_probe(t, &probe, &key).await.unwrap());
    }

    // Retain (the default): access goes, data stays; the same name gets it back.
    delete_tenant(t, &name).await.unwrap();
    let registry = format!("{}/v1/tenants/{name}", t.url("tenant-mgmt-service"));
    assert_eq!(
        status_of(&registry, &t.platform_key, None).await.unwrap(),
        404
    );
    create_tenant(
        t,
        &name,
        json!({"tier": "standard", "deletionPolicy": "Delete"}),
    )
    .await
    .unwrap();
    wait_tenant(t, &name, "True", None).await.unwrap();
    let key = issue_key(t, &name).await.unwrap();
    for url in &created {
        assert_eq!(
            status_of(url, &key, None).await.unwrap(),
            200,
            "{url} kept through Retain"
        );
    }

    // Delete: everything goes; a tenant of the same name starts empty.
    delete_tenant(t, &name).await.unwrap();
    create_tenant(t, &name, json!({"tier": "standard"}))
        .await
        .unwrap();
    wait_tenant(t, &name, "True", None).await.unwrap();
    let key = issue_key(t, &name).await.unwrap();
    for url in &created {
        assert_eq!(
            status_of(url, &key, None).await.unwrap(),
            404,
            "{url} survived deletionPolicy Delete"
        );
    }
    patch_tenant(t, &name, json!({"deletionPolicy": "Delete"}))
        .await
        .unwrap();
    delete_tenant(t, &name).await.unwrap();
}

#[tokio::test]
async fn a_tenant_whose_operator_was_killed_mid_provisioning_completes_after_restart() {
    let _s = serial();
    let t = platform();
    let name = unique("crash-");
    create_tenant(t, &name, json!({"tier": "dedicated"}))
        .await
        .unwrap();
    // Kill the operator as soon as it has started on the tenant (its finalizer is on).
    eventually("provisioning started", Duration::from_secs(60), || async {
        Ok(tenant(t, &name)
            .await?
            .filter(|o| {
                o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
            })
            .map(|_| ()))
    })
    .await
    .unwrap();
    t.kill_operator().await.unwrap();
    let at_kill = tenant(t, &name).await.unwrap().unwrap();
    eprintln!(
        "operator killed with the tenant at Ready={:?}",
        condition(&at_kill, "Ready")
    );
    t.start_operator().await.unwrap();
    wait_tenant(t, &name, "True", None).await.unwrap();
    let key = issue_key(t, &name).await.unwrap();
    for probe in probes(&unique("c")) {
        let url = create_probe(t, &probe, &key).await.unwrap();
        assert_eq!(status_of(&url, &key, None).await.unwrap(), 200, "{url}");
    }
    patch_tenant(t, &name, json!({"deletionPolicy": "Delete"}))
        .await
        .unwrap();
    delete_tenant(t, &name).await.unwrap();
}

/// `http_requests_total` of `route` in the service's `/metrics` (0 when absent); an error while
/// the service is not listening (it is being restarted).
async fn requests_of(base: &str, route: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total") && l.contains(&format!("route=\"{route}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

#[tokio::test]
async fn changing_a_database_service_config_rolls_its_processes() {
    let _s = serial();
    let t = platform();
    let (name, key) = ready_tenant(t, "roll-", "standard").await;
    let svc = "task-repo-service";
    let base = t.url(svc);
    for _ in 0..5 {
        assert_eq!(
            status_of(&format!("{base}/v1/tasks"), &key, None)
                .await
                .unwrap(),
            200
        );
    }
    assert!(requests_of(&base, "/v1/tasks").await.unwrap() >= 5);
    let before = database_service(t, svc).await.unwrap();
    let level = if before["spec"]["logLevel"] == "DEBUG" {
        "INFO"
    } else {
        "DEBUG"
    };

    patch_database_service(t, svc, json!({"logLevel": level}))
        .await
        .unwrap();
    // The pod template changes (its config hash), and a fresh process serves: its request
    // counters start again from zero.
    eventually("the service rolled", Duration::from_secs(120), || async {
        let ds = database_service(t, svc).await?;
        let rolled = ds["status"]["configHash"] != before["status"]["configHash"]
            && condition(&ds, "Available").is_some_and(|c| c.0 == "True")
            && requests_of(&base, "/v1/tasks").await? < 5;
        Ok(rolled.then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        status_of(&format!("{base}/v1/tasks"), &key, None)
            .await
            .unwrap(),
        200
    );
    delete_tenant(t, &name).await.unwrap();
}

/// Hostile callers against every service, a victim in each tier: another tenant's key by id,
/// in lists and deleting; the platform key without `X-Tenant`; a guessed key; the key of a
/// tenant that was deleted (a refused key is 401, or 429 once the caller has failed too often). Each is refused with its status, and the victim's resources read
/// back unchanged afterwards.
#[tokio::test]
async fn hostile_callers_are_refused_by_every_service_and_change_nothing() {
    let _s = serial();
    let t = platform();
    let (standard, s_key) = ready_tenant(t, "vs-", "standard").await;
    let (dedicated, d_key) = ready_tenant(t, "vd-", "dedicated").await;
    let (attacker, a_key) = ready_tenant(t, "atk-", "standard").await;
    let mut victims = Vec::new();
    for (tag, key) in [(unique("vs"), &s_key), (unique("vd"), &d_key)] {
        for probe in probes(&tag) {
            let url = create_probe(t, &probe, key).await.unwrap();
            let before = call(reqwest::Method::GET, &url, key, None, None)
                .await
                .unwrap();
            assert_eq!(before.status, 200, "{url}");
            victims.push((probe, url, key.clone(), before.body));
        }
    }
    let guessed = "pxk_0000000000000000000000000000000000000000";
    for (probe, url, _, body) in &victims {
        let service = probe.service;
        assert_eq!(
            status_of(url, &a_key, None).await.unwrap(),
            404,
            "{service}: read by id"
        );
        let del = call(reqwest::Method::DELETE, url, &a_key, None, None)
            .await
            .unwrap();
        assert!(
            // 400 or 428: a write that needs If-Match is refused before the lookup.
            [400, 403, 404, 405, 428].contains(&del.status),
            "{service}: another tenant's DELETE answered {}",
            del.status
        );
        assert_eq!(
            status_of(url, &t.platform_key, None).await.unwrap(),
            400,
            "{service}: the platform key must name a tenant"
        );
        // 401, or 429 once this client has failed too often (the failed-authentication limit).
        let guess = status_of(url, guessed, None).await.unwrap();
        assert!(
            [401, 429].contains(&guess),
            "{service}: a guessed key answered {guess}"
        );
        if let Some(coll) = &probe.read_base {
            let list = call(
                reqwest::Method::GET,
                &format!("{}{coll}", t.url(service)),
                &a_key,
                None,
                None,
            )
            .await
            .unwrap();
            assert_eq!(list.status, 200, "{service}: list");
            let id = body["id"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty() && !list.body.to_string().contains(id),
                "{service}: another tenant's list shows the victim's {id}"
            );
        }
    }
    // The attacker's tenant is deleted: its key stops working everywhere.
    delete_tenant(t, &attacker).await.unwrap();
    for (probe, url, _, _) in &victims {
        eventually(
            &format!("{}: a deleted tenant's key refused", probe.service),
            Duration::from_secs(30),
            || async {
                Ok([401, 429]
                    .contains(&status_of(url, &a_key, None).await?)
                    .then_some(()))
            },
        )
        .await
        .unwrap();
    }
    for (probe, url, key, before) in &victims {
        let after = call(reqwest::Method::GET, url, key, None, None)
            .await
            .unwrap();
        assert_eq!(after.status, 200, "{}", probe.service);
        assert_eq!(
            &after.body, before,
            "{}: the victim's resource changed",
            probe.service
        );
    }
    delete_tenant(t, &standard).await.unwrap();
    delete_tenant(t, &dedicated).await.unwrap();
}

/// The ids a vector-store query answered, in rank order.
fn hit_ids(reply: &Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_str().map(String::from))
        .collect()
}

/// `POST <collection>/query` for the point nearest `[1, 0, 0]` whose payload has `lang`.
async fn query_lang(base: &str, collection: &str, key: &str, lang: &str) -> Reply {
    call(
        reqwest::Method::POST,
        &format!("{base}/v1/collections/{collection}/query"),
        key,
        None,
        Some(json!({"vector": [1.0, 0.0, 0.0], "limit": 10, "filter": {"lang": lang}})),
    )
    .await
    .unwrap()
}

/// vector-store-service in both tiers: a tenant creates a collection, upserts points and finds
/// them with a filtered query; another tenant's key gets 404 for it (403 naming the owner);
/// after the service restarts (its DatabaseService's pod template changes: a new process, or on
/// kind a new pod on the same claim) the points are still there; deleting points and the
/// collection removes them.
#[tokio::test]
async fn the_vector_store_keeps_each_tenants_vectors_apart_and_across_a_restart() {
    let _s = serial();
    let t = platform();
    let svc = "vector-store-service";
    let base = t.url(svc);
    let post = reqwest::Method::POST;
    let (standard, s_key) = ready_tenant(t, "vec-", "standard").await;
    let (dedicated, d_key) = ready_tenant(t, "vecd-", "dedicated").await;
    let tenants = [
        (standard.as_str(), s_key.as_str(), unique("s")),
        (dedicated.as_str(), d_key.as_str(), unique("d")),
    ];
    for (tenant, key, collection) in &tenants {
        let created = call(
            post.clone(),
            &format!("{base}/v1/collections"),
            key,
            None,
            Some(json!({"name": collection, "dimension": 3, "metric": "cosine"})),
        )
        .await
        .unwrap();
        assert_eq!(created.status, 201, "{tenant}: {}", created.body);
        let upserted = call(
            reqwest::Method::PUT,
            &format!("{base}/v1/collections/{collection}/points"),
            key,
            None,
            Some(json!({"points": [
                {"id": "a", "vector": [1.0, 0.0, 0.0], "payload": {"lang": "en"}},
                {"id": "b", "vector": [0.9, 0.1, 0.0], "payload": {"lang": "de"}},
                {"id": "c", "vector": [0.0, 1.0, 0.0], "payload": {"lang": "de"}},
            ]})),
        )
        .await
        .unwrap();
        assert_eq!(upserted.status, 200, "{tenant}: {}", upserted.body);
        let found = query_lang(&base, collection, key, "de").await;
        assert_eq!(found.status, 200, "{tenant}: {}", found.body);
        assert_eq!(hit_ids(&found), ["b", "c"], "{tenant}: {}", found.body);
    }

    // Each tenant's key against the other's collection, and naming the other tenant.
    for ((_, _, collection), (_, attacker, _), (victim, _, _)) in [
        (&tenants[0], &tenants[1], &tenants[0]),
        (&tenants[1], &tenants[0], &tenants[1]),
    ] {
        let url = format!("{base}/v1/collections/{collection}");
        assert_eq!(status_of(&url, attacker, None).await.unwrap(), 404, "{url}");
        assert_eq!(
            query_lang(&base, collection, attacker, "de").await.status,
            404,
            "another tenant's key queried {collection}"
        );
        assert_eq!(
            status_of(&url, attacker, Some(victim)).await.unwrap(),
            403,
            "X-Tenant with another tenant's key"
        );
    }

    // A restart: the pod template changes, a fresh process serves (its counters start again),
    // and every point is still there.
    let route = "/v1/collections/{name}/query";
    let served_before = requests_of(&base, route).await.unwrap();
    assert!(served_before >= 2, "{served_before} queries counted");
    let before = database_service(t, svc).await.unwrap();
    let mut env: Vec<serde_json::Value> = before["spec"]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    env.retain(|e| e["name"] != "E2E_RESTART");
    env.push(json!({"name": "E2E_RESTART", "value": unique("r")}));
    patch_database_service(t, svc, json!({"env": env}))
        .await
        .unwrap();
    eventually(
        "vector-store restarted",
        Duration::from_secs(180),
        || async {
            let ds = database_service(t, svc).await?;
            let restarted = ds["status"]["configHash"] != before["status"]["configHash"]
                && condition(&ds, "Available").is_some_and(|c| c.0 == "True")
                && requests_of(&base, route).await? < served_before;
            Ok(restarted.then_some(()))
        },
    )
    .await
    .unwrap();
    for (tenant, key, collection) in &tenants {
        let found = query_lang(&base, collection, key, "de").await;
        assert_eq!(found.status, 200, "{tenant}: {}", found.body);
        assert_eq!(hit_ids(&found), ["b", "c"], "{tenant} after the restart");
    }

    // Deleting a point, then the collection.
    for (tenant, key, collection) in &tenants {
        let deleted = call(
            post.clone(),
            &format!("{base}/v1/collections/{collection}/points/delete"),
            key,
            None,
            Some(json!({"ids": ["b"]})),
        )
        .await
        .unwrap();
        assert_eq!(deleted.status, 200, "{tenant}: {}", deleted.body);
        assert_eq!(deleted.body["deleted"], 1, "{tenant}: {}", deleted.body);
        assert_eq!(
            hit_ids(&query_lang(&base, collection, key, "de").await),
            ["c"]
        );
        let url = format!("{base}/v1/collections/{collection}");
        let gone = call(reqwest::Method::DELETE, &url, key, None, None)
            .await
            .unwrap();
        assert_eq!(gone.status, 204, "{tenant}: {}", gone.body);
        assert_eq!(status_of(&url, key, None).await.unwrap(), 404);
    }
    delete_tenant(t, &standard).await.unwrap();
    delete_tenant(t, &dedicated).await.unwrap();
}
