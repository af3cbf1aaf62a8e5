//! `kpledger`: the command-line tool of the Kimberley Process custody ledger.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kp_node::now;
use kpledger::{demo, keyfile, registry::Registry, testnet};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "kpledger", version, about = "Kimberley Process custody ledger")]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 key into a new key file (mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// What the key is for, recorded in the file.
        #[arg(long, default_value = "")]
        label: String,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Local test networks.
    Testnet {
        #[command(subcommand)]
        command: TestnetCommand,
    },
    /// Run the sample custody flow on a test network's genesis and keys, through the rules engine.
    Demo {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the hash that identifies the network of a genesis file.
    GenesisHash {
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Run a node: the configuration (TOML) names the genesis, the data directory, the node
    /// key and the addresses. Stops cleanly on SIGINT or SIGTERM.
    Node {
        #[arg(long)]
        config: PathBuf,
        /// Log JSON lines instead of text (level from RUST_LOG, default info).
        #[arg(long)]
        log_json: bool,
    },
    /// Ask a node for its view of the network: head, round, voters missing, peers, pool.
    Status {
        /// The node's API address, like 127.0.0.1:27001.
        #[arg(long)]
        node: String,
    },
    /// A certificate's custody history, in order, with heights, block times and signers.
    Custody {
        /// The certificate number, like BW-2026-000123.
        certificate: String,
        /// The node's API address, like 127.0.0.1:27001.
        #[arg(long)]
        node: String,
    },
    /// A node's ledger store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check a stopped node's store in full: replay every block from genesis (signatures,
    /// rules, state roots, commit certificates) and compare every index with the replay.
    Verify {
        /// The node's data directory (its RocksDB store).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        genesis: PathBuf,
    },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Write a genesis, fresh keys and node configurations for the first N registry participants.
    Init {
        /// How many participants (1 to 59), taken in registry order.
        #[arg(long)]
        participants: usize,
        #[arg(long)]
        dir: PathBuf,
        /// First TCP port; each node takes three (p2p, API, metrics).
        #[arg(long, default_value_t = 27000)]
        base_port: u16,
        /// Participant registry (default: node-config/participants.toml as built in).
        #[arg(long)]
        registry: Option<PathBuf>,
    },
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    if let Err(e) = run(cli) {
        if json {
            let msg = serde_json::json!({ "error": format!("{e:#}") });
            eprintln!("{msg}");
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { out, label, force } => {
            let key = kp_crypto::SecretKey::generate()?;
            keyfile::write(&out, &key, &label, force)?;
            if cli.json {
                print_json(&serde_json::json!({ "file": out, "public_key": key.public().to_hex() }))
            } else {
                println!("wrote {} (public key {})", out.display(), key.public());
                Ok(())
            }
        }
        Command::Testnet { command: TestnetCommand::Init { participants, dir, base_port, registry } } => {
            let registry = match registry {
                Some(path) => Registry::parse(
                    &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
                )?,
                None => Registry::default_registry()?,
            };
            let report = testnet::init(&registry, participants, &dir, base_port, now())?;
            if cli.json {
                print_json(&report)
            } else {
                println!(
                    "test network {} in {}: {} participants ({}), observers {}\ngenesis hash {}",
                    report.chain_id,
                    report.dir.display(),
                    report.participants.len(),
                    report.participants.join(" "),
                    report.observers.join(" "),
                    report.genesis_hash
                );
                Ok(())
            }
        }
        Command::Demo { dir } => {
            let report = demo::run(&dir, now())?;
            if cli.json {
                return print_json(&report);
            }
            println!(
                "network {} ({} participants), genesis {}",
                report.chain_id,
                report.participants,
                &report.genesis_hash[..16]
            );
            println!("\ncustody history of certificate {}:", report.certificate);
            for h in &report.history {
                println!(
                    "  {}. {}  {:<18} by {:<28} event {}",
                    h.step,
                    h.block_time,
                    h.event,
                    h.signer,
                    &h.event_id[..16]
                );
                println!("     {}", h.detail);
            }
            println!("\nrefused: {}\n  [{}] {}", report.rejected.attempt, report.rejected.code, report.rejected.reason);
            println!("\nstate root {}", report.state_root);
            Ok(())
        }
        Command::Store { command: StoreCommand::Verify { data_dir, genesis } } => {
            let genesis = testnet::read_genesis(&genesis)?;
            let report = kpledger::store::verify(&data_dir, &genesis)?;
            if cli.json {
                print_json(&report)
            } else {
                println!(
                    "verified: {} blocks, {} events, {} state records, {} custody entries; head {} at height {}",
                    report.blocks,
                    report.events,
                    report.state_records,
                    report.custody_entries,
                    report.head_hash,
                    report.blocks
                );
                Ok(())
            }
        }
        Command::Node { config, log_json } => kpledger::node::run_node(&config, log_json),
        Command::Status { node } => {
            let s = kpledger::node::status(&node)?;
            if cli.json {
                return print_json(&s);
            }
            println!("chain {} (genesis {})", s.chain_id, &s.genesis_hash[..16.min(s.genesis_hash.len())]);
            println!("height {}  head {}  round {}", s.height, s.head_hash, s.round);
            println!("node of {}", if s.me.is_empty() { "an observer" } else { &s.me });
            println!("active participants ({}): {}", s.active_participants.len(), s.active_participants.join(" "));
            if !s.missing_voters.is_empty() {
                println!("round held up by: {}", s.missing_voters.join(" "));
            }
            println!(
                "peers {}  {}  pending events {}  committed events {}",
                s.peers,
                if s.syncing { "syncing" } else { "in step" },
                s.pending_events,
                s.committed_events
            );
            Ok(())
        }
        Command::Custody { certificate, node } => {
            let c = kpledger::node::custody(&node, &certificate)?;
            if cli.json {
                return print_json(&c);
            }
            if c.steps.is_empty() {
                println!("no certificate {} on the ledger", c.certificate);
                return Ok(());
            }
            println!("certificate {} ({})", c.certificate, c.state);
            for s in &c.steps {
                println!(
                    "  {}. {}  {:<20} height {:>6}.{:<4} signer {}  event {}",
                    s.step,
                    s.block_time,
                    s.kind,
                    s.height,
                    s.index,
                    &s.signer[..16.min(s.signer.len())],
                    &s.event_id[..16.min(s.event_id.len())]
                );
            }
            Ok(())
        }
        Command::GenesisHash { genesis } => {
            let g = testnet::read_genesis(&genesis)?;
            let hash = kp_proto::genesis_hash(&g).to_hex();
            if cli.json {
                print_json(&serde_json::json!({ "chain_id": g.chain_id.to_string(), "genesis_hash": hash }))
            } else {
                println!("{hash}");
                Ok(())
            }
        }
    }
}
