//! category-repository's own test support: the application on the kit's tenants and MongoDB
//! layout ([`spawn`]), its seeds (create, get, move, list children), and an invariant checker
//! that reads a tenant's stored nodes raw and verifies they form a consistent forest.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::StatusCode;
use mongodb::bson::{doc, Bson, Document};
use prismicx_category_repository::{app, AppSettings, AppState, CATEGORIES, MONGO};
use prismicx_harness::kit::{raw_database, raw_find, Reply};
use prismicx_service_common::mongo::tenant_bson;
use serde_json::json;
use uuid::Uuid;

prismicx_harness::service_app!(
    /// The application under test; the kit's `ServiceApp` plus this service's seeds.
    pub struct TestApp(AppState);
    mongo MONGO,
    |store, tenancy| AppState { store, tenancy },
    |state| app(state, AppSettings::default())
);

/// One stored node as the invariant checker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: Uuid,
    pub parent: Option<Uuid>,
    pub ancestors: Vec<Uuid>,
    pub depth: i64,
    pub position: i64,
    pub name: String,
    pub name_key: String,
    pub revision: i64,
}

fn as_uuid(v: &Bson) -> Uuid {
    match v {
        Bson::Binary(b) => Uuid::from_bytes(b.to_uuid().expect("a BSON UUID").bytes()),
        other => panic!("expected a BSON UUID, found {other:?}"),
    }
}

fn as_int(d: &Document, k: &str) -> i64 {
    match d.get(k) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        other => panic!("{k} is not an integer: {other:?}"),
    }
}

impl TestApp {
    /// Creates a category as tenant `t`; returns its id.
    pub async fn create(&self, t: usize, name: &str, parent: Option<&str>) -> String {
        let r = self
            .post(
                t,
                "/v1/categories",
                json!({"name": name, "parentId": parent}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create {name}: {}", r.body);
        r.str("id")
    }

    /// Category `id` as tenant `t` sees it (status and body).
    pub async fn category(&self, t: usize, id: &str) -> Reply {
        self.get(t, &format!("/v1/categories/{id}")).await
    }

    pub async fn move_to(
        &self,
        t: usize,
        id: &str,
        parent: Option<&str>,
        position: Option<u32>,
    ) -> Reply {
        let mut body = json!({"parentId": parent});
        if let Some(p) = position {
            body["position"] = json!(p);
        }
        self.post(t, &format!("/v1/categories/{id}/move"), body)
            .await
    }

    /// Names of the children of `parent` (the roots when `None`) in order, all pages.
    pub async fn child_names(&self, t: usize, parent: Option<&str>) -> Vec<String> {
        let base = match parent {
            Some(p) => format!("/v1/categories/{p}/children"),
            None => "/v1/categories".to_string(),
        };
        let items = self.all_pages(t, &base, 3).await;
        items
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The `categories` collection where tenant `t`'s documents must be.
    pub async fn raw_collection(&self, t: usize) -> mongodb::Collection<Document> {
        raw_database(MONGO, &self.tenants[t])
            .await
            .collection(CATEGORIES)
    }

    /// Tenant `t`'s stored documents, read raw.
    pub async fn raw_docs(&self, t: usize) -> Vec<Document> {
        let filter = doc! {"tenant_id": tenant_bson(self.tenants[t].id())};
        raw_find(MONGO, &self.tenants[t], CATEGORIES, filter, None).await
    }

    /// Reads tenant `t`'s nodes raw and checks that they form a forest whose materialized
    /// paths, depths and sibling positions agree with the parent links. Returns the nodes.
    pub async fn check_tree(&self, t: usize) -> BTreeMap<Uuid, Node> {
        let docs = self.raw_docs(t).await;
        let mut nodes = BTreeMap::new();
        for d in &docs {
            let n = Node {
                id: as_uuid(d.get("_id").unwrap()),
                parent: match d.get("parent_id") {
                    None | Some(Bson::Null) => None,
                    Some(v) => Some(as_uuid(v)),
                },
                ancestors: d
                    .get_array("ancestors")
                    .expect("ancestors array")
                    .iter()
                    .map(as_uuid)
                    .collect(),
                depth: as_int(d, "depth"),
                position: as_int(d, "position"),
                name: d.get_str("name").unwrap().to_string(),
                name_key: d.get_str("name_key").unwrap().to_string(),
                revision: as_int(d, "revision"),
            };
            assert!(d
                .get("created_at")
                .is_some_and(|v| matches!(v, Bson::DateTime(_))));
            assert!(d
                .get("updated_at")
                .is_some_and(|v| matches!(v, Bson::DateTime(_))));
            assert!(nodes.insert(n.id, n).is_none(), "duplicate id");
        }
        let mut siblings: HashMap<Option<Uuid>, Vec<&Node>> = HashMap::new();
        for n in nodes.values() {
            // Acyclic: the parent chain reaches a root within as many steps as there are nodes.
            let mut chain = Vec::new();
            let mut seen = HashSet::from([n.id]);
            let mut cur = n.parent;
            while let Some(p) = cur {
                assert!(seen.insert(p), "cycle through {} (chain {chain:?})", n.id);
                chain.push(p);
                let parent = nodes
                    .get(&p)
                    .unwrap_or_else(|| panic!("{} has a missing parent {p}", n.id));
                cur = parent.parent;
            }
            chain.reverse();
            assert_eq!(
                n.ancestors, chain,
                "ancestors of {} ({}) disagree with its parent chain",
                n.id, n.name
            );
            assert_eq!(n.depth, chain.len() as i64, "depth of {}", n.name);
            assert!(n.depth < 32, "{} is deeper than 32 levels", n.name);
            assert!(n.revision >= 1);
            assert_eq!(n.name_key, n.name.to_lowercase());
            siblings.entry(n.parent).or_default().push(n);
        }
        for (parent, set) in &siblings {
            let mut positions: Vec<i64> = set.iter().map(|n| n.position).collect();
            positions.sort_unstable();
            let expected: Vec<i64> = (0..set.len() as i64).collect();
            assert_eq!(
                positions, expected,
                "positions of the children of {parent:?}"
            );
            let keys: HashSet<&str> = set.iter().map(|n| n.name_key.as_str()).collect();
            assert_eq!(
                keys.len(),
                set.len(),
                "duplicate sibling names under {parent:?}"
            );
        }
        nodes
    }
}
