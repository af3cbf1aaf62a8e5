//! The node's configuration file (TOML), checked in full before anything starts: every error
//! names the field and what is wrong with it.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Consensus timing, with defaults suited to a network of up to 59 nodes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    pub round_timeout_base_ms: u64,
    pub round_timeout_cap_ms: u64,
    /// How far this node's clock may be from the voters' consensus time before the node warns
    /// (log, `kp_clock_offset_seconds`, `kpledger status`). Consensus never checks a block's
    /// time against this node's clock, so the node votes whatever its offset.
    pub clock_warning_ms: u64,
    pub idle_block_ms: u64,
    /// Most events a proposed block carries.
    pub max_block_events: usize,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            round_timeout_base_ms: 2_000,
            round_timeout_cap_ms: 30_000,
            clock_warning_ms: 2_000,
            idle_block_ms: 5_000,
            max_block_events: 4_000,
        }
    }
}

/// Most events a block may carry, whatever the configuration says (what peers decode).
pub const MAX_BLOCK_EVENTS: usize = kp_consensus::wire::MAX_BLOCK_EVENTS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    genesis: PathBuf,
    data_dir: PathBuf,
    node_key: PathBuf,
    listen: String,
    #[serde(default)]
    bootstrap: Vec<String>,
    api: String,
    metrics: String,
    #[serde(default)]
    consensus: ConsensusSection,
    #[serde(default)]
    joining: bool,
    #[serde(default = "default_worker_threads")]
    worker_threads: usize,
    /// The API's TLS files; required unless `api_plaintext` is set.
    #[serde(default)]
    api_tls: Option<RawTls>,
    /// Serve the API without TLS: only on a loopback address, and every caller then has every
    /// right (docs/security.md).
    #[serde(default)]
    api_plaintext: bool,
    /// Serve the metrics on an address other than loopback.
    #[serde(default)]
    metrics_public: bool,
    /// The web explorer's address (loopback only); off when absent.
    #[serde(default)]
    explorer: Option<String>,
    /// Whose view the explorer shows (a role URI, like a client certificate's).
    #[serde(default)]
    explorer_role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificate: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    #[serde(default)]
    participant_ca: Vec<RawParticipantCa>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticipantCa {
    participant: String,
    certificate: PathBuf,
}

/// Where the API's TLS files are (read and checked when the node starts: `kp_node::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTlsFiles {
    /// The node's certificate chain (PEM), its own certificate first.
    pub certificate: PathBuf,
    /// The certificate's private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The network CA (PEM): client certificates it issued carry any role.
    pub client_ca: PathBuf,
    /// A participant's own CA (PEM) with its two-letter code: client certificates it issued may
    /// only be that participant's authorities.
    pub participant_cas: Vec<(String, PathBuf)>,
}

/// How the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSecurity {
    Tls(ApiTlsFiles),
    /// Without TLS, on loopback, by explicit choice.
    Plaintext,
}

/// Threads of the node's async runtime unless the file says otherwise.
pub const DEFAULT_WORKER_THREADS: usize = 2;
/// Most threads the file may ask for.
pub const MAX_WORKER_THREADS: usize = 64;

fn default_worker_threads() -> usize {
    DEFAULT_WORKER_THREADS
}

/// A checked configuration; relative paths are resolved against the file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub genesis: PathBuf,
    pub data_dir: PathBuf,
    pub node_key: PathBuf,
    /// libp2p listen address (multiaddr text).
    pub listen: String,
    pub bootstrap: Vec<String>,
    pub api: SocketAddr,
    pub metrics: SocketAddr,
    pub consensus: ConsensusSection,
    /// The node of a participant being admitted through governance: its key is not in the
    /// genesis; it follows the chain by catch-up and takes part in consensus once the
    /// admission is committed.
    pub joining: bool,
    /// Threads of the node's async runtime (the API, the network and the core share them).
    pub worker_threads: usize,
    pub api_security: ApiSecurity,
    /// The web explorer (`kp_node::explorer`): its address and whose view it shows.
    pub explorer: Option<ExplorerConfig>,
}

