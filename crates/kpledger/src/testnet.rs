//! Local test networks: a genesis for the first N participants of the registry (or those named),
//! fresh keys for each, and one node configuration per participant, all under one directory:
//!
//! ```text
//! DIR/genesis.json  DIR/ca.pem  DIR/ca.key            the network's API CA
//! DIR/BW/node.key  DIR/BW/exporting.key  DIR/BW/importing.key  DIR/BW/node.toml
//! DIR/BW/api-tls.pem  DIR/BW/api-tls.key               the node's API TLS certificate
//! DIR/BW/client.pem  DIR/BW/client.key                 a client certificate: BW's authority
//! DIR/clients/reviewer.pem  DIR/clients/observer.pem   a reviewer of all, an observer
//! DIR/observers/WDC/node.key ...
//! ```
//!
//! With [`Layout::plaintext_api`], no certificate is made and the nodes serve their APIs without
//! TLS on loopback (`api_plaintext`): for measuring what TLS costs, nothing else. With
//! [`Layout::wan`], each node dials each other through an address of the WAN relay
//! (`kpledger testnet relay`, [`crate::wan`]) instead of directly: node k (numbered from 1 in
//! port order) reaches node m at 127.77.k.m, on the port after the network's last, where the
//! relay delays what passes as the distance between their capitals would.
//!
//! Every node serves the web explorer ([`explorer_address`]): at 127.0.0.2, on its API's port
//! number, showing what the node's own participant's authority may see (an observer's view on an
//! observer's node).

use crate::keyfile;
use crate::registry::Registry;
use anyhow::{Context, Result, bail, ensure};
use kp_crypto::SecretKey;
use kp_domain::*;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const MAX_TESTNET_PARTICIPANTS: usize = 59;

/// What `init` wrote.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub dir: PathBuf,
    pub chain_id: String,
    pub genesis_hash: String,
    pub participants: Vec<String>,
    pub observers: Vec<String>,
    /// Participants prepared to be admitted (not in the genesis).
    pub newcomers: Vec<String>,
}

/// Creates a test network of the first `n` participants of `registry` in `dir`.
pub fn init(registry: &Registry, n: usize, dir: &Path, base_port: u16, now: Timestamp) -> Result<InitReport> {
    init_with(registry, &Selection::First(n), &[], dir, base_port, now, Layout::default())
}

/// How a test network's nodes reach each other and serve their APIs, and the signature rule
/// its genesis names.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    /// No certificates: the APIs serve plaintext on loopback.
    pub plaintext_api: bool,
    /// Peers dial each other through the WAN relay's addresses ([`crate::wan::relay_address`]).
    pub wan: bool,
    /// `None`: the default parameters' rule (cofactored).
    pub signature_rule: Option<kp_domain::SignatureRule>,
}

/// Which registry participants a test network's genesis holds.
#[derive(Debug, Clone)]
pub enum Selection {
    /// The first N, in registry order.
    First(usize),
    /// These, by code.
    Codes(Vec<ParticipantId>),
}

