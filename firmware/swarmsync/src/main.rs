//! swarmsync: one-way BitTorrent sync for package mirrors and update channels.
//!
//! This file only parses the command line and reports errors; each command
//! lives in its own module. Errors print once, as `swarmsync: {err:#}`, with
//! exit status 1 (ripgrep's habit): scripts and cron jobs see one line.
#![forbid(unsafe_code)]

mod cmd_keygen;
mod cmd_leds;
mod cmd_status;
mod cmd_subset;
mod cmd_swarm;
mod cmd_torrent;
mod cmd_verify;
mod config;
mod demo;
mod node;
mod origin;
mod progress;
mod signals;
mod tree;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "swarmsync", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, inspect and check .torrent files.
    #[command(subcommand)]
    Torrent(TorrentCommand),
    /// Write a new secret key (0600) and print its public key; with
    /// --delegate-from, an online key delegated from a root key.
    Keygen(cmd_keygen::KeygenArgs),
    /// Publish the tree as a signed release of a channel, then serve it as
    /// the origin (feed, web seed, seeder) until stopped.
    Publish(origin::PublishArgs),
    /// A local origin and three nodes syncing and serving on loopback.
    Demo(demo::DemoArgs),
    /// Run the node: follow the channels of the config, sync, serve.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Try the LEDs: walk every pattern, or show what they show now.
    #[command(subcommand)]
    Leds(cmd_leds::LedsCommand),
    /// Dry run: what a node with this config would fetch, and its size.
    Subset {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Re-verify the whole store; non-zero on any fault.
    Verify {
        /// The node's data directory (or an origin's --state).
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
    },
    /// Show what a node reports about itself (its /-/status.json).
    Status(cmd_status::StatusArgs),
}

#[derive(Subcommand)]
enum TorrentCommand {
    /// Make a torrent of DIR (or of a single file), named after its last component.
    Create(cmd_torrent::CreateArgs),
    /// Print a torrent's infohashes (lines `v1:` and `v2:`), files and sizes.
    Show { file: PathBuf },
    /// Download a torrent from peers into --dir (resumable).
    Download(cmd_swarm::DownloadArgs),
    /// Serve a complete torrent to peers until stopped.
    Seed(cmd_swarm::SeedArgs),
    /// Check the files under --dir against a torrent; names every bad piece.
    Verify {
        file: PathBuf,
        /// The folder that holds the torrent's top-level name.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    bsp::memory::tune_allocator();
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Torrent(TorrentCommand::Create(args)) => cmd_torrent::create(&args),
        Command::Torrent(TorrentCommand::Show { file }) => cmd_torrent::show(&file),
        Command::Torrent(TorrentCommand::Verify { file, dir }) => cmd_torrent::verify(&file, &dir),
        Command::Torrent(TorrentCommand::Download(args)) => cmd_swarm::download(&args),
        Command::Torrent(TorrentCommand::Seed(args)) => cmd_swarm::seed(&args),
        Command::Publish(args) => origin::run(&args),
        Command::Run { config } => node::run(&config),
        Command::Subset { config } => cmd_subset::run(&config),
        Command::Demo(args) => demo::run(&args),
        Command::Leds(command) => cmd_leds::run(&command),
        Command::Keygen(args) => cmd_keygen::run(&args),
        Command::Verify { state } => cmd_verify::run(&state),
        Command::Status(args) => cmd_status::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("swarmsync: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("SWARMSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: cron mails and journald get plain lines.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
