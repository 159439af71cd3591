//! management-system-repo binary: parses the configuration and runs the service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_management_system_repo::run(prismicx_management_system_repo::Config::parse()).await
}
