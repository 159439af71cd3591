//! `prismicx-operator`: parses the configuration and runs the operator.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prismicx_operator::run(prismicx_operator::OperatorArgs::parse()).await
}
