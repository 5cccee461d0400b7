//! `hallcast migrate` and `hallcast import` (contract §14): what they print
//! and how they exit (0 done, 1 could not, 2 import into a store with
//! data).

use std::process::ExitCode;

use crate::cli::Command;
use crate::store::postgres::{self, AdminError};

/// Runs a command; its exit code.
pub fn run(command: Command) -> ExitCode {
    match try_run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(AdminError::Failed(e)) => {
            eprintln!("hallcast: {e}");
            ExitCode::FAILURE
        }
        Err(AdminError::HasData(e)) => {
            eprintln!("hallcast: {e}");
            ExitCode::from(2)
        }
    }
}

fn try_run(command: Command) -> Result<(), AdminError> {
    match command {
        Command::Migrate { store } => {
            let mut client = postgres::connect(postgres_url(&store)?)?;
            let v = postgres::migrate(&mut client)?;
            println!("the store's schema is at version {v}");
        }
        Command::Import { from, store } => {
            let mut client = postgres::connect(postgres_url(&store)?)?;
            let copied = postgres::import(&mut client, &from)?;
            let total: u64 = copied.iter().map(|(_, n)| n).sum();
            for (table, n) in &copied {
                println!("{table}: {n}");
            }
            println!("imported {total} rows from {}", from.display());
        }
    }
    Ok(())
}

/// Only PostgreSQL has a schema to migrate or a store to import into:
/// SQLite upgrades its own file at start.
fn postgres_url(store: &str) -> Result<&str, AdminError> {
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        Ok(store)
    } else {
        Err(AdminError::Failed(format!(
            "--store must be a postgres:// URL, not '{store}' (a SQLite data dir upgrades \
             itself when hallcast starts on it)"
        )))
    }
}