/// Creates a test network in `dir` of the participants `selection` picks, and prepares for each
/// of `newcomers` (registry participants or newcomers left out of the genesis) a node to be
/// admitted through governance: its keys, its entry for the admission act
/// (`DIR/<code>/participant.json`) and a configuration with `joining = true`. `testnet up`
/// starts only the genesis' nodes; a newcomer's is started once its admission is committed.
pub fn init_with(
    registry: &Registry,
    selection: &Selection,
    newcomers: &[ParticipantId],
    dir: &Path,
    base_port: u16,
    now: Timestamp,
    layout: Layout,
) -> Result<InitReport> {
    let plaintext = layout.plaintext_api;
    let chosen: Vec<&crate::registry::RegistryParticipant> = match selection {
        Selection::First(n) => {
            let n = *n;
            ensure!(
                (1..=MAX_TESTNET_PARTICIPANTS).contains(&n),
                "--participants must be from 1 to {MAX_TESTNET_PARTICIPANTS}, got {n}"
            );
            ensure!(
                n <= registry.participant.len(),
                "the registry lists only {} participants",
                registry.participant.len()
            );
            registry.participant.iter().take(n).collect()
        }
        Selection::Codes(codes) => {
            ensure!(!codes.is_empty(), "--codes names no participant");
            let mut chosen = Vec::new();
            for c in codes {
                let p = registry.participant.iter().chain(&registry.newcomer).find(|p| p.id == *c);
                let p = p.ok_or_else(|| anyhow::anyhow!("--codes: {c} is not in the registry"))?;
                ensure!(
                    !chosen.iter().any(|q: &&crate::registry::RegistryParticipant| q.id == *c),
                    "--codes lists {c} twice"
                );
                chosen.push(p);
            }
            chosen
        }
    };
    let mut joining = Vec::new();
    for c in newcomers {
        ensure!(!chosen.iter().any(|p| p.id == *c), "--newcomer {c} is in the genesis already");
        let p = registry.participant.iter().chain(&registry.newcomer).find(|p| p.id == *c);
        joining.push(p.ok_or_else(|| anyhow::anyhow!("--newcomer: {c} is not in the registry"))?);
    }
    let n = chosen.len();
    let nodes = n + registry.observer.len() + joining.len();
    // Under `wan`, one more port: the relay's, on every link's address.
    let ports_needed = 3 * nodes + usize::from(layout.wan);
    ensure!(
        usize::from(base_port) + ports_needed <= usize::from(u16::MAX),
        "--base-port {base_port} leaves no room for {ports_needed} ports"
    );
    check_ports(base_port, ports_needed, ephemeral_port_range())?;
    ensure!(
        !layout.wan || nodes <= crate::wan::MAX_NODES,
        "--wan numbers at most {} nodes; this network has {nodes}",
        crate::wan::MAX_NODES
    );
    // Not a port any node listens on: a node dials from its own listening port (libp2p's port
    // reuse binds 0.0.0.0:PORT), which a relay listener on that port would block.
    let relay_port = base_port + u16::try_from(3 * nodes).context("too many nodes for the port range")?;
    let genesis_path = dir.join("genesis.json");
    if genesis_path.exists() {
        bail!(
            "{} already exists: this directory holds a network already (choose another --dir)",
            genesis_path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut suffix = [0u8; 4];
    let chain_key = SecretKey::generate()?;
    suffix.copy_from_slice(&chain_key.public().0[..4]);
    let chain_id = ChainId::new(&format!("kp-local-{}", hex::encode(suffix)))?;
    // Valid from two days back: a node whose clock is behind (an hour, in the clock test) still
    // takes the certificates; rustls checks validity against the node's own clock.
    let issued = crate::pki::now() - time::Duration::days(2);
    let ca = if plaintext {
        None
    } else {
        let ca = crate::pki::Ca::new(&format!("KP {chain_id} API CA"), issued)?;
        ca.write(dir)?;
        let clients = dir.join("clients");
        std::fs::create_dir_all(&clients).with_context(|| format!("creating {}", clients.display()))?;
        let year = time::Duration::days(365);
        let reviewer =
            ca.issue_client("Review team (all participants)", "kp-ledger:reviewer", issued, issued + year)?;
        crate::pki::write_pair(&clients, "reviewer", &reviewer)?;
        let observer = ca.issue_client("Observer", "kp-ledger:observer", issued, issued + year)?;
        crate::pki::write_pair(&clients, "observer", &observer)?;
        Some(ca)
    };

    let mut participants = Vec::new();
    let mut port = base_port;
    let mut next_ports = || {
        let p = port;
        port += 3;
        (p, p + 1, p + 2)
    };
    let mut node_dirs = Vec::new();
    let mut newcomer_entries = Vec::new();
    for (rp, in_genesis) in chosen.iter().map(|p| (*p, true)).chain(joining.iter().map(|p| (*p, false))) {
        let pdir = dir.join(rp.id.as_str());
        std::fs::create_dir_all(&pdir).with_context(|| format!("creating {}", pdir.display()))?;
        let node = SecretKey::generate()?;
        let exporting = SecretKey::generate()?;
        let importing = SecretKey::generate()?;
        keyfile::write(&pdir.join("node.key"), &node, &format!("{} node", rp.id), false)?;
        keyfile::write(&pdir.join("exporting.key"), &exporting, &format!("{} exporting authority", rp.id), false)?;
        keyfile::write(&pdir.join("importing.key"), &importing, &format!("{} importing authority", rp.id), false)?;
        if let Some(ca) = &ca {
            let name = format!("{} authority", rp.id);
            let role = format!("kp-ledger:authority:{}", rp.id);
            let client = ca.issue_client(&name, &role, issued, issued + time::Duration::days(365))?;
            crate::pki::write_pair(&pdir, "client", &client)?;
        }
        let entry = Participant {
            id: rp.id,
            name: rp.name.clone(),
            members: rp.members.clone(),
            status: Status::Active,
            node_key: node.public(),
            authorities: vec![
                AuthorityKey { key: exporting.public(), role: Role::Exporting },
                AuthorityKey { key: importing.public(), role: Role::Importing },
            ],
            max_certificate_validity_days: rp.max_certificate_validity_days,
        };
        if in_genesis {
            participants.push(entry);
            node_dirs.push((pdir, next_ports(), node.public(), true));
        } else {
            let file = pdir.join("participant.json");
            std::fs::write(&file, serde_json::to_string_pretty(&entry)? + "\n")
                .with_context(|| format!("writing {}", file.display()))?;
            newcomer_entries.push((pdir, next_ports()));
        }
    }
    let mut observers = Vec::new();
    for ro in &registry.observer {
        let odir = dir.join("observers").join(ro.id.as_str());
        std::fs::create_dir_all(&odir).with_context(|| format!("creating {}", odir.display()))?;
        let node = SecretKey::generate()?;
        keyfile::write(&odir.join("node.key"), &node, &format!("{} observer node", ro.id), false)?;
        observers.push(Observer { id: ro.id.clone(), name: ro.name.clone(), node_key: node.public() });
        node_dirs.push((odir, next_ports(), node.public(), false));
    }
    participants.sort_by_key(|p| p.id);
    observers.sort_by(|a, b| a.id.cmp(&b.id));
    let genesis = Genesis {
        format_version: FORMAT_VERSION,
        chain_id: chain_id.clone(),
        genesis_time: now,
        participants,
        observers,
        params: ProtocolParams {
            signature_rule: layout.signature_rule.unwrap_or(ProtocolParams::default().signature_rule),
            ..ProtocolParams::default()
        },
    };
    genesis.validate().context("the generated genesis is invalid")?;

    // Every node knows every participant's node (they keep a direct connection to each other);
    // observers' nodes connect to the participants' nodes.
    // Under `wan`, node k dials node m at the relay's address for the link k → m (the nodes
    // numbered from 1 in port order).
    let index = |port: u16| u8::try_from((port - base_port) / 3 + 1).context("more than 254 nodes for --wan");
    let mut addresses = Vec::new();
    for (_, (p2p, _, _), key, participant) in &node_dirs {
        if *participant {
            addresses.push((*key, *p2p, kp_node::network::peer_id_of(key)?));
        }
    }
    let bootstrap_of = |from_port: u16, except: Option<&PublicKey>| -> Result<String> {
        let mut lines = String::new();
        for (k, port, id) in &addresses {
            if Some(k) == except {
                continue;
            }
            let (host, port) = if layout.wan {
                (crate::wan::relay_address(index(from_port)?, index(*port)?), relay_port)
            } else {
                (std::net::Ipv4Addr::LOCALHOST, *port)
            };
            lines.push_str(&format!("\n    \"/ip4/{host}/tcp/{port}/p2p/{id}\","));
        }
        Ok(if lines.is_empty() { lines } else { lines + "\n" })
    };
    // Written out so that it is seen. The nodes of a test network share one machine's cores;
    // at 59 nodes on 2 cores, one thread each took about 5% less CPU per event but made the
    // commit latency 10–20% longer at a steady rate, so test networks keep the default.
    let worker_threads = kp_node::config::DEFAULT_WORKER_THREADS;
    // The API: TLS with the network CA's certificate for the node, or plaintext on loopback.
    let api_section = |ndir: &Path, up: &str| -> Result<String> {
        let Some(ca) = &ca else { return Ok("api_plaintext = true\n".to_owned()) };
        let name = ndir.file_name().and_then(|n| n.to_str()).unwrap_or("node");
        let loopback = [IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)];
        let pair = ca.issue_server(&format!("{name} node API"), &["localhost"], &loopback, issued)?;
        crate::pki::write_pair(ndir, "api-tls", &pair)?;
        Ok(format!("[api_tls]\ncertificate = \"api-tls.pem\"\nkey = \"api-tls.key\"\nclient_ca = \"../{up}ca.pem\"\n"))
    };
    for (ndir, (p2p, api, metrics), key, _) in &node_dirs {
        let bootstrap = bootstrap_of(*p2p, Some(key))?;
        let config = format!(
            "# Node configuration written by `kpledger testnet init`; see node-config/example-node.toml.\n\
             genesis = \"../{up}genesis.json\"\n\
             data_dir = \"data\"\n\
             node_key = \"node.key\"\n\
             listen = \"/ip4/127.0.0.1/tcp/{p2p}\"\n\
             bootstrap = [{bootstrap}]\n\
             api = \"127.0.0.1:{api}\"\n\
             metrics = \"127.0.0.1:{metrics}\"\n\
             # The web explorer: on a second loopback address, at the API's port number.\n\
             explorer = \"{explorer}\"\n\
             worker_threads = {worker_threads}\n\
             {api_tls}",
            explorer = explorer_address(*api),
            up = if ndir.parent() == Some(dir) { "" } else { "../" },
            api_tls = api_section(ndir, if ndir.parent() == Some(dir) { "" } else { "../" })?,
        );
        std::fs::write(ndir.join("node.toml"), config).with_context(|| format!("writing {}", ndir.display()))?;
    }
    // A newcomer's node dials every participant's node and follows the chain until admitted.
    for (ndir, (p2p, api, metrics)) in &newcomer_entries {
        let bootstrap = bootstrap_of(*p2p, None)?;
        let config = format!(
            "# Node configuration written by `kpledger testnet init` for a participant to be admitted\n\
             # through governance (`governance propose admit --participant-file participant.json`).\n\
             genesis = \"../genesis.json\"\n\
             data_dir = \"data\"\n\
             node_key = \"node.key\"\n\
             joining = true\n\
             listen = \"/ip4/127.0.0.1/tcp/{p2p}\"\n\
             bootstrap = [{bootstrap}]\n\
             api = \"127.0.0.1:{api}\"\n\
             metrics = \"127.0.0.1:{metrics}\"\n\
             explorer = \"{explorer}\"\n\
             worker_threads = {worker_threads}\n\
             {api_tls}",
            explorer = explorer_address(*api),
            api_tls = api_section(ndir, "")?,
        );
        std::fs::write(ndir.join("node.toml"), config).with_context(|| format!("writing {}", ndir.display()))?;
    }
    let json = serde_json::to_string_pretty(&genesis)?;
    std::fs::write(&genesis_path, json + "\n").with_context(|| format!("writing {}", genesis_path.display()))?;

    Ok(InitReport {
        dir: dir.to_path_buf(),
        chain_id: chain_id.to_string(),
        genesis_hash: kp_proto::genesis_hash(&genesis).to_hex(),
        participants: genesis.participants.iter().map(|p| p.id.to_string()).collect(),
        observers: genesis.observers.iter().map(|o| o.id.to_string()).collect(),
        newcomers: joining.iter().map(|p| p.id.to_string()).collect(),
    })
}

/// Where `testnet init` puts a node's web explorer: on 127.0.0.2, a loopback address of its own,
/// at the port number of the node's API, so the network keeps three ports per node.
pub fn explorer_address(api_port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 2], api_port))
}

