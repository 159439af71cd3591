//! category-repository-service binary: parses the configuration and runs the service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_category_repository::run(prismicx_category_repository::Config::parse()).await
}
