//! The `prismicx-local` command line: `up` (the default) brings the platform up; `operator` and
//! `service <name>` run the operator or one service in this process, configured from the
//! environment. The launcher re-runs itself with those, so one build holds everything it runs.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "prismicx-local",
    version,
    about = "Run the PrismicX platform locally, with no cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start the servers, the API endpoint, the operator and the services, provision the
    /// example tenants, print how to reach them, and stop everything on Ctrl-C (the default).
    Up(crate::UpArgs),
    /// Run the operator (the code of the `prismicx-operator` binary), configured from its
    /// environment variables (`KUBECONFIG`, `POSTGRES_*`, `PGBOUNCER_*`, `MONGODB_*`, …).
    Operator(Box<prismicx_operator::OperatorArgs>),
    /// Run one service in this process, configured from its environment variables.
    Service {
        #[command(subcommand)]
        service: Service,
    },
}

/// The services, by the binary (and image) name the operator gives them.
#[derive(Debug, clap::Subcommand)]
enum Service {
    #[command(name = "tenant-mgmt-service")]
    TenantMgmt(Box<prismicx_tenant_mgmt::Config>),
    #[command(name = "user-data-service")]
    UserData(Box<prismicx_user_data::Config>),
    #[command(name = "task-repo-service")]
    TaskRepo(Box<prismicx_task_repo::Config>),
    #[command(name = "category-repository-service")]
    CategoryRepository(Box<prismicx_category_repository::Config>),
    #[command(name = "management-system-repo")]
    ManagementSystemRepo(Box<prismicx_management_system_repo::Config>),
    #[command(name = "vector-store-service")]
    VectorStore(Box<prismicx_vector_store::Config>),
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None => rt.block_on(crate::up(crate::UpArgs::default())),
        Some(Command::Up(args)) => rt.block_on(crate::up(args)),
        Some(Command::Operator(args)) => rt.block_on(prismicx_operator::run(*args)),
        Some(Command::Service { service }) => match service {
            Service::TenantMgmt(c) => rt.block_on(prismicx_tenant_mgmt::run(*c)),
            Service::UserData(c) => rt.block_on(prismicx_user_data::run(*c)),
            Service::TaskRepo(c) => rt.block_on(prismicx_task_repo::run(*c)),
            Service::CategoryRepository(c) => rt.block_on(prismicx_category_repository::run(*c)),
            Service::ManagementSystemRepo(c) => {
                rt.block_on(prismicx_management_system_repo::run(*c))
            }
            Service::VectorStore(c) => rt.block_on(prismicx_vector_store::run(*c)),
        },
    }
}