/// The kernel's ephemeral port range, from which outgoing connections take their local ports
/// (Linux's default when it cannot be read).
pub fn ephemeral_port_range() -> (u16, u16) {
    const DEFAULT: (u16, u16) = (32768, 60999);
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else { return DEFAULT };
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => (lo, hi),
        _ => DEFAULT,
    }
}

/// Refuses a network whose ports (`needed` from `base`) reach into the ephemeral range
/// `(lo, hi)`: there the nodes' own outgoing connections (and every other program's) take ports
/// at random, and a node then fails at start with "address already in use".
fn check_ports(base: u16, needed: usize, (lo, hi): (u16, u16)) -> Result<()> {
    let last = usize::from(base) + needed.saturating_sub(1);
    if usize::from(base) <= usize::from(hi) && last >= usize::from(lo) {
        let below = usize::from(lo).checked_sub(needed).filter(|b| *b > 0);
        bail!(
            "--base-port {base}: the network needs ports {base} to {last} ({needed} ports), which reach into the \
             kernel's ephemeral port range {lo}-{hi} (/proc/sys/net/ipv4/ip_local_port_range), where outgoing \
             connections take ports at random and a node would fail with \"address already in use\"; choose a \
             --base-port {}",
            match below {
                Some(b) => format!("of at most {b} (or above {hi})"),
                None => format!("above {hi}"),
            }
        );
    }
    Ok(())
}

