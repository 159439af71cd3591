//! The six services of the platform and the facts the platform documentation fixes for each:
//! Kubernetes name, ports, databases.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One of the platform's services.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// Tenant registry, settings and API keys (MongoDB `tenant_registry`).
    TenantMgmt,
    /// Users, attributes, roles and memberships (PostgreSQL `system_users`).
    UserData,
    /// Tasks (MongoDB `task_repository`).
    TaskRepo,
    /// Hierarchical categories (MongoDB `category_repository`).
    CategoryRepository,
    /// Management systems (PostgreSQL `management_system_repository`) and their configurations
    /// (MongoDB `config_db`).
    ManagementSystemRepo,
    /// Embeddings: metadata in MongoDB `vector_store_system`, vectors and indexes on disk.
    VectorStore,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::TenantMgmt,
        ServiceKind::UserData,
        ServiceKind::TaskRepo,
        ServiceKind::CategoryRepository,
        ServiceKind::ManagementSystemRepo,
        ServiceKind::VectorStore,
    ];

    /// The Kubernetes name of the service's Deployment and Service.
    pub fn k8s_name(self) -> &'static str {
        match self {
            ServiceKind::TenantMgmt => "tenant-mgmt-service",
            ServiceKind::UserData => "user-data-service",
            ServiceKind::TaskRepo => "task-repo-service",
            ServiceKind::CategoryRepository => "category-repository-service",
            ServiceKind::ManagementSystemRepo => "management-system-repo",
            ServiceKind::VectorStore => "vector-store-service",
        }
    }

    /// The port clients use (the Kubernetes Service port).
    pub fn external_port(self) -> u16 {
        match self {
            ServiceKind::TenantMgmt => 8501,
            ServiceKind::UserData => 8502,
            ServiceKind::TaskRepo => 8503,
            ServiceKind::CategoryRepository => 8504,
            ServiceKind::ManagementSystemRepo => 8505,
            ServiceKind::VectorStore => 8510,
        }
    }

    /// The port the container listens on.
    pub fn container_port(self) -> u16 {
        match self {
            ServiceKind::CategoryRepository | ServiceKind::ManagementSystemRepo => 8080,
            other => other.external_port(),
        }
    }

    /// The service's PostgreSQL database, if it has one.
    pub fn postgres_database(self) -> Option<&'static str> {
        match self {
            ServiceKind::UserData => Some("system_users"),
            ServiceKind::ManagementSystemRepo => Some("management_system_repository"),
            _ => None,
        }
    }

    /// The service's MongoDB database on mongodb-system, if it has one.
    pub fn mongo_database(self) -> Option<&'static str> {
        match self {
            ServiceKind::TenantMgmt => Some("tenant_registry"),
            ServiceKind::TaskRepo => Some("task_repository"),
            ServiceKind::CategoryRepository => Some("category_repository"),
            ServiceKind::ManagementSystemRepo => Some("config_db"),
            ServiceKind::VectorStore => Some("vector_store_system"),
            ServiceKind::UserData => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_databases_follow_the_platform_documentation() {
        let table: Vec<(&str, u16, u16)> = ServiceKind::ALL
            .iter()
            .map(|s| (s.k8s_name(), s.external_port(), s.container_port()))
            .collect();
        assert_eq!(
            table,
            [
                ("tenant-mgmt-service", 8501, 8501),
                ("user-data-service", 8502, 8502),
                ("task-repo-service", 8503, 8503),
                ("category-repository-service", 8504, 8080),
                ("management-system-repo", 8505, 8080),
                ("vector-store-service", 8510, 8510),
            ]
        );
        assert_eq!(
            ServiceKind::ManagementSystemRepo.postgres_database(),
            Some("management_system_repository")
        );
        assert_eq!(
            ServiceKind::ManagementSystemRepo.mongo_database(),
            Some("config_db")
        );
        assert_eq!(ServiceKind::UserData.mongo_database(), None);
        assert_eq!(
            serde_json::to_string(&ServiceKind::UserData).unwrap(),
            "\"user-data\""
        );
    }
}
