//! `parley`: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser as _;
use parley_server::cli::Cli;
use parley_server::telemetry;

/// mimalloc: list rendering is allocation-bound (bench/RESULTS.md profile: ~28 % in glibc malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = telemetry::init(cli.log_format, cli.default_log_filter());
    let result = cli.run().await;
    // Dropping it writes the log lines still queued (before the error line below).
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write as _;
            // Never `eprintln!`: it panics when stderr is gone.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
