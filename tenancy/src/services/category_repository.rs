//! category-repository-service's data: the category forest in MongoDB `category_repository`.

use crate::layout::{CollectionLayout, IndexLayout, MongoLayout};

/// The collection of category nodes.
pub const CATEGORIES: &str = "categories";
/// One document per tenant: the lock and version counter of the tenant's set of roots.
pub const FORESTS: &str = "category_forests";

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "category_repository",
    collections: &[
        CollectionLayout {
            name: CATEGORIES,
            indexes: &[
                // Children of a node (and the roots: parent_id null) in sibling order; the
                // sibling shifts of inserts, moves and deletes; the last sibling's position.
                IndexLayout::on(
                    "categories_tenant_parent_position",
                    &[("parent_id", 1), ("position", 1), ("_id", 1)],
                ),
                // Names are unique among siblings, case-insensitively (name_key is the
                // lowercased name).
                IndexLayout::unique(
                    "categories_tenant_parent_name",
                    &[("parent_id", 1), ("name_key", 1)],
                ),
                // Descendants of a node (multikey on the materialized path) in the order of
                // the descendants listing; subtree rewrites of moves and cascade deletes.
                IndexLayout::on(
                    "categories_tenant_ancestors",
                    &[
                        ("ancestors", 1),
                        ("depth", 1),
                        ("parent_id", 1),
                        ("position", 1),
                        ("_id", 1),
                    ],
                ),
            ],
        },
        CollectionLayout {
            name: FORESTS,
            indexes: &[IndexLayout::unique("category_forests_tenant", &[])],
        },
    ],
};
