//! `kpledger node` (run a participant's or observer's node) and `kpledger status` (ask a node).

use anyhow::{Context, Result};
use kp_node::NodeConfig;
use kp_node::pb::{self, node_client::NodeClient};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Runs the node of `config` until SIGINT or SIGTERM. Logs go to stderr through `tracing`
/// (level from `RUST_LOG`, default `info`; JSON lines with `json_logs`).
pub fn run_node(config: &Path, json_logs: bool) -> Result<()> {
    let config = NodeConfig::load(config)?;
    let genesis = crate::testnet::read_genesis(&config.genesis)?;
    let key = crate::keyfile::read(&config.node_key)
        .with_context(|| format!("reading the node key {}", config.node_key.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    if json_logs {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let api = tokio::net::TcpListener::bind(config.api)
            .await
            .with_context(|| format!("binding the API address {}", config.api))?;
        let metrics = tokio::net::TcpListener::bind(config.metrics)
            .await
            .with_context(|| format!("binding the metrics address {}", config.metrics))?;
        let explorer = match &config.explorer {
            Some(e) => Some(
                tokio::net::TcpListener::bind(e.address)
                    .await
                    .with_context(|| format!("binding the explorer address {}", e.address))?,
            ),
            None => None,
        };
        kp_node::run(genesis, key, config, kp_node::Listeners { api, metrics, explorer }, shutdown_signal())
            .await
            .context("the node stopped on an error")
    });
    // Everything durable is written by the time `run` returns; tasks still running (a client's
    // stream, a peer's request being served) are given a moment, not a veto over the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("stop requested");
}

/// How this process reaches nodes' APIs: set once by the command line (`--ca`, `--cert`,
/// `--cert-key`, `--plaintext`, `--testnet`, `--as`), or by a command that runs a test network
/// of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAuth {
    /// TLS, the server checked against `ca`, as the identity of a client certificate and its
    /// key (anonymous without).
    Tls { ca: PathBuf, identity: Option<(PathBuf, PathBuf)> },
    /// A node serving its API without TLS on loopback (`api_plaintext`).
    Plaintext,
    /// A test network's directory (as `kpledger testnet init` writes it): its CA, and for each
    /// call the identity it needs — the signer's participant's authority for a signed
    /// submission, `reader` otherwise.
    Testnet { dir: PathBuf, reader: Reader },
}

/// Who reads, on a test network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// `DIR/clients/reviewer`: every participant (the default).
    Reviewer,
    Observer,
    Anonymous,
    Authority(String),
}

impl Reader {
    pub fn parse(s: &str) -> Result<Reader> {
        Ok(match s {
            "reviewer" => Reader::Reviewer,
            "observer" => Reader::Observer,
            "anonymous" => Reader::Anonymous,
            code if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) => Reader::Authority(code.into()),
            other => anyhow::bail!("--as {other:?}: reviewer, observer, anonymous or a participant code like BW"),
        })
    }
}

static AUTH: std::sync::RwLock<Option<ApiAuth>> = std::sync::RwLock::new(None);

/// Sets how this process reaches APIs from now on.
pub fn set_auth(auth: ApiAuth) {
    *AUTH.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(auth);
}

