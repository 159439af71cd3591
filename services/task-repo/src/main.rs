//! task-repo-service binary: parses the configuration and runs the service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_task_repo::run(prismicx_task_repo::Config::parse()).await
}
