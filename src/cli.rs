//! Command line (contract §1).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// hallcast: real-time call-number broadcast for government service halls.
#[derive(Parser, Debug, Clone)]
#[command(name = "hallcast", version, about)]
pub struct Args {
    /// Serve the halls in this TOML file instead of the built-in demo hall.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen on this address (IP:PORT); port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Keep state in this directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep state in this PostgreSQL database, shared by the nodes of a
    /// cluster (postgres://USER@HOST:PORT/DATABASE).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Carry committed events between the nodes over this NATS server
    /// (nats://HOST:4222).
    #[arg(long, value_name = "URL")]
    pub bus: Option<String>,
    /// The cluster's name (default: the PostgreSQL database's name).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Read the cluster's shared secret (at least 32 characters; signs
    /// every message on the bus) from this file instead of the config's
    /// `[server] cluster_secret`.
    #[arg(long, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// A NATS credentials file (.creds) for the bus.
    #[arg(long, value_name = "FILE")]
    pub bus_creds: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving (contract §14).
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Create or upgrade the schema of a cluster's PostgreSQL store.
    Migrate {
        /// The store: postgres://USER@HOST:PORT/DATABASE.
        #[arg(long, value_name = "URL")]
        store: String,
    },
    /// Copy a single node's SQLite data dir into an empty PostgreSQL store.
    Import {
        /// The node's data dir (stopped, or at least not writing).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The store: postgres://USER@HOST:PORT/DATABASE.
        #[arg(long, value_name = "URL")]
        store: String,
    },
}
