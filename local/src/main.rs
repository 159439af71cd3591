//! `prismicx-local`: the platform on this machine (see the crate docs of `prismicx_local`).
//!
//! `prismicx-local [up]` brings the platform up and waits for Ctrl-C; `prismicx-local service
//! user-data` runs user-data-service in this process (the launcher starts itself that way, so one
//! build holds every service it runs).

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
    /// Start the database servers and the services, provision demo tenants, print how to reach
    /// them, and stop everything on Ctrl-C (the default).
    Up(prismicx_local::UpArgs),
    /// Run one service in this process, configured from its environment variables.
    Service {
        #[command(subcommand)]
        service: Service,
    },
}

#[derive(Debug, clap::Subcommand)]
enum Service {
    /// user-data-service (USER_DB_*, USER_DATA_LOG_LEVEL, HOST, PORT, API_KEY, …).
    UserData(Box<prismicx_user_data::Config>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None => rt.block_on(prismicx_local::up(prismicx_local::UpArgs::default())),
        Some(Command::Up(args)) => rt.block_on(prismicx_local::up(args)),
        Some(Command::Service {
            service: Service::UserData(config),
        }) => rt.block_on(prismicx_user_data::run(*config)),
    }
}
