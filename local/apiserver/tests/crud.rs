//! CRUD, patches, status, finalizers, cascade, selectors and schema validation through kube::Client.
#![allow(clippy::unwrap_used)]

mod common;

use common::MergePatch;

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::ResourceExt;
use prismicx_operator_api::{Tenant, TenantSpec, TenantStatus, Tier};
use serde_json::json;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn tenant(name: &str, tier: Tier) -> Tenant {
    Tenant::new(
        name,
        TenantSpec {
            tier,
            ..TenantSpec::default()
        },
    )
}

/// A server and its `Tenant` API in namespace `default`.
async fn tenants_api() -> (prismicx_local_apiserver::Handle, Api<Tenant>) {
    let (server, client) = common::start().await;
    (server, Api::default_namespaced(client))
}

/// The API server's refusal of a request that must fail.
fn refused<T: std::fmt::Debug>(r: kube::Result<T>) -> kube::core::Status {
    api_error(r.unwrap_err())
}

/// Fails the test unless `r` is an API error with status code `code`.
#[track_caller]
fn expect_code<T: std::fmt::Debug>(r: kube::Result<T>, code: u16) {
    let status = refused(r);
    assert_eq!(status.code, code, "{status:?}");
}

/// Creates the ConfigMap `name` with `owner_references` (a JSON list) as its owners.
async fn create_owned(cms: &Api<ConfigMap>, name: &str, owner_references: serde_json::Value) {
    let meta = json!({"metadata": {"name": name, "ownerReferences": owner_references}});
    let cm: ConfigMap = serde_json::from_value(meta).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
}

/// Fails the test unless `t`'s status carries `tenant_id` and its generation is `generation`.
#[track_caller]
fn expect_state(t: &Tenant, tenant_id: &str, generation: i64) {
    let status = t.status.as_ref().expect("a status");
    assert_eq!(status.tenant_id.as_deref(), Some(tenant_id));
    assert_eq!(t.metadata.generation, Some(generation));
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn tenants_dynamic(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("prismicx.io", "v1alpha1", "Tenant"));
    Api::namespaced_with(client.clone(), "default", &ar)
}

#[tokio::test]
async fn configmap_create_get_list_replace_delete() {
    let (_server, client) = common::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);

    let created = api
        .create(&PostParams::default(), &cm("a", &[("k", "v")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1 = created.resource_version().unwrap();

    let err = refused(api.create(&PostParams::default(), &cm("a", &[])).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "v");

    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list.items.iter().map(|c| c.name_any()).collect();
    assert_eq!(names, ["a", "b"]);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= rv1.parse::<u64>().unwrap());

    let mut changed = got.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.data.as_ref().unwrap()["k"], "w");
    assert_ne!(replaced.resource_version(), got.resource_version());

    // A replace carrying the old resourceVersion is a conflict.
    let err = refused(api.replace("a", &PostParams::default(), &changed).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = refused(api.get("a").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert!(api.get_opt("a").await.unwrap().is_none());

    // Namespaces must exist.
    let missing: Api<ConfigMap> = Api::namespaced(api.clone().into_client(), "nope");
    let err = refused(missing.create(&PostParams::default(), &cm("x", &[])).await);
    assert_eq!(err.code, 404);
    assert!(
        err.message.contains("namespaces \"nope\" not found"),
        "{}",
        err.message
    );

    // generateName, and a dry run that stores nothing.
    let mut generated = cm("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &cm("dry", &[])).await.unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn secrets_fold_string_data() {
    let (_server, client) = common::start().await;
    let api: Api<Secret> = Api::default_namespaced(client);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "stringData": {"password": "hunter2"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    assert!(created.string_data.is_none());
    assert_eq!(created.data.unwrap()["password"].0, b"hunter2");
}

#[tokio::test]
async fn tenant_typed_crud_with_defaults_and_printer_fields() {
    let (_server, client) = common::start().await;
    let api: Api<Tenant> = Api::default_namespaced(client.clone());
    // Defaults come from the schema: create with an empty spec through the dynamic API.
    let dynamic = tenants_dynamic(&client);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "plain"}, "spec": {}, "unknownTopLevel": 1,
    }))
    .unwrap();
    let created = dynamic.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.data["spec"]["tier"], "standard");
    assert_eq!(created.data["spec"]["deletionPolicy"], "Retain");
    assert_eq!(created.data["spec"]["suspended"], false);
    assert_eq!(
        created.data["spec"]["services"].as_array().unwrap().len(),
        6
    );
    assert!(
        created.data.get("unknownTopLevel").is_none(),
        "unknown fields are pruned"
    );
    assert_eq!(created.metadata.generation, Some(1));

    let t = api
        .create(&PostParams::default(), &tenant("acme", Tier::Dedicated))
        .await
        .unwrap();
    assert_eq!(t.spec.tier, Tier::Dedicated);
    let mut t2 = api.get("acme").await.unwrap();
    t2.spec.suspended = true;
    let replaced = api
        .replace("acme", &PostParams::default(), &t2)
        .await
        .unwrap();
    assert!(replaced.spec.suspended);
    assert_eq!(replaced.metadata.generation, Some(2));
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    api.delete("acme", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("acme").await.unwrap().is_none());
}