/// Where the explorer listens and the caller identity that decides what its pages show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplorerConfig {
    /// A loopback address: the explorer authenticates no one, so it answers only on this host.
    pub address: SocketAddr,
    /// `None`: the node's own participant's authority (an observer on an observer's node).
    pub role: Option<crate::role::Role>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("configuration {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration {path}: field `{field}`: {message}")]
    Field { path: PathBuf, field: &'static str, message: String },
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        NodeConfig::parse(&text, path)
    }

    /// Parses and checks `text`, read from `path` (relative paths are taken from its directory).
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax { path: path.into(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let field = |field: &'static str, message: String| ConfigError::Field { path: path.into(), field, message };
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let genesis = resolve(&raw.genesis);
        if !genesis.is_file() {
            return Err(field("genesis", format!("{} is not a file", genesis.display())));
        }
        let node_key = resolve(&raw.node_key);
        if !node_key.is_file() {
            return Err(field("node_key", format!("{} is not a file", node_key.display())));
        }
        let data_dir = resolve(&raw.data_dir);
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(field("data_dir", format!("{} exists and is not a directory", data_dir.display())));
        }
        check_multiaddr(&raw.listen).map_err(|m| field("listen", m))?;
        for b in &raw.bootstrap {
            check_bootstrap(b).map_err(|m| field("bootstrap", format!("{b}: {m}")))?;
        }
        let api: SocketAddr = raw
            .api
            .parse()
            .map_err(|e| field("api", format!("{:?} is not an address like 127.0.0.1:27001: {e}", raw.api)))?;
        let metrics: SocketAddr = raw
            .metrics
            .parse()
            .map_err(|e| field("metrics", format!("{:?} is not an address like 127.0.0.1:27002: {e}", raw.metrics)))?;
        if api == metrics {
            return Err(field("metrics", format!("{metrics} is also the API address")));
        }
        if !metrics.ip().is_loopback() && !raw.metrics_public {
            return Err(field(
                "metrics",
                format!("{metrics} is not a loopback address: set metrics_public = true to serve metrics there"),
            ));
        }
        let api_security = match (raw.api_tls, raw.api_plaintext) {
            (Some(_), true) => {
                return Err(field("api_plaintext", "is set together with [api_tls]: choose one".to_owned()));
            }
            (None, false) => {
                return Err(field(
                    "api_tls",
                    "is missing: the API is served over TLS ([api_tls] with certificate, key and client_ca), \
                     or without it on a loopback address with api_plaintext = true"
                        .to_owned(),
                ));
            }
            (None, true) => {
                if !api.ip().is_loopback() {
                    return Err(field(
                        "api_plaintext",
                        format!(
                            "the API address {api} is not a loopback address: plaintext is served on loopback only"
                        ),
                    ));
                }
                ApiSecurity::Plaintext
            }
            (Some(t), false) => {
                let file = |name: &'static str, p: &Path| {
                    let p = resolve(p);
                    if p.is_file() { Ok(p) } else { Err(field(name, format!("{} is not a file", p.display()))) }
                };
                let mut participant_cas = Vec::new();
                for ca in &t.participant_ca {
                    let code = &ca.participant;
                    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err(field(
                            "api_tls.participant_ca",
                            format!("participant {code:?} is not a two-letter participant code"),
                        ));
                    }
                    participant_cas.push((code.clone(), file("api_tls.participant_ca", &ca.certificate)?));
                }
                ApiSecurity::Tls(ApiTlsFiles {
                    certificate: file("api_tls.certificate", &t.certificate)?,
                    key: file("api_tls.key", &t.key)?,
                    client_ca: file("api_tls.client_ca", &t.client_ca)?,
                    participant_cas,
                })
            }
        };
        let explorer = match &raw.explorer {
            None => {
                if raw.explorer_role.is_some() {
                    return Err(field("explorer_role", "is set without an explorer address".to_owned()));
                }
                None
            }
            Some(a) => {
                let address: SocketAddr = a
                    .parse()
                    .map_err(|e| field("explorer", format!("{a:?} is not an address like 127.0.0.1:27003: {e}")))?;
                if !address.ip().is_loopback() {
                    return Err(field(
                        "explorer",
                        format!(
                            "{address} is not a loopback address: the explorer authenticates no one, so it is \
                             served on this host only (reach it through an authenticating proxy)"
                        ),
                    ));
                }
                if [api, metrics].contains(&address) {
                    return Err(field("explorer", format!("{address} is also the API's or the metrics' address")));
                }
                let role = raw
                    .explorer_role
                    .as_deref()
                    .map(crate::role::parse_role)
                    .transpose()
                    .map_err(|m| field("explorer_role", m))?;
                Some(ExplorerConfig { address, role })
            }
        };
        let c = &raw.consensus;
        if c.max_block_events == 0 || c.max_block_events > MAX_BLOCK_EVENTS {
            return Err(field("consensus", format!("max_block_events must be 1 to {MAX_BLOCK_EVENTS}")));
        }
        engine_config(c).check().map_err(|e| field("consensus", e.to_string()))?;
        if c.clock_warning_ms == 0 {
            return Err(field("consensus.clock_warning_ms", "must be at least 1".to_owned()));
        }
        if raw.worker_threads == 0 || raw.worker_threads > MAX_WORKER_THREADS {
            return Err(field("worker_threads", format!("must be 1 to {MAX_WORKER_THREADS}")));
        }
        Ok(NodeConfig {
            genesis,
            data_dir,
            node_key,
            listen: raw.listen,
            bootstrap: raw.bootstrap,
            api,
            metrics,
            consensus: raw.consensus,
            joining: raw.joining,
            worker_threads: raw.worker_threads,
            api_security,
            explorer,
        })
    }
}

