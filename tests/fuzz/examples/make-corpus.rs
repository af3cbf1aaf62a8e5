//! Writes the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/, replacing what
//! is there: a handful of valid inputs made on the fixed test network (`kp_fuzz::net()`) — a
//! real chain of committed blocks with custody events and two governance acts, its export, proof
//! bundles from a store holding it, consensus messages, configurations and key files — and a
//! few hand-made invalid ones. Deterministic: the same files on every machine.
//!
//!     scripts/fuzz.sh --make-corpus
//!
//! (an example, not a bin, so that `cargo fuzz build` never builds it with instrumentation).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use kp_chain::LedgerApp;
use kp_consensus::Application;
use kp_consensus::block::{
    Block, BlockHeader, Certificate, VoteBody, VoteKind, VoteSignature, events_root, voters_hash,
};
use kp_consensus::wire::{self, CommittedBlock};
use kp_consensus::{Message, NewRound, Proposal, Vote, proposal_signing_bytes};
use kp_crypto::{SecretKey, Tag};
use kp_domain::{
    Carats, CertificateAmended, CertificateNumber, CertificateVoided, EventPayload, GovernanceAction, HalfYear, HsCode,
    HsLine, ProductionReported, Role, Text, Timestamp, UsdCents,
};
use kp_fuzz::{keyfile, net};
use kp_store::{MemBackend, Store};
use kp_testkit::{TestNet, act, at, certificate, pid, receipt, seal};
use std::path::{Path, PathBuf};

fn time(height: u64) -> Timestamp {
    at(1, height * 60_000)
}

fn number(issuer: &str, k: u64) -> String {
    format!("{issuer}-{k:06}")
}

fn issue(net: &TestNet, from: &str, to: &str, k: u64) -> Vec<u8> {
    let c = certificate(&number(from, k), from, to, time(k));
    net.envelope_with(net.key(from, Role::Exporting), &EventPayload::CertificateIssued(c))
}

fn sealed(net: &TestNet, from: &str, k: u64, at: u64) -> Vec<u8> {
    net.envelope_with(net.key(from, Role::Exporting), &EventPayload::ShipmentSealed(seal(&number(from, k), time(at))))
}

fn received(net: &TestNet, from: &str, to: &str, k: u64, at: u64) -> Vec<u8> {
    let c = certificate(&number(from, k), from, to, time(k));
    net.envelope_with(net.key(to, Role::Importing), &EventPayload::ReceiptConfirmed(receipt(&c, time(at))))
}

/// The events of block `k` of the corpus chain: custody of five certificates, AE suspended in
/// block 4 and readmitted in block 8, a void.
fn events(net: &TestNet, k: u64) -> Vec<Vec<u8>> {
    let all_but_ae = net.all_but(&["AE"]);
    match k {
        1 => vec![issue(net, "AA", "AB", 1)],
        2 => vec![sealed(net, "AA", 1, 2), issue(net, "AB", "AC", 2)],
        3 => vec![received(net, "AA", "AB", 1, 3), sealed(net, "AB", 2, 3), issue(net, "AC", "AD", 3)],
        4 => {
            let a = act("SUSPEND-AE", GovernanceAction::Suspend { participant: pid("AE") });
            vec![net.governance_envelope("AA", &a, &all_but_ae)]
        }
        5 => {
            let void = CertificateVoided {
                certificate: CertificateNumber::new(&number("AC", 3)).unwrap(),
                reason: Text::new("shipment cancelled").unwrap(),
            };
            vec![
                received(net, "AB", "AC", 2, 5),
                net.envelope_with(net.key("AC", Role::Exporting), &EventPayload::CertificateVoided(void)),
                issue(net, "AD", "AA", 5),
            ]
        }
        6 => vec![sealed(net, "AD", 5, 6)],
        7 => vec![received(net, "AD", "AA", 5, 7)],
        8 => {
            let a = act("READMIT-AE", GovernanceAction::Readmit { participant: pid("AE") });
            vec![net.governance_envelope("AA", &a, &all_but_ae)]
        }
        9 => vec![issue(net, "AE", "AA", 9)],
        10 => vec![sealed(net, "AE", 9, 10)],
        11 => vec![received(net, "AE", "AA", 9, 11)],
        _ => unreachable!(),
    }
}
const BLOCKS: u64 = 11;