#[tokio::test]
async fn schema_violations_are_rejected_with_the_field_named() {
    let (_server, client) = common::start().await;
    let dynamic = tenants_dynamic(&client);
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "gold"}, "spec": {"tier": "gold", "suspended": "yes"},
    }))
    .unwrap();
    let err = refused(dynamic.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.as_ref().unwrap().causes.clone();
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert!(fields.contains(&"spec.tier"), "{causes:?}");
    assert!(fields.contains(&"spec.suspended"), "{causes:?}");
    let tier = causes.iter().find(|c| c.field == "spec.tier").unwrap();
    assert_eq!(tier.reason, "FieldValueNotSupported");
    assert!(err.message.contains("spec.tier"), "{}", err.message);

    // `spec` is required.
    let no_spec: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "nospec"},
    }))
    .unwrap();
    let err = refused(dynamic.create(&PostParams::default(), &no_spec).await);
    assert_eq!(err.code, 422);
    assert_eq!(err.details.unwrap().causes[0].field, "spec");

    // Patches are validated too.
    dynamic
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant",
                "metadata": {"name": "ok"}, "spec": {},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let err = refused(
        dynamic
            .merge("ok", json!({"spec": {"services": ["nope"]}}))
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.details.unwrap().causes[0].field, "spec.services[0]");
}

#[tokio::test]
async fn merge_json_and_apply_patches() {
    let (_server, client) = common::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &cm("p", &[("a", "1"), ("b", "2")]))
        .await
        .unwrap();

    let merged = api
        .merge("p", json!({"data": {"a": null, "c": "3"}}))
        .await
        .unwrap();
    assert_eq!(
        merged.data.unwrap(),
        BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())])
    );

    // JSON patch with a passing and a failing `test`.
    let ok: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "20"},
    ]))
    .unwrap();
    let patched = api
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(ok))
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["b"], "20");
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "remove", "path": "/data/b"},
    ]))
    .unwrap();
    let err = refused(
        api.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(api.get("p").await.unwrap().data.unwrap()["b"], "20");

    // Server-side apply creates, then updates; fields the manager drops go away.
    let pp = PatchParams::apply("tester").force();
    let applied = api
        .patch(
            "applied",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied", "labels": {"app.kubernetes.io/managed-by": "prismicx-operator"}},
                "data": {"x": "1", "y": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap().len(), 2);
    let mf = applied.metadata.managed_fields.as_ref().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("tester"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let only_x = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"app.kubernetes.io/managed-by": "prismicx-operator"}},
        "data": {"x": "1"}});
    let again = api
        .patch("applied", &pp, &Patch::Apply(&only_x))
        .await
        .unwrap();
    assert_eq!(
        again.data.clone().unwrap(),
        BTreeMap::from([("x".into(), "1".into())])
    );
    // Applying the same thing again changes nothing (no new resourceVersion).
    let same = api
        .patch("applied", &pp, &Patch::Apply(&only_x))
        .await
        .unwrap();
    assert_eq!(same.resource_version(), again.resource_version());

    // Merge patch with a stale resourceVersion is a conflict (the operator's finalizer patch).
    expect_code(
        api.merge(
            "p",
            json!({"metadata": {"resourceVersion": "1", "finalizers": ["x"]}}),
        )
        .await,
        409,
    );
}

