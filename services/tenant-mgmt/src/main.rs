//! tenant-mgmt-service binary: parses the configuration and runs the service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_tenant_mgmt::run(prismicx_tenant_mgmt::Config::parse()).await
}
