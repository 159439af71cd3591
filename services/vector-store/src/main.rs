//! vector-store-service binary: parses the configuration and runs the service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_vector_store::run(prismicx_vector_store::Config::parse()).await
}