fn auth() -> Option<ApiAuth> {
    AUTH.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// The files of a test network's client identity `name` (a participant code, `reviewer` or
/// `observer`), as `kpledger testnet init` writes them.
pub fn testnet_identity(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let base = if name.len() == 2 { dir.join(name) } else { dir.join("clients") };
    let stem = if name.len() == 2 { "client".to_owned() } else { name.to_owned() };
    (base.join(format!("{stem}.pem")), base.join(format!("{stem}.key")))
}

/// The test network a signing key file belongs to (`DIR/<participant>/<role>.key` beside
/// `DIR/genesis.json`), and the participant.
pub fn testnet_of_key(key_file: &Path) -> Option<(PathBuf, String)> {
    let key = std::path::absolute(key_file).ok()?;
    let pdir = key.parent()?;
    let dir = pdir.parent()?;
    let code = pdir.file_name()?.to_str()?.to_owned();
    dir.join("genesis.json").is_file().then(|| (dir.to_path_buf(), code))
}

/// How to reach a test network's nodes as `who` (a participant code, `reviewer`, `observer`;
/// anonymous when `None`): TLS with its CA, or plaintext if it was made with `--plaintext-api`.
pub fn testnet_auth(dir: &Path, who: Option<&str>) -> ApiAuth {
    let ca = dir.join("ca.pem");
    if !ca.is_file() {
        // `testnet init --plaintext-api`: the nodes serve their APIs without TLS.
        return ApiAuth::Plaintext;
    }
    ApiAuth::Tls { ca, identity: who.map(|w| testnet_identity(dir, w)) }
}

/// How this process reads: its `--testnet` reader's identity resolved, or the auth it was given.
fn reader_auth() -> Result<ApiAuth> {
    Ok(match auth() {
        Some(ApiAuth::Testnet { dir, reader }) => match reader {
            Reader::Reviewer => testnet_auth(&dir, Some("reviewer")),
            Reader::Observer => testnet_auth(&dir, Some("observer")),
            Reader::Anonymous => testnet_auth(&dir, None),
            Reader::Authority(p) => testnet_auth(&dir, Some(&p)),
        },
        Some(a) => a,
        None => anyhow::bail!(
            "how to reach the node's API? It is served over TLS: pass --ca FILE (the network's CA) with --cert \
             FILE and --cert-key FILE for your identity, or --testnet DIR (or KP_TESTNET) for a test network"
        ),
    })
}

/// A connection to a node's API at `addr` (`HOST:PORT`, or a URL) as this process's reader.
pub async fn connect(addr: &str) -> Result<NodeClient<tonic::transport::Channel>> {
    connect_with(addr, &reader_auth()?).await
}

/// A connection to submit what `key_file`'s authority signed: on a test network, as that
/// participant's authority (the key file's directory names it).
pub async fn connect_signing(addr: &str, key_file: &Path) -> Result<NodeClient<tonic::transport::Channel>> {
    let resolved = match auth() {
        Some(ApiAuth::Testnet { dir, .. }) => {
            let code = testnet_of_key(key_file).map(|(_, c)| c);
            let code = code.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is not a key file of the test network {}: pass --cert and --cert-key",
                    key_file.display(),
                    dir.display()
                )
            })?;
            testnet_auth(&dir, Some(&code))
        }
        Some(a) => a,
        None => match testnet_of_key(key_file) {
            Some((dir, code)) => testnet_auth(&dir, Some(&code)),
            None => anyhow::bail!(
                "how to reach the node's API? It is served over TLS: pass --ca FILE (the network's CA) with --cert \
                 FILE and --cert-key FILE for the authority's client certificate"
            ),
        },
    };
    connect_with(addr, &resolved).await
}

