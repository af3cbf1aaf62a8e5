//! `kpledger`: the command-line tool of the Kimberley Process custody ledger.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kp_node::now;
use kpledger::{demo, keyfile, registry::Registry, testnet};
use std::path::PathBuf;

// mimalloc: `kpledger audit` reads, verifies and replays blocks on different threads, and
// glibc's allocator spent a tenth of an audit on memory freed by another thread than the one
// that allocated it (see crates/kp-audit/benches/audit.rs); the node has the same pattern.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kpledger", version, about = "Kimberley Process custody ledger")]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: Command,
}

/// How to reach a node's API: over TLS, checked against the network's CA, as the identity of a
/// client certificate (docs/security.md).
#[derive(clap::Args)]
struct ApiArgs {
    /// The CA certificate (PEM) the node's API certificate must chain to.
    #[arg(long, global = true, env = "KP_API_CA")]
    ca: Option<PathBuf>,
    /// Your client certificate (PEM): its role decides what the node answers.
    #[arg(long, global = true, env = "KP_API_CERT", requires = "cert_key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "KP_API_CERT_KEY", requires = "cert")]
    cert_key: Option<PathBuf>,
    /// The node serves its API without TLS on loopback (`api_plaintext`).
    #[arg(long, global = true, conflicts_with_all = ["ca", "testnet"])]
    plaintext: bool,
    /// A test network's directory: its CA, and the identities `testnet init` made (an
    /// authority's for what its key file signs; `--as` for the rest).
    #[arg(long, global = true, env = "KP_TESTNET")]
    testnet: Option<PathBuf>,
    /// On a test network, read as: reviewer (default: every participant), observer, anonymous,
    /// or a participant's authority (its code).
    #[arg(long = "as", global = true, requires = "testnet")]
    as_: Option<String>,
}

