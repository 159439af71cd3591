//! user-data-service binary: parses the configuration and runs the service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_user_data::run(prismicx_user_data::Config::parse()).await
}
