use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = hallcast::cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(command) = args.command.clone() {
        return hallcast::admin::run(command);
    }
    // Every screen and phone is a socket: use all the descriptors the
    // system allows this process, not the shell's soft default of 1,024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hallcast: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hallcast::run(args, hallcast::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ hallcast::RunError::Config(_)) => {
            eprintln!("hallcast: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("hallcast: {e}");
            ExitCode::FAILURE
        }
    }
}
