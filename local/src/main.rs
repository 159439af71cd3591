//! `prismicx-local`: the platform on this machine (see the crate docs of `prismicx_local`).

fn main() -> anyhow::Result<()> {
    prismicx_local::cli::main()
}