/// Executes `events` on `app` at the consensus time of its last commit, builds the block (with
/// that commit), signs its commit certificate with the node key of every required voter at
/// `next_time` (the next block's time), and commits it to `app` (as kp-store's test fixtures do).
fn build_block(net: &TestNet, app: &mut LedgerApp, events: Vec<Vec<u8>>, next_time: Timestamp) -> (Block, Certificate) {
    let last_commit = app.last_certificate().cloned();
    let time = kp_consensus::block::consensus_time(last_commit.as_ref(), app.last_block().1);
    let x = app.execute(time, &events).expect("corpus block executes");
    let height = app.height() + 1;
    let header = BlockHeader {
        chain_id: net.chain_id().clone(),
        height,
        round: 0,
        prev_hash: app.last_block().0,
        last_commit_hash: last_commit.as_ref().map_or(kp_domain::Hash32::default(), |c| {
            kp_consensus::block::certificate_hash(&wire::encode_certificate(c))
        }),
        proposer: x.required[usize::try_from(height).unwrap() % x.required.len()].0,
        time,
        events_root: events_root(&events),
        event_count: u32::try_from(events.len()).unwrap(),
        state_root: x.state_root,
        voters_hash: voters_hash(&x.required),
    };
    let block = Block::new(header, events, last_commit).unwrap();
    let certificate =
        sign_certificate(net, VoteKind::Precommit, &block, x.required.iter().map(|(id, _)| *id), next_time);
    app.commit(&block, &certificate);
    (block, certificate)
}

fn sign_certificate(
    net: &TestNet,
    kind: VoteKind,
    block: &Block,
    voters: impl Iterator<Item = kp_domain::ParticipantId>,
    time: Timestamp,
) -> Certificate {
    let body = VoteBody { kind, height: block.header().height, round: block.header().round, block_hash: block.hash() };
    let signatures = voters
        .map(|voter| VoteSignature {
            voter,
            time,
            signature: net.keys[&voter].node.sign(Tag::Vote, net.chain_id(), &body.signing_bytes(time)),
        })
        .collect();
    Certificate { body, signatures, withheld: None }
}

struct Corpus {
    root: PathBuf,
    files: usize,
    bytes: usize,
}

