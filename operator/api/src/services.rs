//! The six services of the platform and the facts the platform documentation fixes for each:
//! Kubernetes name, ports, databases, and the environment variables the service reads
//! (`<PREFIX>_LOG_LEVEL`, `<DB>_DB_*`).

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

    /// The service's name in `spec.service` and in image names (`user-data`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::TenantMgmt => "tenant-mgmt",
            ServiceKind::UserData => "user-data",
            ServiceKind::TaskRepo => "task-repo",
            ServiceKind::CategoryRepository => "category-repository",
            ServiceKind::ManagementSystemRepo => "management-system-repo",
            ServiceKind::VectorStore => "vector-store",
        }
    }

    /// The image repository of the service (without registry and tag): its Kubernetes name,
    /// which is also its binary's name (`images/Dockerfile`, the Helm chart).
    pub fn image_name(self) -> String {
        self.k8s_name().to_string()
    }

    /// The prefix of the service's own variables: `<PREFIX>_LOG_LEVEL`.
    pub fn env_prefix(self) -> &'static str {
        match self {
            ServiceKind::TenantMgmt => "TENANT_MGMT",
            ServiceKind::UserData => "USER_DATA",
            ServiceKind::TaskRepo => "TASK_REPO",
            ServiceKind::CategoryRepository => "CATEGORY_REPOSITORY",
            ServiceKind::ManagementSystemRepo => "MANAGEMENT_SYSTEM_REPO",
            ServiceKind::VectorStore => "VECTOR_STORE",
        }
    }

    /// The variable holding the service's log level (`USER_DATA_LOG_LEVEL`, …).
    pub fn log_level_var(self) -> String {
        format!("{}_LOG_LEVEL", self.env_prefix())
    }

    /// The prefix of the PostgreSQL variables `<DB>_HOST`, `_PORT`, `_NAME`, `_USER`,
    /// `_PASSWORD` of a PostgreSQL service (`USER_DB`, `MANAGEMENT_DB`).
    pub fn postgres_env_prefix(self) -> Option<&'static str> {
        match self {
            ServiceKind::UserData => Some("USER_DB"),
            ServiceKind::ManagementSystemRepo => Some("MANAGEMENT_DB"),
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

    #[test]
    fn env_facts_follow_the_service_conventions() {
        let table: Vec<(String, Option<&str>, String)> = ServiceKind::ALL
            .iter()
            .map(|s| (s.log_level_var(), s.postgres_env_prefix(), s.image_name()))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "TENANT_MGMT_LOG_LEVEL".into(),
                    None,
                    "tenant-mgmt-service".into()
                ),
                (
                    "USER_DATA_LOG_LEVEL".into(),
                    Some("USER_DB"),
                    "user-data-service".into()
                ),
                (
                    "TASK_REPO_LOG_LEVEL".into(),
                    None,
                    "task-repo-service".into()
                ),
                (
                    "CATEGORY_REPOSITORY_LOG_LEVEL".into(),
                    None,
                    "category-repository-service".into()
                ),
                (
                    "MANAGEMENT_SYSTEM_REPO_LOG_LEVEL".into(),
                    Some("MANAGEMENT_DB"),
                    "management-system-repo".into()
                ),
                (
                    "VECTOR_STORE_LOG_LEVEL".into(),
                    None,
                    "vector-store-service".into()
                ),
            ]
        );
        for s in ServiceKind::ALL {
            // The spec spelling and the serde spelling are the same name.
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            // Every PostgreSQL service has its variables, and only those.
            assert_eq!(
                s.postgres_env_prefix().is_some(),
                s.postgres_database().is_some()
            );
        }
    }
}
