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
}
