//! Local test networks: a genesis for the first N participants of the registry, fresh keys for
//! each, and one node configuration per participant, all under one directory:
//!
//! ```text
//! DIR/genesis.json
//! DIR/BW/node.key  DIR/BW/exporting.key  DIR/BW/importing.key  DIR/BW/node.toml
//! DIR/observers/WDC/node.key ...
//! ```

use crate::keyfile;
use crate::registry::Registry;
use anyhow::{Context, Result, bail, ensure};
use kp_crypto::SecretKey;
use kp_domain::*;
use std::collections::BTreeMap;
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
}

/// Creates a test network of the first `n` participants of `registry` in `dir`.
pub fn init(registry: &Registry, n: usize, dir: &Path, base_port: u16, now: Timestamp) -> Result<InitReport> {
    ensure!(
        (1..=MAX_TESTNET_PARTICIPANTS).contains(&n),
        "--participants must be from 1 to {MAX_TESTNET_PARTICIPANTS}, got {n}"
    );
    ensure!(n <= registry.participant.len(), "the registry lists only {} participants", registry.participant.len());
    let ports_needed = 3 * (n + registry.observer.len());
    ensure!(
        usize::from(base_port) + ports_needed <= usize::from(u16::MAX),
        "--base-port {base_port} leaves no room for {ports_needed} ports"
    );
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

    let mut participants = Vec::new();
    let mut port = base_port;
    let mut next_ports = || {
        let p = port;
        port += 3;
        (p, p + 1, p + 2)
    };
    let mut node_dirs = Vec::new();
    for rp in registry.participant.iter().take(n) {
        let pdir = dir.join(rp.id.as_str());
        std::fs::create_dir_all(&pdir).with_context(|| format!("creating {}", pdir.display()))?;
        let node = SecretKey::generate()?;
        let exporting = SecretKey::generate()?;
        let importing = SecretKey::generate()?;
        keyfile::write(&pdir.join("node.key"), &node, &format!("{} node", rp.id), false)?;
        keyfile::write(&pdir.join("exporting.key"), &exporting, &format!("{} exporting authority", rp.id), false)?;
        keyfile::write(&pdir.join("importing.key"), &importing, &format!("{} importing authority", rp.id), false)?;
        participants.push(Participant {
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
        });
        node_dirs.push((pdir, next_ports()));
    }
    let mut observers = Vec::new();
    for ro in &registry.observer {
        let odir = dir.join("observers").join(ro.id.as_str());
        std::fs::create_dir_all(&odir).with_context(|| format!("creating {}", odir.display()))?;
        let node = SecretKey::generate()?;
        keyfile::write(&odir.join("node.key"), &node, &format!("{} observer node", ro.id), false)?;
        observers.push(Observer { id: ro.id.clone(), name: ro.name.clone(), node_key: node.public() });
        node_dirs.push((odir, next_ports()));
    }
    participants.sort_by_key(|p| p.id);
    observers.sort_by(|a, b| a.id.cmp(&b.id));
    let genesis = Genesis {
        format_version: FORMAT_VERSION,
        chain_id: chain_id.clone(),
        genesis_time: now,
        participants,
        observers,
        params: ProtocolParams::default(),
    };
    genesis.validate().context("the generated genesis is invalid")?;

    // Every node bootstraps from the first one.
    let first_p2p = node_dirs.first().map(|(_, (p2p, _, _))| *p2p).unwrap_or(base_port);
    for (i, (ndir, (p2p, api, metrics))) in node_dirs.iter().enumerate() {
        let bootstrap = if i == 0 { String::new() } else { format!("\"/ip4/127.0.0.1/tcp/{first_p2p}\"") };
        let config = format!(
            "# Node configuration written by `kpledger testnet init`; see node-config/example-node.toml.\n\
             genesis = \"../{up}genesis.json\"\n\
             data_dir = \"data\"\n\
             node_key = \"node.key\"\n\
             listen = \"/ip4/127.0.0.1/tcp/{p2p}\"\n\
             bootstrap = [{bootstrap}]\n\
             api = \"127.0.0.1:{api}\"\n\
             metrics = \"127.0.0.1:{metrics}\"\n",
            up = if ndir.parent() == Some(dir) { "" } else { "../" },
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
    })
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