/// The consensus engine's configuration from the file's section.
pub fn engine_config(c: &ConsensusSection) -> kp_consensus::Config {
    kp_consensus::Config {
        round_timeout_base_ms: c.round_timeout_base_ms,
        round_timeout_cap_ms: c.round_timeout_cap_ms,
        idle_block_ms: c.idle_block_ms,
    }
}

/// A peer's address: a TCP multiaddr followed by `/p2p/<peer id>` (the peer's node key, which
/// the handshake checks).
fn check_bootstrap(s: &str) -> Result<(), String> {
    let Some((addr, peer)) = s.split_once("/p2p/") else {
        return Err(format!("{s:?} does not end with /p2p/<peer id>"));
    };
    check_multiaddr(addr)?;
    peer.parse::<libp2p::PeerId>().map_err(|e| format!("{peer:?} is not a peer id: {e}"))?;
    Ok(())
}

/// A TCP multiaddr of the form `/ip4/A.B.C.D/tcp/PORT` or `/ip6/.../tcp/PORT`.
fn check_multiaddr(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = match parts.as_slice() {
        ["", "ip4", ip, "tcp", port] => ip.parse::<std::net::Ipv4Addr>().is_ok() && port.parse::<u16>().is_ok(),
        ["", "ip6", ip, "tcp", port] => ip.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok(),
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("{s:?} is not a TCP multiaddr like /ip4/127.0.0.1/tcp/27000")) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("genesis.json"), "{}").unwrap();
        std::fs::write(dir.path().join("node.key"), "k").unwrap();
        for f in ["tls.pem", "tls.key", "ca.pem"] {
            std::fs::write(dir.path().join(f), "pem").unwrap();
        }
        let path = dir.path().join("node.toml");
        (dir, path)
    }

    const GOOD: &str = r#"