/// Reads and validates a genesis file.
pub fn read_genesis(path: &Path) -> Result<Genesis> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let genesis: Genesis =
        serde_json::from_str(&text).with_context(|| format!("{} is not a genesis document", path.display()))?;
    genesis.validate().with_context(|| format!("{} is not a valid genesis", path.display()))?;
    Ok(genesis)
}

/// A test network read back from its directory.
#[derive(Debug)]
pub struct Testnet {
    pub genesis: Genesis,
    pub dir: PathBuf,
}

impl Testnet {
    pub fn load(dir: &Path) -> Result<Testnet> {
        Ok(Testnet { genesis: read_genesis(&dir.join("genesis.json"))?, dir: dir.to_path_buf() })
    }

    /// The authority key of `participant` for `role`, from its key file, checked against the genesis.
    pub fn authority_key(&self, participant: ParticipantId, role: Role) -> Result<SecretKey> {
        let path = self.dir.join(participant.as_str()).join(format!("{role}.key"));
        let key = keyfile::read(&path)?;
        let known = self
            .genesis
            .participants
            .iter()
            .find(|p| p.id == participant)
            .is_some_and(|p| p.authorities.iter().any(|a| a.key == key.public() && a.role == role));
        ensure!(known, "{} is not the {role} authority key of {participant} in the genesis", path.display());
        Ok(key)
    }

