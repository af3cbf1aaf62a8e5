//! `kpledger node` (run a participant's or observer's node) and `kpledger status` (ask a node).

use anyhow::{Context, Result};
use kp_node::NodeConfig;
use kp_node::pb::{self, node_client::NodeClient};
use serde::Serialize;
use std::path::Path;

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
        kp_node::run(genesis, key, config, api, metrics, shutdown_signal())
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

/// A connection to a node's API at `addr` (`HOST:PORT`, or a full `http://` URL).
pub async fn connect(addr: &str) -> Result<NodeClient<tonic::transport::Channel>> {
    let url = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("{addr:?} is not a node address like 127.0.0.1:27001"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint.connect().await.with_context(|| format!("cannot reach the node at {url}"))?;
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
pub async fn each_block(
    client: &mut NodeClient<tonic::transport::Channel>,
    head: u64,
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
    block_on(async {
        let mut client = connect(addr).await?;
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
                }
            })
            .collect();
        Ok(Custody { certificate: c.certificate, state: c.state, steps })
    })
}