genesis = "genesis.json"
data_dir = "data"
node_key = "node.key"
listen = "/ip4/127.0.0.1/tcp/27000"
bootstrap = ["/ip4/127.0.0.1/tcp/27003/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"]
api = "127.0.0.1:27001"
metrics = "127.0.0.1:27002"
[api_tls]
certificate = "tls.pem"
key = "tls.key"
client_ca = "ca.pem"
"#;

    #[test]
    fn a_good_file_resolves_paths_from_its_directory() {
        let (dir, path) = setup();
        let c = NodeConfig::parse(GOOD, &path).unwrap();
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.genesis, dir.path().join("genesis.json"));
        assert_eq!(c.api.port(), 27001);
        assert_eq!(c.consensus, ConsensusSection::default());
        assert_eq!(c.worker_threads, DEFAULT_WORKER_THREADS);
        let one = NodeConfig::parse(&format!("worker_threads = 1\n{GOOD}"), &path).unwrap();
        assert_eq!(one.worker_threads, 1);
        let ApiSecurity::Tls(tls) = &c.api_security else { panic!("TLS expected") };
        assert_eq!(tls.client_ca, dir.path().join("ca.pem"));
        let plain = GOOD.split("[api_tls]").next().unwrap().to_owned() + "api_plaintext = true\n";
        assert_eq!(NodeConfig::parse(&plain, &path).unwrap().api_security, ApiSecurity::Plaintext);
        assert_eq!(c.explorer, None);
        let with = format!("explorer = \"127.0.0.2:27001\"\nexplorer_role = \"kp-ledger:reviewer:CD\"\n{GOOD}");
        let e = NodeConfig::parse(&with, &path).unwrap().explorer.unwrap();
        assert_eq!(e.address, "127.0.0.2:27001".parse().unwrap());
        assert!(matches!(e.role, Some(crate::role::Role::Reviewer(_))));
    }

    #[test]
    fn each_bad_field_is_named() {
        let (_dir, path) = setup();
        let cases = [
            (GOOD.replace("genesis.json", "missing.json"), "`genesis`"),
            (GOOD.replace("\"node.key\"", "\"nokey\""), "`node_key`"),
            (GOOD.replace("/ip4/127.0.0.1/tcp/27000", "127.0.0.1:27000"), "`listen`"),
            (GOOD.replace("/ip4/127.0.0.1/tcp/27003", "/ip4/300.0.0.1/tcp/1"), "`bootstrap`"),
            (GOOD.replace("/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", ""), "`bootstrap`"),
            (GOOD.replace("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", "12D3Koo"), "`bootstrap`"),
            (GOOD.replace("127.0.0.1:27001", "localhost"), "`api`"),
            (GOOD.replace("127.0.0.1:27002", "127.0.0.1:27001"), "`metrics`"),
            (format!("{GOOD}\n[consensus]\nround_timeout_cap_ms = 99999999\n"), "`consensus`"),
            (format!("{GOOD}\n[consensus]\nmax_block_events = 0\n"), "`consensus`"),
            (format!("worker_threads = 0\n{GOOD}"), "`worker_threads`"),
            (format!("worker_threads = 65\n{GOOD}"), "`worker_threads`"),
            (format!("{GOOD}\ncolour = \"blue\"\n"), "unknown field"),
            (GOOD.replace("\"tls.key\"", "\"missing.key\""), "`api_tls.key`"),
            (GOOD.replace("\"ca.pem\"", "\"missing.pem\""), "`api_tls.client_ca`"),
            (format!("api_plaintext = true\n{GOOD}"), "`api_plaintext`"),
            (GOOD.split("[api_tls]").next().unwrap().to_owned(), "`api_tls`"),
            (
                GOOD.split("[api_tls]").next().unwrap().replace("127.0.0.1:27001", "0.0.0.0:27001")
                    + "api_plaintext = true\n",
                "`api_plaintext`",
            ),
            (GOOD.replace("127.0.0.1:27002", "0.0.0.0:27002"), "`metrics`"),
            (
                format!("{GOOD}[[api_tls.participant_ca]]\nparticipant = \"bw\"\ncertificate = \"ca.pem\"\n"),
                "`api_tls.participant_ca`",
            ),
            ("genesis = ".to_owned(), "configuration"),
            (format!("explorer = \"0.0.0.0:27005\"\n{GOOD}"), "`explorer`"),
            (format!("explorer = \"127.0.0.1:27001\"\n{GOOD}"), "`explorer`"),
            (format!("explorer = \"nowhere\"\n{GOOD}"), "`explorer`"),
            (format!("explorer_role = \"kp-ledger:observer\"\n{GOOD}"), "`explorer_role`"),
            (format!("explorer = \"127.0.0.2:27001\"\nexplorer_role = \"kp-ledger:king\"\n{GOOD}"), "`explorer_role`"),
        ];
        for (text, expected) in cases {
            let e = NodeConfig::parse(&text, &path).unwrap_err().to_string();
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }
}