#[tokio::test]
async fn status_subresource_separation_and_generation() {
    let (_server, api) = tenants_api().await;
    // A status sent with the create is dropped.
    let t = Tenant {
        status: Some(TenantStatus {
            tenant_id: Some("ignored-on-create".into()),
            ..Default::default()
        }),
        ..tenant("s", Tier::Standard)
    };
    let created = api.create(&PostParams::default(), &t).await.unwrap();
    assert!(created.status.is_none(), "create ignores status");
    assert_eq!(created.metadata.generation, Some(1));

    // Status through the subresource (server-side apply, as the operator writes it): no
    // generation bump.
    let status = json!({"apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant",
        "status": {"tenantId": "abc", "observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Provisioned", "message": "ok",
             "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
    let after = api
        .patch_status(
            "s",
            &PatchParams::apply("prismicx-operator").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    expect_state(&after, "abc", 1);

    // The main endpoint ignores status; a spec change bumps generation.
    let mut changed = after.clone();
    changed.spec.tier = Tier::Dedicated;
    changed.status.as_mut().unwrap().tenant_id = Some("hijack".into());
    let replaced = api
        .replace("s", &PostParams::default(), &changed)
        .await
        .unwrap();
    expect_state(&replaced, "abc", 2);

    // A label change (metadata only) does not bump generation.
    let labelled = api
        .merge("s", json!({"metadata": {"labels": {"a": "b"}}}))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));

    // The status endpoint ignores everything but status.
    let via_status = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tier": "standard"}, "status": {"secretName": "sec"}})),
        )
        .await
        .unwrap();
    assert_eq!(via_status.spec.tier, Tier::Dedicated);
    assert_eq!(
        via_status.status.as_ref().unwrap().secret_name.as_deref(),
        Some("sec")
    );
    assert_eq!(via_status.metadata.generation, Some(2));

    // replace_status with a stale resourceVersion is a conflict.
    let mut stale = after.clone();
    stale.status.as_mut().unwrap().secret_name = Some("x".into());
    expect_code(
        api.replace_status("s", &PostParams::default(), &stale)
            .await,
        409,
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_server, api) = tenants_api().await;
    let mut t = tenant("f", Tier::Standard);
    t.metadata.finalizers = Some(vec!["prismicx.io/test".into()]);
    api.create(&PostParams::default(), &t).await.unwrap();

    let deleting = api.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = deleting.left().expect("the object is still there");
    assert!(obj.metadata.deletion_timestamp.is_some());
    let still = api.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());

    // kube-runtime's finalizer helper removes it with a JSON patch (`test` + `remove`).
    let action = kube::runtime::finalizer(
        &api,
        "prismicx.io/test",
        std::sync::Arc::new(still),
        |event| async move {
            match event {
                kube::runtime::finalizer::Event::Cleanup(_) => {
                    Ok::<_, kube::Error>(kube::runtime::controller::Action::await_change())
                }
                kube::runtime::finalizer::Event::Apply(_) => panic!("expected cleanup"),
            }
        },
    )
    .await;
    assert!(action.is_ok(), "{action:?}");
    assert!(
        api.get_opt("f").await.unwrap().is_none(),
        "gone once the finalizer is removed"
    );

    // The helper also adds its finalizer to a live object.
    api.create(&PostParams::default(), &tenant("g", Tier::Standard))
        .await
        .unwrap();
    let live = std::sync::Arc::new(api.get("g").await.unwrap());
    kube::runtime::finalizer(&api, "prismicx.io/test", live, |_| async {
        Ok::<_, kube::Error>(kube::runtime::controller::Action::await_change())
    })
    .await
    .unwrap();
    assert_eq!(
        api.get("g").await.unwrap().finalizers(),
        ["prismicx.io/test"]
    );
}