impl ApiArgs {
    fn auth(&self) -> Result<Option<kpledger::node::ApiAuth>> {
        use kpledger::node::{ApiAuth, Reader};
        if self.plaintext {
            return Ok(Some(ApiAuth::Plaintext));
        }
        if let Some(ca) = &self.ca {
            let identity = self.cert.clone().zip(self.cert_key.clone());
            return Ok(Some(ApiAuth::Tls { ca: ca.clone(), identity }));
        }
        anyhow::ensure!(self.cert.is_none(), "--cert needs --ca (the CA the node's certificate chains to)");
        if let Some(dir) = &self.testnet {
            let reader = self.as_.as_deref().map(Reader::parse).transpose()?.unwrap_or(Reader::Reviewer);
            return Ok(Some(ApiAuth::Testnet { dir: dir.clone(), reader }));
        }
        Ok(None)
    }
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
    /// An authority's custody events: signed here with its key file (the key never leaves this
    /// machine) and submitted to a node.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Governance acts: drafted, approved by each participant whose approval the rules need
    /// (the nodes collect the approvals), submitted by the approval that completes them.
    Governance {
        #[command(subcommand)]
        command: GovernanceCommand,
    },
    /// The KP's own decision cases (node-config/scenarios/), replayed on a running test network.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// A synthetic custody workload on a test network (issue, seal, receipt between its
    /// participants, signed with their keys); prints events committed, events/s and commit
    /// latency.
    Load {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        certificates: usize,
        /// Target events per second (submissions are paced to it).
        #[arg(long)]
        rate: f64,
        /// Seed of the workload (printed in the report).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds after which the run stops, committed or not.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Replay a ledger from its genesis and verify everything: the hash chain, every event's
    /// signatures, every rule (re-executed), every state root and every commit certificate
    /// against the voter set derived from the genesis and governance acts. Exits with status 3
    /// on any integrity failure, naming the first.
    Audit {
        /// A node's data directory (with the node stopped).
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        data_dir: Option<PathBuf>,
        /// A ledger export made by `kpledger export`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The genesis (JSON): required with --data-dir; with --file, the export's own genesis
        /// must be this one.
        #[arg(long, required_unless_present = "file")]
        genesis: Option<PathBuf>,
    },
    /// Export a node's ledger (genesis and every block, exactly as signed) into a portable
    /// file for `kpledger audit --file`.
    Export {
        /// The node's API address, like 127.0.0.1:27001.
        #[arg(long)]
        node: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetch a certificate's proof bundle from a node: its custody events with Merkle
    /// inclusion proofs, the block headers and commit certificates, and the governance acts
    /// that fix the voter set — checkable offline with `kpledger verify-proof`.
    Proof {
        certificate: String,
        /// The node's API address, like 127.0.0.1:27001.
        #[arg(long)]
        node: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a proof bundle offline against a genesis (JSON), and say what it proves. Exits
    /// with status 3 if it does not verify.
    VerifyProof {
        bundle: PathBuf,
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Review-visit reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// The patterns KP statisticians look for, each with the participant, certificate or
    /// period concerned and the event ids that prove it: shipments never confirmed or confirmed
    /// late, receipts that differ from their certificate, exports exceeding production plus
    /// imports, undervaluation (median and MAD per HS code and quarter), trade moving while a
    /// participant was suspended.
    Anomalies {
        #[command(flatten)]
        ledger: LedgerArgs,
        /// First issue date considered (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Last issue date considered (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        /// A confirmation more than this many days after the seal is late.
        #[arg(long, default_value_t = 30)]
        late_days: u32,
        /// Exports may exceed production plus imports by this percentage.
        #[arg(long, default_value_t = 5)]
        tolerance_percent: u32,
        /// Print CSV instead of text.
        #[arg(long)]
        csv: bool,
    },
    /// KP statistics (Annex III) of a year: quarterly imports and exports by HS code and
    /// counterpart, semi-annual production, per participant and world totals.
    Stats {
        #[command(flatten)]
        ledger: LedgerArgs,
        #[arg(long)]
        year: i32,
        /// One participant only (its code).
        #[arg(long)]
        participant: Option<String>,
        /// Print CSV instead of text.
        #[arg(long)]
        csv: bool,
        /// Also write an SVG chart of the participant's exports against its production plus
        /// imports, quarter by quarter (needs --participant).
        #[arg(long, requires = "participant")]
        chart: Option<PathBuf>,
    },
    /// A node's ledger store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

/// What every `cert` command takes.
#[derive(clap::Args)]
struct Submit {
    /// The authority's key file (exporting authority to issue, seal and void; importing
    /// authority to confirm receipt).
    #[arg(long)]
    key: PathBuf,
    /// The node's API address, like 127.0.0.1:27001.
    #[arg(long)]
    node: String,
    /// Return once the event is committed, with its height (or fail after --timeout).
    #[arg(long)]
    wait: bool,
    /// Seconds --wait waits for the commit.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The genesis hash of the network to sign for (as `kpledger genesis-hash` prints it): a
    /// node serving another network is refused. Default: that of --genesis.
    #[arg(long, conflicts_with = "genesis")]
    genesis_hash: Option<String>,
    /// The genesis file of the network to sign for. Default: genesis.json of the test network
    /// the key file belongs to (DIR/<participant>/<key>, as `kpledger testnet init` writes it).
    #[arg(long)]
    genesis: Option<PathBuf>,
}

impl Submit {
    fn expected(&self) -> Result<kpledger::node::ExpectedGenesis> {
        kpledger::node::ExpectedGenesis::resolve(self.genesis_hash.as_deref(), self.genesis.as_deref(), &self.key)
    }
}

#[derive(Subcommand)]
enum CertCommand {
    /// Issue a certificate (exporting authority): the certificate as JSON (see
    /// node-config/example-certificate.json).
    Issue {
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        submit: Submit,
    },
    /// Seal the shipment of a certificate (exporting authority).
    Seal {
        certificate: String,
        /// A tamper-evident seal's identifier (repeat for each seal).
        #[arg(long = "seal", required = true)]
        seals: Vec<String>,
        #[arg(long)]
        port_of_exit: String,
        #[command(flatten)]
        submit: Submit,
    },
    /// Confirm receipt of a shipment (importing authority).
    Receive {
        certificate: String,
        /// Parcels found on arrival.
        #[arg(long)]
        parcels: u32,
        /// Carats found on arrival, like 12500.75.
        #[arg(long)]
        carats: String,
        /// The seals were found broken.
        #[arg(long)]
        seals_broken: bool,
        #[arg(long, default_value = "")]
        remarks: String,
        #[command(flatten)]
        submit: Submit,
    },
    /// Void a certificate that has not been received (exporting authority).
    Void {
        certificate: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        submit: Submit,
    },
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Run a scenario file on a test network of its own, made in DIR from the participants the
    /// scenario names, started, driven step by step (each outcome checked), audited, and brought
    /// down, whatever happens.
    Run {
        file: PathBuf,
        /// Where the network is made (must not hold one); removed after a successful run unless --keep.
        #[arg(long)]
        dir: PathBuf,
        /// First TCP port; each node takes three (p2p, API, metrics).
        #[arg(long, default_value_t = 26000)]
        base_port: u16,
        /// Every registry participant (59), the scenario's roles among them.
        #[arg(long)]
        full: bool,
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand)]
enum GovernanceCommand {
    /// Draft an act and approve it with your authority's key.
    Propose {
        /// admit, suspend, restrict, readmit, withdraw, authority-key-added or authority-key-revoked.
        action: String,
        /// The participant the act is about (all actions but admit).
        #[arg(long)]
        participant: Option<String>,
        /// A zone a restricted participant may still export from (repeat for each).
        #[arg(long = "zone")]
        zones: Vec<String>,
        /// admit: the new participant as JSON (as in a genesis).
        #[arg(long)]
        participant_file: Option<PathBuf>,
        /// authority-key-added: the new key (hex) and its role (exporting or importing).
        #[arg(long)]
        new_key: Option<String>,
        #[arg(long)]
        role: Option<String>,
        /// authority-key-revoked: the key (hex).
        #[arg(long)]
        revoke_key: Option<String>,
        /// The decision's unique reference (for example the communique paragraph).
        #[arg(long)]
        reference: String,
        #[arg(long)]
        rationale: String,
        /// Put the act to written procedure (between plenaries): adopted at --deadline unless an
        /// entitled participant objects, if more than half of them approve.
        #[arg(long, requires = "deadline")]
        written_procedure: bool,
        /// When the written procedure closes: RFC 3339 (2027-03-31T17:00:00Z) or days from now (14d).
        #[arg(long, requires = "written_procedure")]
        deadline: Option<String>,
        #[command(flatten)]
        submit: Submit,
    },
    /// Approve an act a node holds, or a written procedure on the ledger, by its reference.
    Approve {
        reference: String,
        #[command(flatten)]
        submit: Submit,
    },
    /// Object to a written procedure (this ends it).
    Object {
        reference: String,
        /// Why (recorded on the ledger).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        submit: Submit,
    },
    /// Conclude a written procedure whose deadline has passed: adopted or lapsed, as the rules say.
    Conclude {
        reference: String,
        #[command(flatten)]
        submit: Submit,
    },
    /// Every act on the ledger (and those awaiting approval on this node) with its approvals,
    /// objections and outcome.
    History {
        /// Only acts about this participant or in which it took part.
        #[arg(long)]
        participant: Option<String>,
        /// The node's API address, like 127.0.0.1:27001.
        #[arg(long)]
        node: String,
    },
    /// Who has approved an act and who has not (every act the node holds, or one).
    Status {
        reference: Option<String>,
        /// The node's API address, like 127.0.0.1:27001.
        #[arg(long)]
        node: String,
    },
}

/// Where a review reads the committed ledger from.
#[derive(clap::Args)]
struct LedgerArgs {
    /// A node's API address, like 127.0.0.1:27001.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    node: Option<String>,
    /// A ledger export made by `kpledger export`.
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Every certificate a participant issued or received in a period, with its state
    /// (issued, sealed, received, voided, expired without receipt) and incidents; totals by HS
    /// code and counterpart; certificates awaiting receipt beyond --overdue-days.
    Participant {
        /// The participant's code, like BW.
        code: String,
        /// First issue date (YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// Last issue date (YYYY-MM-DD).
        #[arg(long)]
        to: String,
        /// Shipments not received this many days after issue are listed as overdue.
        #[arg(long, default_value_t = 30)]
        overdue_days: u32,
        #[command(flatten)]
        ledger: LedgerArgs,
        /// Print CSV instead of text.
        #[arg(long)]
        csv: bool,
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
    /// Write a genesis, fresh keys and node configurations for the first N registry participants
    /// (or those named with --codes).
    Init {
        /// How many participants (1 to 59), taken in registry order.
        #[arg(long, required_unless_present = "codes", conflicts_with = "codes")]
        participants: Option<usize>,
        /// The participants, by code (comma-separated), instead of the first N.
        #[arg(long, value_delimiter = ',')]
        codes: Vec<String>,
        /// A participant to be admitted later through governance (comma-separated): keys, its
        /// admission entry (DIR/<code>/participant.json) and a joining node's configuration.
        #[arg(long = "newcomer", value_delimiter = ',')]
        newcomers: Vec<String>,
        #[arg(long)]
        dir: PathBuf,
        /// First TCP port; each node takes three (p2p, API, metrics).
        #[arg(long, default_value_t = 27000)]
        base_port: u16,
        /// Participant registry (default: node-config/participants.toml as built in).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// No certificates: the nodes serve their APIs without TLS on loopback, to every local
        /// caller with every right (for measuring what TLS costs; nothing else).
        #[arg(long)]
        plaintext_api: bool,
        /// Peers reach each other through the WAN relay (`testnet relay`), which delays what
        /// passes between two nodes as the distance between their capitals would (run it
        /// beside the network: `scripts/wan-testnet.sh` does both).
        #[arg(long)]
        wan: bool,
        /// The signature rule the genesis names: cofactored (what new networks use), or strict
        /// (as every genesis made before the rule was named; for comparing their cost).
        #[arg(long, default_value_t = kp_domain::SignatureRule::Cofactored)]
        signature_rule: kp_domain::SignatureRule,
    },
    /// Issue a client certificate with a test network's CA (DIR/ca.pem, DIR/ca.key).
    ClientCert {
        #[arg(long)]
        dir: PathBuf,
        /// The role: authority:BW, observer, reviewer, reviewer:CD,CG or
        /// reviewer:CD,CG:2025-01-01:2025-12-31 (participants, or * for all, and a period of
        /// certificates' issue dates).
        #[arg(long)]
        role: String,
        /// The subject's name (the certificate's common name), as logs show it.
        #[arg(long)]
        name: String,
        /// Writes OUT.pem and OUT.key (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Days of validity from now.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// A certificate that expired yesterday (for testing what a node does with it).
        #[arg(long)]
        expired: bool,
    },
    /// Start every node of the network in DIR, each as its own process (logs in
    /// DIR/<node>/node.log, pid in DIR/<node>/node.pid), and wait for their APIs.
    Up {
        #[arg(long)]
        dir: PathBuf,
        /// Seconds to wait for every node's API to answer.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Stop every node of the network in DIR (SIGTERM, then SIGKILL after 10 s).
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The WAN relay of a network made with `init --wan`: carries every link between its nodes,
    /// delayed as between their capitals (node-config/capitals.toml), until SIGINT or SIGTERM.
    /// Writes DIR/wan.json (links, delays, the protocol's latency bound) once it listens.
    Relay {
        #[arg(long)]
        dir: PathBuf,
        /// Each chunk's delay varies within ± this fraction.
        #[arg(long, default_value_t = 0.1)]
        jitter: f64,
        /// A node whose links lose packets, both ways, as CODE:PERCENT (like ZA:5); repeatable.
        #[arg(long)]
        lossy: Vec<String>,
        /// Seed of the jitter and the losses.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// The exit status of an audit or proof that found the ledger or bundle wrong (1 is for a
/// command that could not run).
const INTEGRITY_FAILURE: i32 = 3;

/// A review's answer: JSON with `--json`, CSV with `--csv`, text otherwise.
fn print_review<T: serde::Serialize>(
    json: bool,
    csv: bool,
    value: &T,
    to_csv: impl FnOnce(&T) -> String,
    text: impl FnOnce(&T),
) -> Result<()> {
    if json {
        return print_json(value);
    }
    if csv {
        print!("{}", to_csv(value));
    } else {
        text(value);
    }
    Ok(())
}

/// What became of a submitted event (`what` names it).
fn print_submitted(json: bool, what: &str, r: &kpledger::cert::Submitted) -> Result<()> {
    if json {
        return print_json(r);
    }
    let id = &r.event_id;
    match (r.outcome.as_str(), r.height) {
        ("committed", Some(h)) => {
            println!("{what}: event {id} committed at height {h} ({})", r.block_time.as_deref().unwrap_or_default())
        }
        ("duplicate", Some(h)) => println!("{what}: event {id} was already committed at height {h}"),
        ("duplicate", None) => println!("{what}: event {id} is already pending"),
        _ => println!("{what}: event {id} accepted (pending)"),
    }
    Ok(())
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
    if let Some(auth) = cli.api.auth()? {
        kpledger::node::set_auth(auth);
    }
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
        Command::Testnet {
            command:
                TestnetCommand::Init {
                    participants,
                    codes,
                    newcomers,
                    dir,
                    base_port,
                    registry,
                    plaintext_api,
                    wan,
                    signature_rule,
                },
        } => {
            let registry = match registry {
                Some(path) => Registry::parse(
                    &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
                )?,
                None => Registry::default_registry()?,
            };
            let parse_codes = |list: &[String]| -> Result<Vec<kp_domain::ParticipantId>> {
                list.iter().map(|c| kpledger::review::parse_participant(c)).collect()
            };
            let selection = match participants {
                Some(n) => testnet::Selection::First(n),
                None => testnet::Selection::Codes(parse_codes(&codes)?),
            };
            let report = testnet::init_with(
                &registry,
                &selection,
                &parse_codes(&newcomers)?,
                &dir,
                base_port,
                now(),
                testnet::Layout { plaintext_api, wan, signature_rule: Some(signature_rule) },
            )?;
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
        Command::Testnet { command: TestnetCommand::ClientCert { dir, role, name, out, days, expired } } => {
            use kpledger::pki;
            let ca = pki::Ca::load(&dir)?;
            let role = if role.starts_with(kp_node::access::ROLE_URI_SCHEME) {
                role
            } else {
                format!("{}:{role}", kp_node::access::ROLE_URI_SCHEME)
            };
            let now = pki::now();
            let (from, until) = if expired {
                (now - time::Duration::days(2), now - time::Duration::days(1))
            } else {
                anyhow::ensure!((1..=3650).contains(&days), "--days must be 1 to 3650");
                (now - time::Duration::days(2), now + time::Duration::days(days))
            };
            let pair = ca.issue_client(&name, &role, from, until)?;
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let stem = out.file_name().and_then(|s| s.to_str()).context("--out names no file")?;
            pki::write_pair(parent, stem, &pair)?;
            if cli.json {
                print_json(&serde_json::json!({ "certificate": format!("{}.pem", out.display()), "role": role }))
            } else {
                println!("wrote {}.pem and {}.key ({role})", out.display(), out.display());
                Ok(())
            }
        }
        Command::Testnet { command: TestnetCommand::Up { dir, timeout } } => {
            let report = testnet::up(&dir, std::time::Duration::from_secs(timeout))?;
            if cli.json {
                return print_json(&report);
            }
            for n in &report.nodes {
                println!("started {:<4} pid {:<8} API {:<16} log {}", n.node, n.pid, n.api, n.log.display());
            }
            println!("{} of {} nodes answering", report.answering, report.nodes.len());
            anyhow::ensure!(report.answering == report.nodes.len(), "some nodes did not answer within {timeout} s");
            Ok(())
        }
        Command::Testnet { command: TestnetCommand::Relay { dir, jitter, lossy, seed } } => {
            let options = kpledger::wan::RelayOptions { jitter, lossy: kpledger::wan::parse_lossy(&lossy)?, seed };
            let report = kpledger::wan::run(&dir, options)?;
            print_json(&report)
        }
        Command::Testnet { command: TestnetCommand::Down { dir } } => {
            let report = testnet::down(&dir, std::time::Duration::from_secs(10))?;
            if cli.json {
                return print_json(&report);
            }
            println!("stopped {} nodes", report.stopped.len());
            if !report.killed.is_empty() {
                println!("killed after 10 s: {}", report.killed.join(" "));
            }
            Ok(())
        }
        Command::Cert { command } => {
            use kpledger::cert;
            let now = now();
            let (payload, submit) = match command {
                CertCommand::Issue { file, submit } => (cert::issue_payload(&file)?, submit),
                CertCommand::Seal { certificate, seals, port_of_exit, submit } => {
                    (cert::seal_payload(&certificate, &seals, &port_of_exit, now)?, submit)
                }
                CertCommand::Receive { certificate, parcels, carats, seals_broken, remarks, submit } => {
                    (cert::receive_payload(&certificate, parcels, &carats, !seals_broken, &remarks, now)?, submit)
                }
                CertCommand::Void { certificate, reason, submit } => {
                    (cert::void_payload(&certificate, &reason)?, submit)
                }
            };
            let wait = submit.wait.then(|| std::time::Duration::from_secs(submit.timeout));
            let r = cert::submit(&submit.node, &submit.key, &submit.expected()?, &payload, wait)?;
            print_submitted(cli.json, "event", &r)
        }
        Command::Governance { command } => {
            use kpledger::governance;
            let reports = match command {
                GovernanceCommand::Propose {
                    action,
                    participant,
                    zones,
                    participant_file,
                    new_key,
                    role,
                    revoke_key,
                    reference,
                    rationale,
                    written_procedure,
                    deadline,
                    submit,
                } => {
                    let spec =
                        governance::ActSpec { action, participant, zones, participant_file, new_key, role, revoke_key };
                    let wait = submit.wait.then(|| std::time::Duration::from_secs(submit.timeout));
                    if written_procedure {
                        let deadline = governance::parse_deadline(&deadline.unwrap_or_default(), now())?;
                        let r = governance::propose_written(
                            &submit.node,
                            &submit.key,
                            &submit.expected()?,
                            &spec,
                            &reference,
                            &rationale,
                            deadline,
                            wait,
                        )?;
                        return print_submitted(cli.json, &format!("written procedure {reference} opened"), &r);
                    }
                    vec![governance::propose(
                        &submit.node,
                        &submit.key,
                        &submit.expected()?,
                        &spec,
                        &reference,
                        &rationale,
                        wait,
                    )?]
                }
                GovernanceCommand::Approve { reference, submit } => {
                    let wait = submit.wait.then(|| std::time::Duration::from_secs(submit.timeout));
                    if governance::is_procedure(&submit.node, &reference)? {
                        let payload = governance::response_payload(&reference, None)?;
                        let r = kpledger::cert::submit(&submit.node, &submit.key, &submit.expected()?, &payload, wait)?;
                        return print_submitted(cli.json, &format!("approval of written procedure {reference}"), &r);
                    }
                    vec![governance::approve(&submit.node, &submit.key, &submit.expected()?, &reference, wait)?]
                }
                GovernanceCommand::Object { reference, reason, submit } => {
                    let wait = submit.wait.then(|| std::time::Duration::from_secs(submit.timeout));
                    let payload = governance::response_payload(&reference, Some(&reason))?;
                    let r = kpledger::cert::submit(&submit.node, &submit.key, &submit.expected()?, &payload, wait)?;
                    return print_submitted(cli.json, &format!("objection to written procedure {reference}"), &r);
                }
                GovernanceCommand::Conclude { reference, submit } => {
                    let wait = submit.wait.then(|| std::time::Duration::from_secs(submit.timeout));
                    let (adopted, r) =
                        governance::conclude(&submit.node, &submit.key, &submit.expected()?, &reference, wait)?;
                    let what = if adopted { "adopted" } else { "lapsed" };
                    return print_submitted(cli.json, &format!("written procedure {reference} concluded: {what}"), &r);
                }
                GovernanceCommand::History { participant, node } => {
                    let entries = governance::history(&node, participant.as_deref())?;
                    if cli.json {
                        return print_json(&entries);
                    }
                    if entries.is_empty() {
                        println!("no governance act");
                    }
                    for e in &entries {
                        println!("{} — {} {} ({}): {}", e.reference, e.action, e.subject, e.procedure, e.outcome);
                        if let Some(p) = &e.proposer {
                            println!("  proposed by {p}");
                        }
                        println!(
                            "  approved by: {}",
                            if e.approvals.is_empty() { "-".to_owned() } else { e.approvals.join(" ") }
                        );
                        for o in &e.objections {
                            println!("  objected by {}: {}", o.participant, o.reason);
                        }
                        if !e.missing.is_empty() {
                            println!("  not approved by: {}", e.missing.join(" "));
                        }
                        if let Some(d) = &e.deadline {
                            println!("  deadline {d}");
                        }
                        match (e.opened_height, e.decided_height) {
                            (Some(o), Some(d)) if o == d => println!("  at height {o}"),
                            (Some(o), Some(d)) => println!("  opened at height {o}, decided at height {d}"),
                            (Some(o), None) => println!("  opened at height {o}"),
                            _ => {}
                        }
                        if let Some(d) = &e.detail {
                            println!("  {d}");
                        }
                    }
                    return Ok(());
                }
                GovernanceCommand::Status { reference, node } => governance::status(&node, reference.as_deref())?,
            };
            if cli.json {
                return print_json(&reports);
            }
            if reports.is_empty() {
                println!("no governance act awaiting approval on this node");
            }
            for r in &reports {
                println!("act {} ({} {}), digest {}", r.reference, r.action, r.subject, &r.act_digest[..16]);
                println!("  approved by: {}", r.approved_by.join(" "));
                match (&r.refused, r.committed_height) {
                    (_, Some(h)) => println!("  applied at height {h}"),
                    (Some(why), None) => println!("  cannot apply: {why}"),
                    (None, None) if r.missing.is_empty() => println!("  complete: proposed to the network"),
                    (None, None) => println!("  awaiting approval of: {}", r.missing.join(" ")),
                }
                if let Some(e) = &r.submitted_event {
                    println!("  submitted as event {e}");
                }
            }
            Ok(())
        }
        Command::Scenario { command: ScenarioCommand::Run { file, dir, base_port, full, keep } } => {
            let json = cli.json;
            let opts = kpledger::scenario::RunOptions { dir, base_port, full, keep };
            let report = kpledger::scenario::run(&file, &opts, &mut |line| {
                if !json {
                    println!("{line}");
                }
            })?;
            if json {
                print_json(&report)?;
            }
            Ok(())
        }
        Command::Load { dir, certificates, rate, seed, timeout } => {
            let r = kpledger::load::run(&dir, certificates, rate, seed, std::time::Duration::from_secs(timeout))?;
            print_json(&r)?;
            anyhow::ensure!(r.complete, "not every event was committed within {timeout} s");
            Ok(())
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
        Command::Audit { data_dir, file, genesis } => {
            let genesis = genesis.map(|g| testnet::read_genesis(&g)).transpose()?;
            let run = match (data_dir, file, genesis.as_ref()) {
                (Some(dir), _, Some(g)) => kpledger::audit::audit_data_dir(&dir, g)?,
                (None, Some(file), g) => kpledger::audit::audit_file(&file, g)?,
                _ => anyhow::bail!("give --data-dir with --genesis, or --file"),
            };
            if cli.json {
                print_json(&run)?;
            } else {
                println!("{run}");
            }
            if !run.report.verified() {
                std::process::exit(INTEGRITY_FAILURE);
            }
            Ok(())
        }
        Command::Export { node, out } => {
            let s = kpledger::audit::export(&node, &out)?;
            if cli.json {
                return print_json(&s);
            }
            println!(
                "exported {} blocks ({} events, {} bytes) of {} (genesis {}) to {}",
                s.blocks, s.events, s.bytes, s.chain_id, s.genesis_hash, s.file
            );
            Ok(())
        }
        Command::Proof { certificate, node, out } => {
            let s = kpledger::audit::fetch_proof(&node, &certificate, &out)?;
            if cli.json {
                return print_json(&s);
            }
            println!("proof bundle of {} ({} bytes) written to {}", s.certificate, s.bytes, s.file);
            Ok(())
        }
        Command::VerifyProof { bundle, genesis } => {
            let genesis = testnet::read_genesis(&genesis)?;
            match kpledger::audit::verify_proof(&bundle, &genesis)? {
                Ok(report) if cli.json => print_json(&report),
                Ok(report) => {
                    println!("{report}");
                    Ok(())
                }
                Err(d) => {
                    if cli.json {
                        print_json(&serde_json::json!({ "result": "failed", "discrepancy": d }))?;
                    } else {
                        println!("NOT VERIFIED at height {} [{}]: {}", d.height, d.kind, d.reason);
                    }
                    std::process::exit(INTEGRITY_FAILURE);
                }
            }
        }
        Command::Report { command: ReportCommand::Participant { code, from, to, overdue_days, ledger, csv } } => {
            use kpledger::review;
            let participant = review::parse_participant(&code)?;
            let (from, to) = (review::parse_date("from", &from)?, review::parse_date("to", &to)?);
            anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
            let model = review::load(&review::source(ledger.node, ledger.file)?, Some(participant))?;
            // Due and overdue as of the ledger's consensus time (its last block), not this clock.
            let report = model.participant_report(participant, from, to, overdue_days, model.as_of());
            print_review(cli.json, csv, &report, kp_review::ParticipantReport::to_csv, |r| println!("{r}"))
        }
        Command::Anomalies { ledger, from, to, late_days, tolerance_percent, csv } => {
            use kpledger::review;
            let model = review::load(&review::source(ledger.node, ledger.file)?, None)?;
            // Late receipts as of the ledger's consensus time (its last block), not this clock.
            let mut params = kp_review::AnomalyParams::new(model.as_of());
            params.from = from.map(|d| review::parse_date("from", &d)).transpose()?;
            params.to = to.map(|d| review::parse_date("to", &d)).transpose()?;
            params.late_receipt_days = late_days;
            params.balance_tolerance_percent = tolerance_percent;
            params.validate()?;
            let found = model.anomalies(&params);
            print_review(
                cli.json,
                csv,
                &found,
                |f| kp_review::anomalies_to_csv(f),
                |found| {
                    if found.is_empty() {
                        println!("no anomaly found");
                    }
                    for a in found {
                        println!("{a}");
                    }
                },
            )
        }
        Command::Stats { ledger, year, participant, csv, chart } => {
            use kpledger::review;
            let participant = participant.map(|p| review::parse_participant(&p)).transpose()?;
            let model = review::load(&review::source(ledger.node, ledger.file)?, participant)?;
            let stats = model.stats(year, participant);
            if let (Some(file), Some(p)) = (&chart, participant) {
                review::write_file(file, &kp_review::chart_svg(&stats, p))?;
            }
            print_review(cli.json, csv, &stats, kp_review::Stats::to_csv, |stats| {
                println!("{stats}");
                if let Some(file) = &chart {
                    println!("chart written to {}", file.display());
                }
            })
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
            match s.clock_offset_ms {
                None => println!("clock: not measured yet (no commit seen since the node started)"),
                Some(ms) => {
                    let off = ms.unsigned_abs() > s.clock_warning_ms;
                    println!(
                        "clock: {} consensus time{}",
                        kpledger::node::describe_offset(ms),
                        match (off, s.clock_off_since_ms) {
                            (true, since) if since > 0 => format!(
                                " — OFF by more than {} ms since {} (fix this host's time service)",
                                s.clock_warning_ms,
                                kp_domain::Timestamp(since)
                            ),
                            (true, _) => format!(" — OFF by more than {} ms", s.clock_warning_ms),
                            (false, _) => format!(" (within {} ms)", s.clock_warning_ms),
                        }
                    );
                }
            }
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
                    "  {}. {}  {:<20} height {:>6}.{:<4} signer {}  event {}{}",
                    s.step,
                    s.block_time,
                    s.kind,
                    s.height,
                    s.index,
                    &s.signer[..16.min(s.signer.len())],
                    &s.event_id[..16.min(s.event_id.len())],
                    if s.redacted { "  (redacted: signed bytes withheld, no traders or values)" } else { "" }
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
