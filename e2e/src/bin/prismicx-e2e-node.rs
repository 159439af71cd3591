//! The local launcher (`prismicx-local`'s command line) built into this package, so the suite
//! can start the local platform with a binary cargo builds for its tests.

fn main() -> anyhow::Result<()> {
    prismicx_local::cli::main()
}
