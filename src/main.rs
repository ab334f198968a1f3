//! The `mc-ledger` binary: a thin entry point over the `api` crate's command line.

fn main() -> std::process::ExitCode {
    api::cli::run()
}