#[tokio::test]
async fn owner_reference_cascade_and_orphan() {
    let (_server, client) = common::start().await;
    let tenants: Api<Tenant> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = tenants
        .create(&PostParams::default(), &tenant("owner", Tier::Standard))
        .await
        .unwrap();
    let oref = json!([{"apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant", "name": "owner",
        "uid": owner.uid().unwrap(), "controller": true}]);
    for name in ["dep1", "dep2"] {
        create_owned(&cms, name, oref.clone()).await;
    }
    // A grandchild owned by dep1.
    let dep1 = cms.get("dep1").await.unwrap();
    let by_dep1 = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "dep1",
        "uid": dep1.uid().unwrap()}]);
    create_owned(&cms, "grandchild", by_dep1).await;
    tenants
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    for name in ["dep1", "dep2", "grandchild"] {
        assert!(
            cms.get_opt(name).await.unwrap().is_none(),
            "{name} should be gone"
        );
    }

    // Orphan keeps the dependents and strips the reference.
    let owner = tenants
        .create(&PostParams::default(), &tenant("owner2", Tier::Standard))
        .await
        .unwrap();
    let by_owner2 = json!([{"apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant",
        "name": "owner2", "uid": owner.uid().unwrap()}]);
    create_owned(&cms, "kept", by_owner2).await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    tenants.delete("owner2", &dp).await.unwrap();
    let kept = cms.get("kept").await.unwrap();
    assert!(kept.metadata.owner_references.is_none());
}

#[tokio::test]
async fn namespace_deletion_deletes_its_contents() {
    let (_server, client) = common::start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    common::create_namespace(&namespaces, "team").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    let mut t = tenant("held", Tier::Standard);
    t.metadata.finalizers = Some(vec!["x/y".into()]);
    tenants.create(&PostParams::default(), &t).await.unwrap();

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(cms.get_opt("c").await.unwrap().is_none());
    // The finalizer holds the tenant, and with it the namespace (Terminating; no new content).
    let ns = namespaces.get("team").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    expect_code(
        cms.create(&PostParams::default(), &cm("new", &[])).await,
        403,
    );
    tenants
        .merge("held", json!({"metadata": {"finalizers": null}}))
        .await
        .unwrap();
    assert!(tenants.get_opt("held").await.unwrap().is_none());
    assert!(namespaces.get_opt("team").await.unwrap().is_none());
}

#[tokio::test]
async fn label_and_field_selectors_and_delete_collection() {
    let (_server, client) = common::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for (name, tier) in [("a", "db"), ("b", "web"), ("c", "db")] {
        let mut c = cm(name, &[]);
        c.metadata.labels = Some(BTreeMap::from([("tier".to_string(), tier.to_string())]));
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    api.create(&PostParams::default(), &cm("unlabelled", &[]))
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.iter().map(|c| c.name_any()).collect()
    };
    let selections = [
        (ListParams::default().labels("tier=db"), vec!["a", "c"]),
        (
            ListParams::default().labels("tier!=db"),
            vec!["b", "unlabelled"],
        ),
        (ListParams::default().labels("tier in (web,x)"), vec!["b"]),
        (
            ListParams::default().labels("tier notin (web)"),
            vec!["a", "c", "unlabelled"],
        ),
        (ListParams::default().labels("tier"), vec!["a", "b", "c"]),
        (ListParams::default().labels("!tier"), vec!["unlabelled"]),
        (ListParams::default().fields("metadata.name=b"), vec!["b"]),
    ];
    for (params, want) in selections {
        let what = format!("{:?} {:?}", params.label_selector, params.field_selector);
        assert_eq!(names(api.list(&params).await.unwrap()), want, "{what}");
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        names(
            all.list(
                &ListParams::default()
                    .fields("metadata.namespace=default,metadata.name!=a")
                    .labels("tier")
            )
            .await
            .unwrap()
        ),
        ["b", "c"]
    );

    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=db"),
    )
    .await
    .unwrap();
    assert_eq!(
        names(api.list(&ListParams::default()).await.unwrap()),
        ["b", "unlabelled"]
    );
}

