//! The `mc-ledger` binary: a thin entry point over the `cli` crate.

fn main() -> std::process::ExitCode {
    cli::run()
}