    pub fn participant_ids(&self) -> BTreeMap<ParticipantId, &Participant> {
        self.genesis.participants.iter().map(|p| (p.id, p)).collect()
    }
}

/// The node directories of a test network: participants' (in genesis order), then observers'.
pub fn node_dirs(net: &Testnet) -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> =
        net.genesis.participants.iter().map(|p| (p.id.to_string(), net.dir.join(p.id.as_str()))).collect();
    dirs.extend(
        net.genesis.observers.iter().map(|o| (o.id.to_string(), net.dir.join("observers").join(o.id.as_str()))),
    );
    dirs
}

fn pid_of(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("node.pid")).ok()?.trim().parse().ok()
}

/// Whether process `pid` runs (an exited process not yet reaped by its parent does not).
fn alive(pid: i32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
    !zombie && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[derive(Debug, serde::Serialize)]
pub struct UpReport {
    pub dir: PathBuf,
    pub nodes: Vec<NodeProcess>,
    /// Nodes whose API answered before the deadline.
    pub answering: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct NodeProcess {
    pub node: String,
    pub pid: i32,
    pub api: String,
    pub log: PathBuf,
}

/// Starts every node of the network in `dir` as its own process (`kpledger node`), logging to
/// `<node dir>/node.log` with its pid in `<node dir>/node.pid`, and waits up to `wait` for every
/// API to answer.
pub fn up(dir: &Path, wait: std::time::Duration) -> Result<UpReport> {
    let net = Testnet::load(dir)?;
    let auth = crate::node::ApiAuth::Testnet { dir: dir.to_path_buf(), reader: crate::node::Reader::Anonymous };
    let exe = std::env::current_exe().context("finding the kpledger executable")?;
    let dirs = node_dirs(&net);
    for (name, ndir) in &dirs {
        if let Some(pid) = pid_of(ndir).filter(|p| alive(*p)) {
            bail!("node {name} is already running (pid {pid}, {}): run `kpledger testnet down` first", ndir.display());
        }
    }
    let mut nodes = Vec::new();
    for (name, ndir) in &dirs {
        let config_path = ndir.join("node.toml");
        let config = kp_node::NodeConfig::load(&config_path)?;
        let log_path = ndir.join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = std::process::Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(&config_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info,libp2p=warn".into()))
            .spawn()
            .with_context(|| format!("starting node {name}"))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        std::fs::write(ndir.join("node.pid"), format!("{pid}\n"))?;
        nodes.push(NodeProcess { node: name.clone(), pid, api: config.api.to_string(), log: log_path });
    }
    let deadline = std::time::Instant::now() + wait;
    let mut answering = 0;
    for n in &nodes {
        loop {
            if crate::node::status_with(&n.api, &auth).is_ok() {
                answering += 1;
                break;
            }
            if !alive(n.pid) {
                bail!("node {} exited at start; see {}", n.node, n.log.display());
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    Ok(UpReport { dir: dir.to_path_buf(), nodes, answering })
}

#[derive(Debug, serde::Serialize)]
pub struct DownReport {
    pub stopped: Vec<String>,
    /// Nodes that did not stop within the grace period after SIGTERM and were killed.
    pub killed: Vec<String>,
}

/// Stops every node started by [`up`]: SIGTERM, then SIGKILL after `grace`.
pub fn down(dir: &Path, grace: std::time::Duration) -> Result<DownReport> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let net = Testnet::load(dir)?;
    let mut running = Vec::new();
    for (name, ndir) in node_dirs(&net) {
        if let Some(pid) = pid_of(&ndir) {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                running.push((name, ndir, pid));
            } else {
                let _ = std::fs::remove_file(ndir.join("node.pid"));
            }
        }
    }
    let deadline = std::time::Instant::now() + grace;
    let mut report = DownReport { stopped: Vec::new(), killed: Vec::new() };
    for (name, ndir, pid) in running {
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if alive(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            report.killed.push(name);
        } else {
            report.stopped.push(name);
        }
        let _ = std::fs::remove_file(ndir.join("node.pid"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::check_ports;

    #[test]
    fn ports_in_the_ephemeral_range_are_refused() {
        let range = (32768, 60999);
        assert!(check_ports(27000, 183, range).is_ok());
        assert!(check_ports(32768 - 183, 183, range).is_ok());
        assert!(check_ports(61000, 9, range).is_ok());
        for (base, needed) in [(32768 - 182, 183), (40000, 9), (60999, 9), (20000, 20000)] {
            let e = check_ports(base, needed, range).unwrap_err().to_string();
            assert!(e.contains("32768-60999") && e.contains(&format!("{}", usize::from(base) + needed - 1)), "{e}");
        }
    }
}