impl Corpus {
    /// Empties the directory of `target`.
    fn target(&self, target: &str) -> PathBuf {
        let dir = self.root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn put(&mut self, dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
        self.files += 1;
        self.bytes += bytes.len();
    }
}

/// Variants every binary target gets: cut short, one byte flipped.
fn damaged(c: &mut Corpus, dir: &Path, bytes: &[u8]) {
    c.put(dir, "invalid-truncated", &bytes[..bytes.len() / 2]);
    let mut flipped = bytes.to_vec();
    let i = flipped.len() / 3;
    flipped[i] ^= 0x40;
    c.put(dir, "invalid-flipped", &flipped);
    c.put(dir, "invalid-empty", &[]);
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut c = Corpus { root, files: 0, bytes: 0 };
    let net = net();
    let genesis = &net.genesis;

    // The chain, committed to an in-memory store through the consensus engine's own check.
    // Block 1 is at the genesis time + 1 ms (it has no parent certificate): the content starts
    // at block 2, block k + 1 carrying events(k) at time(k).
    let mut app = LedgerApp::new(genesis).unwrap();
    let mut all = vec![build_block(net, &mut app, vec![], time(1))];
    for k in 1..=BLOCKS {
        all.push(build_block(net, &mut app, events(net, k), time(k + 1)));
    }
    let chain = &all[1..];
    let (mut store, mut replayed) = Store::open(MemBackend::new(), genesis).unwrap();
    for (b, cert) in &all {
        kp_consensus::apply_committed(net.chain_id(), net.rule(), &mut replayed, b, cert).unwrap();
        store.commit(b, cert, &mut replayed).unwrap();
    }

    // Events: one of each kind (custody events and acts from the chain, an amendment and a
    // production report beside it).
    let mut envelopes: Vec<(&str, Vec<u8>)> = vec![
        ("issued", chain[0].0.events()[0].clone()),
        ("sealed", chain[1].0.events()[0].clone()),
        ("received", chain[2].0.events()[0].clone()),
        ("suspend", chain[3].0.events()[0].clone()),
        ("voided", chain[4].0.events()[1].clone()),
        ("readmit", chain[7].0.events()[0].clone()),
    ];
    let amended = CertificateAmended {
        certificate: certificate(&number("AB", 2), "AB", "AC", time(2)),
        reason: Text::new("carats corrected").unwrap(),
    };
    envelopes.push((
        "amended",
        net.envelope_with(net.key("AB", Role::Exporting), &EventPayload::CertificateAmended(amended)),
    ));
    let production = ProductionReported {
        participant: pid("AC"),
        period: HalfYear::new(2025, 2).unwrap(),
        revision: 0,
        lines: vec![HsLine { hs_code: HsCode::Unsorted, carats: Carats(1_000_000), value: UsdCents(90_000_000) }],
        zones: vec![],
    };
    envelopes.push((
        "production",
        net.envelope_with(net.key("AC", Role::Exporting), &EventPayload::ProductionReported(production)),
    ));
    for target in ["decode_event", "open_event"] {
        let dir = c.target(target);
        for (name, e) in &envelopes {
            assert!(kp_proto::open_event(net.chain_id(), net.rule(), e).is_ok(), "{name} opens");
            c.put(&dir, &format!("valid-{name}"), e);
        }
        damaged(&mut c, &dir, &envelopes[0].1);
        // A trailing unknown field: decodes with prost, refused as not canonical.
        let mut unknown = envelopes[1].1.clone();
        unknown.extend_from_slice(&[0x78, 0x01]);
        c.put(&dir, "invalid-unknown-field", &unknown);
        // Signed by a key of another chain: decodes, does not open.
        let other = TestNet::new(&["AA"], 1);
        c.put(&dir, "invalid-other-chain", &issue(&other, "AA", "AA", 1));
    }

    // Genesis: the fixed network's, a one-participant one, and one with a suspended member.
    let dir = c.target("decode_genesis");
    let g = kp_proto::encode_genesis(genesis);
    c.put(&dir, "valid-five", &g);
    c.put(&dir, "valid-one", &kp_proto::encode_genesis(&TestNet::new(&["BW"], 1).genesis));
    let mut suspended = genesis.clone();
    suspended.participants[4].status = kp_domain::Status::Suspended;
    if let Ok(()) = suspended.validate() {
        c.put(&dir, "valid-suspended", &kp_proto::encode_genesis(&suspended));
    }
    damaged(&mut c, &dir, &g);

    // Consensus messages: a proposal (re-proposed, with its prevote certificate), a vote, a
    // certificate, new-round messages with and without a lock.
    let dir = c.target("wire_message");
    let (b3, commit3) = &chain[2];
    let h3 = b3.header().height;
    let prevotes =
        sign_certificate(net, VoteKind::Prevote, b3, commit3.signatures.iter().map(|s| s.voter), b3.header().time);
    let proposer = b3.header().proposer;
    let signing = proposal_signing_bytes(h3, 1, &b3.hash(), Some(0));
    let proposal = Proposal {
        height: h3,
        round: 1,
        block: b3.clone(),
        justify: Some(prevotes.clone()),
        proposer,
        signature: net.keys[&proposer].node.sign(Tag::Proposal, net.chain_id(), &signing),
    };
    let s = commit3.signatures[0];
    let vote = Vote { body: commit3.body, voter: s.voter, time: s.time, signature: s.signature };
    let messages = [
        ("proposal", Message::Proposal(Box::new(proposal))),
        ("vote", Message::Vote(vote)),
        ("certificate", Message::Certificate(Box::new(commit3.clone()))),
        (
            "new-round-locked",
            Message::NewRound(NewRound {
                height: h3,
                round: 2,
                lock: Some(Box::new((b3.clone(), prevotes))),
                precommit: Some(vote),
                missing: vec![pid("AE")],
            }),
        ),
        (
            "new-round",
            Message::NewRound(NewRound { height: 13, round: 1, lock: None, precommit: None, missing: vec![] }),
        ),
    ];
    for (name, m) in &messages {
        let bytes = wire::encode_message(m);
        assert_eq!(&wire::decode_message(&bytes).unwrap(), m);
        c.put(&dir, &format!("valid-{name}"), &bytes);
    }
    let proposal_bytes = wire::encode_message(&messages[0].1);
    damaged(&mut c, &dir, &proposal_bytes);
    let mut version = proposal_bytes.clone();
    version[0] = 1;
    c.put(&dir, "invalid-version", &version);

    // Catch-up batches: one block, four blocks (across the suspension), the whole chain.
    let dir = c.target("wire_blocks");
    let committed: Vec<CommittedBlock> = all
        .iter()
        .map(|(block, certificate)| CommittedBlock { block: block.clone(), certificate: certificate.clone() })
        .collect();
    for (name, range) in [("one", 0..1), ("four", 2..6), ("all", 0..all.len())] {
        c.put(&dir, &format!("valid-{name}"), &wire::encode_blocks(&committed[range]));
    }
    let four = wire::encode_blocks(&committed[2..6]);
    damaged(&mut c, &dir, &four);
    let wrong = CommittedBlock {
        block: chain[0].0.clone(),
        certificate: sign_certificate(
            net,
            VoteKind::Prevote,
            &chain[0].0,
            chain[0].1.signatures.iter().map(|s| s.voter),
            chain[0].0.header().time,
        ),
    };
    c.put(&dir, "invalid-prevote-certificate", &wire::encode_blocks(&[wrong]));

    // Exports: the whole chain, its first two blocks, none.
    let dir = c.target("export_reader");
    let export = |blocks: &[(Block, Certificate)]| {
        let mut w = kp_audit::ExportWriter::new(Vec::new(), &g).unwrap();
        for (b, cert) in blocks {
            w.block(b.header_bytes().to_vec(), b.events().to_vec(), wire::encode_certificate(cert)).unwrap();
        }
        w.finish().unwrap()
    };
    let full = export(&all);
    c.put(&dir, "valid-all", &full);
    c.put(&dir, "valid-two", &export(&all[..2]));
    c.put(&dir, "valid-none", &export(&[]));
    damaged(&mut c, &dir, &export(&all[..2]));
    let mut no_end = export(&all[..2]);
    no_end.truncate(no_end.len() - 3);
    c.put(&dir, "invalid-no-end", &no_end);
    let mut trailing = export(&all[..1]);
    trailing.push(0);
    c.put(&dir, "invalid-trailing", &trailing);
    // The header's length prefix one byte longer than its shortest form (0x80 | low, ..., 0x00).
    let one = export(&all[..1]);
    let len = prost::decode_length_delimiter(one.as_slice()).unwrap();
    let short = prost::length_delimiter_len(len);
    let mut longer = one[..short].to_vec();
    *longer.last_mut().unwrap() |= 0x80;
    longer.push(0);
    longer.extend_from_slice(&one[short..]);
    assert!(kp_audit::ExportReader::new(longer.as_slice()).is_err());
    c.put(&dir, "invalid-long-prefix", &longer);

    // Proof bundles: a certificate before the suspension, one after it, one after the
    // readmission (carrying both acts).
    let dir = c.target("proof_verify");
    let mut first = Vec::new();
    for (name, n) in [
        ("before-acts", number("AA", 1)),
        ("after-suspension", number("AD", 5)),
        ("after-readmission", number("AE", 9)),
    ] {
        let bundle = kp_audit::proof::build(&store, &CertificateNumber::new(&n).unwrap()).unwrap();
        kp_audit::proof::verify(&bundle, genesis).unwrap();
        c.put(&dir, &format!("valid-{name}"), &bundle);
        if first.is_empty() {
            first = bundle;
        }
    }
    damaged(&mut c, &dir, &first);

    // Node configurations, as `kpledger testnet init` writes them, in the directory the target
    // sets up (genesis.pb, node.key, data/).
    let dir = c.target("node_config");
    let peer =
        libp2p::Keypair::ed25519_from_bytes(SecretKey::from_seed(&[7; 32]).to_seed()).unwrap().public().to_peer_id();
    let base = "genesis = \"genesis.pb\"\ndata_dir = \"data\"\nnode_key = \"node.key\"\n\
                listen = \"/ip4/127.0.0.1/tcp/27000\"\napi = \"127.0.0.1:27001\"\napi_plaintext = true\n\
                metrics = \"127.0.0.1:27002\"\n";
    let full = format!(
        "# Node configuration written by `kpledger testnet init`.\n{base}\
         bootstrap = [\"/ip4/127.0.0.1/tcp/27003/p2p/{peer}\", \"/ip6/::1/tcp/27006/p2p/{peer}\"]\n\
         joining = false\nworker_threads = 4\n\n[consensus]\nround_timeout_base_ms = 1000\n\
         round_timeout_cap_ms = 20000\nclock_warning_ms = 2000\nidle_block_ms = 3000\nmax_block_events = 2000\n"
    );
    let configs = [
        ("valid-minimal", base.to_owned()),
        ("valid-full", full),
        ("invalid-unknown-field", format!("{base}colour = \"blue\"\n")),
        ("invalid-missing-genesis", base.replace("genesis.pb", "missing.pb")),
        ("invalid-bootstrap", format!("{base}bootstrap = [\"/ip4/127.0.0.1/tcp/1/p2p/12D3Koo\"]\n")),
        ("invalid-syntax", "genesis = ".to_owned()),
    ];
    let config_dir = kp_fuzz::node_config_dir();
    for (name, text) in &configs {
        let parsed = kp_fuzz::node_config::NodeConfig::parse(text, &config_dir.join("node.toml"));
        assert_eq!(parsed.is_ok(), name.starts_with("valid"), "{name}: {parsed:?}");
        c.put(&dir, name, text.as_bytes());
    }

    // Key files, as `kpledger keygen` writes them.
    let dir = c.target("keyfile");
    let scratch = kp_fuzz::scratch_dir("make-corpus");
    for (name, key) in [("exporting", net.key("AA", Role::Exporting)), ("importing", net.key("AB", Role::Importing))] {
        let path = scratch.join(name);
        keyfile::write(&path, key, &format!("test {name} authority"), true).unwrap();
        c.put(&dir, &format!("valid-{name}"), &std::fs::read(&path).unwrap());
    }
    let good = std::fs::read_to_string(scratch.join("exporting")).unwrap();
    let other = net.key("AB", Role::Importing).public().to_hex();
    let mine = net.key("AA", Role::Exporting).public().to_hex();
    c.put(&dir, "invalid-other-public-key", good.replace(&mine, &other).as_bytes());
    c.put(&dir, "invalid-algorithm", good.replace("ed25519", "rsa").as_bytes());
    c.put(&dir, "invalid-not-json", b"ed25519 key\n");
    std::fs::remove_dir_all(&scratch).ok();
    std::fs::remove_dir_all(config_dir).ok();

    println!("make-corpus: {} files, {} bytes, in {}", c.files, c.bytes, c.root.display());
}