#[tokio::test]
async fn crds_can_be_created_through_the_api() {
    let (_server, client) =
        common::start_with(prismicx_local_apiserver::ServerOptions::default()).await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    // Without the CRD the resource does not exist.
    let tenants: Api<Tenant> = Api::default_namespaced(client.clone());
    expect_code(tenants.list(&ListParams::default()).await, 404);
    let yaml =
        std::fs::read_to_string(common::crds_dir().join("tenants.prismicx.io.yaml")).unwrap();
    let crd = serde_yaml::from_str(&yaml).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = created.status.unwrap().conditions.unwrap();
    assert!(established
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True"));
    tenants
        .create(&PostParams::default(), &tenant("t", Tier::Standard))
        .await
        .unwrap();
    assert_eq!(
        tenants
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    crds.delete("tenants.prismicx.io", &DeleteParams::default())
        .await
        .unwrap();
    expect_code(tenants.list(&ListParams::default()).await, 404);
}

#[tokio::test]
async fn discovery_documents() {
    let (server, client) = common::start().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "35")
    );
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    for g in [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "prismicx.io",
    ] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    let resources = client
        .list_api_group_resources("prismicx.io/v1alpha1")
        .await
        .unwrap();
    let tenants = resources
        .resources
        .iter()
        .find(|r| r.name == "tenants")
        .unwrap();
    assert!(tenants.namespaced);
    assert_eq!(
        tenants.short_names.as_deref(),
        Some(&["tn".to_string()][..])
    );
    assert!(resources
        .resources
        .iter()
        .any(|r| r.name == "tenants/status"));
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "secrets"));
    // A client built from the written kubeconfig (dummy token over plain HTTP) works too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    common::install_tls_provider();
    let from_file = kube::Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(from_file);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(names, ["default", "kube-public", "kube-system"]);
    // Unknown paths are 404.
    let req = http::Request::get("/apis/nope.io/v1").body(vec![]).unwrap();
    expect_code(client.request::<serde_json::Value>(req).await, 404);
    drop(server);
}

#[tokio::test]
async fn deployment_status_writes_are_watchable_and_reapply_is_a_no_op() {
    use futures::TryStreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    let (_server, client) = common::start().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app.kubernetes.io/managed-by": "prismicx-operator"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
    let pp = PatchParams::apply("prismicx-operator").force();
    let created = deployments
        .patch("web", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let again = deployments
        .patch("web", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(
        again.resource_version(),
        created.resource_version(),
        "re-apply is a no-op"
    );

    let mut events = deployments
        .watch(
            &kube::api::WatchParams::default(),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    // What a process runner does: write the status.
    let status = json!({"status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "availableReplicas": 1}});
    let written = deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(written.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(written.metadata.generation, Some(1));
    match events.try_next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Modified(d) => assert_eq!(d.status.unwrap().ready_replicas, Some(1)),
        other => panic!("{other:?}"),
    }
    // The operator's re-apply of the spec keeps the status.
    let kept = deployments
        .patch("web", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(kept.status.unwrap().ready_replicas, Some(1));

    // Services get a (fake) cluster IP that survives re-applies.
    let services: Api<Service> = Api::default_namespaced(client);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let s1 = services
        .patch("web", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    let ip = s1.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let s2 = services
        .patch("web", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    assert_eq!(s2.spec.clone().unwrap().cluster_ip.unwrap(), ip);
    assert_eq!(s2.resource_version(), s1.resource_version());
}