/// A connection to `addr` with `auth` (TLS, or plaintext).
pub async fn connect_with(addr: &str, auth: &ApiAuth) -> Result<NodeClient<tonic::transport::Channel>> {
    let auth = match auth {
        ApiAuth::Testnet { dir, .. } => &testnet_auth(dir, Some("reviewer")),
        a => a,
    };
    let host = addr.trim_start_matches("http://").trim_start_matches("https://");
    let endpoint = match auth {
        ApiAuth::Plaintext => tonic::transport::Endpoint::from_shared(format!("http://{host}")),
        ApiAuth::Tls { .. } | ApiAuth::Testnet { .. } => {
            tonic::transport::Endpoint::from_shared(format!("https://{host}"))
        }
    }
    .with_context(|| format!("{addr:?} is not a node address like 127.0.0.1:27001"))?
    .connect_timeout(std::time::Duration::from_secs(5));
    let endpoint = match auth {
        ApiAuth::Plaintext | ApiAuth::Testnet { .. } => endpoint,
        ApiAuth::Tls { ca, identity } => {
            let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
            if let Some((cert, key)) = identity {
                tls = tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint.tls_config(tls).with_context(|| format!("the TLS files ({})", ca.display()))?
        }
    };
    let channel = endpoint.connect().await.map_err(|e| {
        // The cause (certificate refused, connection refused) is in the source chain.
        let mut msg = format!("cannot reach the node at {host}");
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        anyhow::anyhow!(msg)
    })?;
    // Blocks of up to 16 MiB of events, and proof bundles, are larger than tonic's 4 MiB default.
    Ok(NodeClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

/// Runs one client call to completion (the CLI's commands are one-shot).
pub fn block_on<T>(call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(call)
}

/// The network a client means to sign for, by its genesis hash, and where that came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedGenesis {
    pub hash: kp_domain::Hash32,
    /// `--genesis-hash`, a genesis file's path, for error messages.
    pub from: String,
}

impl ExpectedGenesis {
    /// The expected genesis: `--genesis-hash HEX`, else `--genesis FILE`, else the genesis.json
    /// of the test network `key_file` belongs to (`DIR/<participant>/<role>.key`, as
    /// `kpledger testnet init` writes them). Without any, an error naming the flags: a client
    /// never signs for whatever network a node says it serves.
    pub fn resolve(hash: Option<&str>, file: Option<&Path>, key_file: &Path) -> Result<ExpectedGenesis> {
        if let Some(hex) = hash {
            let hash = kp_domain::Hash32::from_hex(hex.trim()).map_err(|e| {
                anyhow::anyhow!("--genesis-hash {hex:?} is not a genesis hash (64 hex digits, as `kpledger genesis-hash` prints it): {e}")
            })?;
            return Ok(ExpectedGenesis { hash, from: "--genesis-hash".into() });
        }
        if let Some(file) = file {
            return Self::of_file(file);
        }
        let testnet = std::path::absolute(key_file)
            .ok()
            .and_then(|k| k.parent().and_then(Path::parent).map(|d| d.join("genesis.json")))
            .filter(|g| g.is_file());
        match testnet {
            Some(g) => Self::of_file(&g),
            None => anyhow::bail!(
                "which network to sign for? Pass --genesis FILE (the network's genesis.json) or --genesis-hash HEX \
                 (as `kpledger genesis-hash` prints it); no genesis.json was found in the test network directory \
                 above the key file {} either, and a node's own word is not taken for it",
                key_file.display()
            ),
        }
    }

    pub fn of_file(file: &Path) -> Result<ExpectedGenesis> {
        let genesis = crate::testnet::read_genesis(file)?;
        Ok(ExpectedGenesis { hash: kp_proto::genesis_hash(&genesis), from: file.display().to_string() })
    }
}

/// The chain a node serves, once its genesis is the expected one (what a client signs for): the
/// chain id is taken from the genesis whose hash was checked, never from the node's word alone.
pub async fn chain_id(
    client: &mut NodeClient<tonic::transport::Channel>,
    expected: &ExpectedGenesis,
) -> Result<kp_domain::ChainId> {
    let g = client
        .get_genesis(pb::GetGenesisRequest {})
        .await
        .map_err(|e| anyhow::anyhow!("asking the node for its genesis: {}", e.message()))?
        .into_inner();
    let genesis = kp_proto::decode_genesis(&g.genesis).context("the node's genesis does not decode")?;
    let hash = kp_proto::genesis_hash(&genesis);
    anyhow::ensure!(
        hash == expected.hash,
        "the node serves another network: its genesis hash is {hash} (chain {}), the expected one is {} (from {}); \
         nothing was signed",
        genesis.chain_id,
        expected.hash,
        expected.from
    );
    Ok(genesis.chain_id)
}

/// A node's committed ledger as it streams it: the genesis (canonical bytes, decoded) and the
/// height of the head when the stream starts.
#[derive(Debug)]
pub struct LedgerStart {
    pub genesis_bytes: Vec<u8>,
    pub genesis: kp_domain::Genesis,
    pub head: u64,
}

/// Reads a node's genesis and head height.
pub async fn ledger_start(client: &mut NodeClient<tonic::transport::Channel>) -> Result<LedgerStart> {
    let g = client
        .get_genesis(pb::GetGenesisRequest {})
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?
        .into_inner();
    let genesis = kp_proto::decode_genesis(&g.genesis).context("the node's genesis does not decode")?;
    let head = client
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?
        .into_inner()
        .height;
    Ok(LedgerStart { genesis_bytes: g.genesis, genesis, head })
}

/// Hands `block` every committed block from height 1 to `head`, in order; fails if the node
/// skips a height or ends its stream early.
/// A block with events redacted for this caller is refused unless `partial` (the caller then
/// handles `redacted` itself).
pub async fn each_block(
    client: &mut NodeClient<tonic::transport::Channel>,
    head: u64,
    partial: bool,
    mut block: impl FnMut(pb::GetBlockResponse) -> Result<()>,
) -> Result<()> {
    if head == 0 {
        return Ok(());
    }
    let mut stream = client
        .subscribe_blocks(pb::SubscribeBlocksRequest { from_height: 1 })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?
        .into_inner();
    let mut next = 1;
    while let Some(b) = stream.message().await.map_err(|e| anyhow::anyhow!("{}", e.message()))? {
        anyhow::ensure!(b.height == next, "the node sent block {} where {next} was expected", b.height);
        anyhow::ensure!(
            partial || b.redacted.is_empty(),
            "the node withholds the signed bytes of {} of the {} events of block {} from this caller (commercial \
             fields of participants it is not entitled to): the whole ledger needs an identity entitled to every \
             participant (a reviewer of all), or the node's data directory",
            b.redacted.len(),
            b.events.len(),
            b.height
        );
        block(b)?;
        if next == head {
            return Ok(());
        }
        next += 1;
    }
    anyhow::bail!("the node's stream ended before block {next} of {head}")
}

/// An offset as `kpledger status` prints it ("1m 0.0s ahead of").
pub fn describe_offset(offset_ms: i64) -> String {
    kp_node::core::clock::describe(offset_ms)
}

pub fn status(addr: &str) -> Result<pb::GetStatusResponse> {
    status_with(addr, &reader_auth()?)
}

/// `status` with this `auth`, whatever the process's own.
pub fn status_with(addr: &str, auth: &ApiAuth) -> Result<pb::GetStatusResponse> {
    block_on(async {
        let mut client = connect_with(addr, auth).await?;
        let s = client.get_status(pb::GetStatusRequest {}).await.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        Ok(s.into_inner())
    })
}

#[derive(Debug, Serialize)]
pub struct CustodyStep {
    pub step: usize,
    pub kind: String,
    pub height: u64,
    pub index: u32,
    pub block_time: String,
    pub signer: String,
    pub event_id: String,
    /// The caller may not see the event's commercial fields: its bytes were withheld.
    pub redacted: bool,
}

#[derive(Debug, Serialize)]
pub struct Custody {
    pub certificate: String,
    /// Empty when the ledger has no such certificate.
    pub state: String,
    pub steps: Vec<CustodyStep>,
}

/// A certificate's custody history as a node serves it, in ledger order.
pub fn custody(addr: &str, certificate: &str) -> Result<Custody> {
    let number = kp_domain::CertificateNumber::new(certificate)
        .map_err(|e| anyhow::anyhow!("{certificate:?} is not a certificate number: {e}"))?;
    block_on(async {
        let mut client = connect(addr).await?;
        let c = client
            .get_custody(pb::GetCustodyRequest { certificate: number.to_string() })
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?
            .into_inner();
        let steps = c
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let at = s.position.unwrap_or_default();
                CustodyStep {
                    step: i + 1,
                    kind: s.kind,
                    height: at.height,
                    index: at.index,
                    block_time: kp_domain::Timestamp(at.block_time_ms).to_string(),
                    signer: s.signer,
                    event_id: s.event_id,
                    redacted: s.redacted,
                }
            })
            .collect();
        Ok(Custody { certificate: c.certificate, state: c.state, steps })
    })
}
