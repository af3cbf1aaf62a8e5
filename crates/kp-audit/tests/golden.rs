//! Golden ledgers generated here, deterministically, with planted tampering: the audit names
//! each exactly (height, event, kind); a clean ledger audits as verified. Proof bundles built
//! from a store verify against the genesis alone, and fail with any byte changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation, clippy::panic)]

#[path = "../../kp-store/tests/common/mod.rs"]
mod common;

use kp_audit::proof;
use kp_audit::{AuditReport, ExportReader, ExportWriter, audit};
use kp_chain::LedgerApp;
use kp_consensus::block::{Block, BlockHeader, Certificate};
use kp_consensus::wire;
use kp_crypto::Tag;
use kp_domain::{CertificateNumber, EventPayload, GovernanceAction, Role, Timestamp};
use kp_store::RawBlock;
use kp_testkit::{TestNet, act, at, certificate, pid, receipt, seal};

const TRADERS: [&str; 4] = ["AA", "AB", "AC", "AD"];
/// The block that suspends AE, and the one that readmits it.
const SUSPEND_AT: u64 = 9;
const READMIT_AT: u64 = 15;
const BLOCKS: u64 = 24;

fn time(height: u64) -> Timestamp {
    at(1, height * 60_000)
}

fn number(k: u64) -> String {
    format!("{}-{k:06}", TRADERS[(k % 4) as usize])
}

/// The certificate issued in block `k`, from one trader to the next.
fn cert(k: u64) -> kp_domain::Certificate {
    let from = TRADERS[(k % 4) as usize];
    let to = TRADERS[((k + 1) % 4) as usize];
    certificate(&number(k), from, to, time(k))
}

/// Block 1 carries no events (its time is the genesis time + 1 ms, no clock's reading).
fn custody(k: u64) -> bool {
    k >= 2 && ![SUSPEND_AT, READMIT_AT].contains(&k)
}

/// Block `k` issues certificate `k`, seals certificate `k - 1` and confirms receipt of
/// certificate `k - 2` (when the blocks between were custody blocks); the governance blocks
/// suspend AE (which never trades) and readmit it.
fn events(net: &TestNet, k: u64) -> Vec<Vec<u8>> {
    let all_but_ae = net.all_but(&["AE"]);
    if k == SUSPEND_AT {
        let a = act("SUSPEND-AE", GovernanceAction::Suspend { participant: pid("AE") });
        return vec![net.governance_envelope("AA", &a, &all_but_ae)];
    }
    if k == READMIT_AT {
        let a = act("READMIT-AE", GovernanceAction::Readmit { participant: pid("AE") });
        return vec![net.governance_envelope("AA", &a, &all_but_ae)];
    }
    if k == 1 {
        return vec![];
    }
    let t = time(k);
    let mut out = Vec::new();
    if k > 2 && custody(k - 2) && custody(k - 1) {
        let c = cert(k - 2);
        let key = net.key(c.importer.as_str(), Role::Importing);
        out.push(net.envelope_with(key, &EventPayload::ReceiptConfirmed(receipt(&c, t))));
    }
    if k > 1 && custody(k - 1) {
        let c = cert(k - 1);
        let key = net.key(c.exporter.as_str(), Role::Exporting);
        out.push(net.envelope_with(key, &EventPayload::ShipmentSealed(seal(c.number.as_str(), t))));
    }
    let c = cert(k);
    out.push(net.envelope_with(net.key(c.exporter.as_str(), Role::Exporting), &EventPayload::CertificateIssued(c)));
    out
}

struct Golden {
    net: TestNet,
    blocks: Vec<(Block, Certificate)>,
}

fn golden() -> Golden {
    golden_under(kp_domain::SignatureRule::Cofactored)
}

/// The golden ledger on a genesis naming `rule` (strict: as every genesis made before the rule
/// was named).
fn golden_under(rule: kp_domain::SignatureRule) -> Golden {
    let mut net = TestNet::new(&["AA", "AB", "AC", "AD", "AE"], 11);
    net.genesis.params.signature_rule = rule;
    let mut app = LedgerApp::new(&net.genesis).unwrap();
    let blocks = (1..=BLOCKS).map(|k| common::build_block(&net, &mut app, events(&net, k), time(k + 1))).collect();
    Golden { net, blocks }
}

fn raw(blocks: &[(Block, Certificate)]) -> Vec<RawBlock> {
    blocks
        .iter()
        .map(|(b, c)| RawBlock {
            header: b.header_bytes().to_vec(),
            events: b.events().to_vec(),
            certificate: wire::encode_certificate(c),
        })
        .collect()
}

fn run(g: &Golden, blocks: Vec<RawBlock>) -> AuditReport {
    let report = audit(&g.net.genesis, Box::new(blocks.into_iter().map(Ok)), &mut |_, _| {});
    println!("{report}");
    report
}

/// The audit stops at `height` with `kind`, naming event `event` if given.
fn assert_found(r: &AuditReport, height: u64, kind: &str, event: Option<usize>) {
    let d = r.discrepancy.as_ref().unwrap_or_else(|| panic!("tampering not found:\n{r}"));
    assert_eq!((d.height, d.kind), (height, kind), "{d:?}");
    assert_eq!(d.event.as_ref().map(|e| e.index), event, "{d:?}");
    assert_eq!(r.blocks, height - 1, "every block before the damage is verified");
    assert_eq!(r.result, "failed");
}

#[test]
fn a_clean_ledger_audits_as_verified() {
    let g = golden();
    let r = run(&g, raw(&g.blocks));
    assert!(r.verified(), "{r}");
    assert_eq!(r.result, "verified");
    assert_eq!(r.blocks, BLOCKS);
    let events: usize = g.blocks.iter().map(|(b, _)| b.events().len()).sum();
    assert_eq!(r.events, events as u64);
    assert_eq!(r.signatures.events, events as u64);
    // Each act carries four approvals. Votes: five voters on blocks 1-8, four from the
    // suspension (block 9, which AE does not vote on) to the readmission (block 15), five after.
    assert_eq!(r.signatures.approvals, 8);
    assert_eq!(r.signatures.votes, 8 * 5 + 7 * 4 + 9 * 5);
    assert_eq!(r.head_hash, g.blocks.last().unwrap().0.hash().to_string());
    let changes: Vec<(u64, usize, Vec<String>, Vec<String>)> =
        r.participants.iter().map(|c| (c.from_height, c.voters, c.joined.clone(), c.left.clone())).collect();
    assert_eq!(
        changes,
        vec![
            (1, 5, ["AA", "AB", "AC", "AD", "AE"].map(String::from).to_vec(), vec![]),
            (SUSPEND_AT + 1, 4, vec![], vec!["AE".to_owned()]),
            (READMIT_AT + 1, 5, vec!["AE".to_owned()], vec![]),
        ]
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["result"], "verified");
    assert_eq!(json["signature_rule"], "cofactored");
}

#[test]
fn a_ledger_under_the_strict_rule_audits_under_it() {
    let g = golden_under(kp_domain::SignatureRule::Strict);
    let r = run(&g, raw(&g.blocks));
    assert!(r.verified(), "{r}");
    assert_eq!((r.blocks, r.signature_rule), (BLOCKS, kp_domain::SignatureRule::Strict));
    assert!(r.to_string().contains("votes; strict rule)"), "{r}");
    // Its blocks do not replay on the same genesis naming the other rule: the genesis (and so
    // its hash, in block 1's parent) differs.
    let other = golden();
    let r = run(&other, raw(&g.blocks));
    assert_found(&r, 1, "hash_chain", None);
}

#[test]
fn a_flipped_byte_in_an_event_is_named() {
    let g = golden();
    let mut blocks = raw(&g.blocks);
    // The last byte of an envelope is inside its signature.
    let e = &mut blocks[5].events[1];
    let last = e.len() - 1;
    e[last] ^= 0x01;
    assert_found(&run(&g, blocks.clone()), 6, "event_signature", Some(1));
    // A byte in the payload: it no longer decodes canonically, or its signature fails.
    let mut blocks = raw(&g.blocks);
    blocks[5].events[0][20] ^= 0x40;
    let r = run(&g, blocks);
    let d = r.discrepancy.unwrap();
    assert_eq!((d.height, d.event.unwrap().index), (6, 0));
    assert!(["event_signature", "event_encoding"].contains(&d.kind), "{}", d.kind);
}

#[test]
fn a_missing_or_foreign_certificate_signature_is_named() {
    let g = golden();
    let mut blocks = raw(&g.blocks);
    let (_, c) = &g.blocks[3];
    let mut missing = c.clone();
    missing.signatures.retain(|s| s.voter != pid("AC"));
    blocks[3].certificate = wire::encode_certificate(&missing);
    let r = run(&g, blocks);
    assert_found(&r, 4, "certificate", None);
    assert!(r.discrepancy.unwrap().reason.contains("AC"), "the missing voter is named");

    let mut blocks = raw(&g.blocks);
    let mut foreign = c.clone();
    // AB's slot signed with another key (AB's exporting authority, not its node key).
    let slot = foreign.signatures.iter().position(|s| s.voter == pid("AB")).unwrap();
    let signed = c.body.signing_bytes(foreign.signatures[slot].time);
    foreign.signatures[slot].signature = g.net.key("AB", Role::Exporting).sign(Tag::Vote, g.net.chain_id(), &signed);
    blocks[3].certificate = wire::encode_certificate(&foreign);
    let r = run(&g, blocks);
    assert_found(&r, 4, "certificate", None);
    let reason = r.discrepancy.unwrap().reason;
    assert!(reason.contains("AB") && reason.contains("do not verify"), "{reason}");
}

#[test]
fn swapped_and_removed_blocks_are_named() {
    let g = golden();
    let mut blocks = raw(&g.blocks);
    blocks.swap(6, 7);
    assert_found(&run(&g, blocks), 7, "height", None);
    let mut blocks = raw(&g.blocks);
    blocks.remove(12);
    assert_found(&run(&g, blocks), 13, "height", None);
}

#[test]
fn an_altered_state_root_is_named() {
    let g = golden();
    let mut blocks = raw(&g.blocks);
    let mut h = BlockHeader::decode(&blocks[10].header).unwrap();
    h.state_root.0[0] ^= 1;
    blocks[10].header = h.encode();
    let r = run(&g, blocks);
    assert_found(&r, 11, "state_root", None);
}

#[test]
fn an_event_the_rules_refuse_is_named_even_under_a_valid_certificate() {
    // A block whose events are well signed and whose certificate is signed by every voter, but
    // which confirms receipt of certificate 5, issued in that very block and never sealed.
    let g = golden();
    let mut app = LedgerApp::new(&g.net.genesis).unwrap();
    let mut blocks: Vec<(Block, Certificate)> = g.blocks[..4].to_vec();
    for (b, c) in &blocks {
        kp_consensus::apply_committed(g.net.chain_id(), g.net.rule(), &mut app, b, c).unwrap();
    }
    let c = cert(5);
    let bad = g.net.envelope_with(
        g.net.key(c.importer.as_str(), Role::Importing),
        &EventPayload::ReceiptConfirmed(receipt(&c, time(5))),
    );
    // Build the block from a ledger that lets it through: execute without the bad event, then
    // put it in the header's events (events root and count match; state root does not matter).
    let (good_block, _) = common::build_block(&g.net, &mut app.clone(), events(&g.net, 5), time(6));
    let mut evs = good_block.events().to_vec();
    evs.push(bad);
    let mut header = good_block.header().clone();
    header.events_root = kp_consensus::block::events_root(&evs);
    header.event_count = evs.len() as u32;
    let block = Block::new(header, evs, good_block.last_commit().cloned()).unwrap();
    let body = kp_consensus::block::VoteBody {
        kind: kp_consensus::block::VoteKind::Precommit,
        height: 5,
        round: 0,
        block_hash: block.hash(),
    };
    let signatures = ["AA", "AB", "AC", "AD", "AE"]
        .iter()
        .map(|p| kp_consensus::block::VoteSignature {
            voter: pid(p),
            time: time(6),
            signature: g.net.keys[&pid(p)].node.sign(Tag::Vote, g.net.chain_id(), &body.signing_bytes(time(6))),
        })
        .collect();
    blocks.push((block, Certificate { body, signatures, withheld: None }));
    let r = run(&g, raw(&blocks));
    assert_found(&r, 5, "rule", Some(3));
    assert!(r.discrepancy.unwrap().reason.ends_with("[not_sealed]"));
}

#[test]
fn an_export_round_trips_and_a_cut_export_is_refused() {
    let g = golden();
    let mut w = ExportWriter::new(Vec::new(), &kp_proto::encode_genesis(&g.net.genesis)).unwrap();
    for b in raw(&g.blocks) {
        w.block(b.header, b.events, b.certificate).unwrap();
    }
    let bytes = w.finish().unwrap();
    let reader = ExportReader::new(bytes.as_slice()).unwrap();
    assert_eq!(reader.genesis(), &g.net.genesis);
    let genesis = reader.genesis().clone();
    let r = audit(&genesis, Box::new(reader.map(|b| b.map_err(|e| e.to_string()))), &mut |_, _| {});
    assert!(r.verified(), "{r}");
    assert_eq!(r.blocks, BLOCKS);

    // Cut in the middle of the stream: the blocks before are verified, then the cut is named.
    let cut = &bytes[..bytes.len() * 2 / 3];
    let reader = ExportReader::new(cut).unwrap();
    let r = audit(&genesis, Box::new(reader.map(|b| b.map_err(|e| e.to_string()))), &mut |_, _| {});
    let d = r.discrepancy.as_ref().unwrap();
    assert_eq!(d.kind, "source");
    assert_eq!(d.height, r.blocks + 1);
    assert!(d.reason.contains("cut short") || d.reason.contains("end mark"), "{}", d.reason);
}

fn store_of(g: &Golden) -> kp_store::Store<kp_store::MemBackend> {
    common::replay(&g.net, &g.blocks)
}

#[test]
fn a_proof_bundle_verifies_against_the_genesis_alone() {
    let g = golden();
    let store = store_of(&g);
    // Certificate 12: issued in 12, sealed in 13, received in 14 — after AE's suspension.
    let n = CertificateNumber::new(&number(12)).unwrap();
    let bundle = proof::build(&store, &n).unwrap();
    let report = proof::verify(&bundle, &g.net.genesis).unwrap();
    println!("{report}\n{} bytes", bundle.len());
    let steps: Vec<(u64, &str)> = report.steps.iter().map(|s| (s.height, s.kind.as_str())).collect();
    assert_eq!(steps, vec![(12, "CertificateIssued"), (13, "ShipmentSealed"), (14, "ReceiptConfirmed")]);
    assert_eq!(report.steps[0].signer, "AA exporting");
    assert_eq!(report.steps[2].signer, "AB importing");
    // The suspension before them is carried (the readmission after them is not needed).
    let acts: Vec<(u64, &str)> = report.governance_acts.iter().map(|a| (a.height, a.action.as_str())).collect();
    assert_eq!(acts, vec![(SUSPEND_AT, "suspend")]);
    // Blocks 12 to 14 were committed by the four voters left.
    assert!(report.committed_by.iter().filter(|(h, _)| *h >= 12).all(|(_, v)| v.len() == 4));

    // A certificate whose custody spans the readmission carries both acts.
    let n = CertificateNumber::new(&number(16)).unwrap();
    let later = proof::verify(&proof::build(&store, &n).unwrap(), &g.net.genesis).unwrap();
    assert_eq!(later.governance_acts.len(), 2);

    let unknown = CertificateNumber::new("AA-999999").unwrap();
    assert!(matches!(proof::build(&store, &unknown), Err(proof::BuildError::NotFound(_))));
}

#[test]
fn a_proof_bundle_with_any_byte_changed_fails_with_its_reason() {
    let g = golden();
    let store = store_of(&g);
    let n = CertificateNumber::new(&number(12)).unwrap();
    let bundle = proof::build(&store, &n).unwrap();
    for i in 0..bundle.len() {
        let mut b = bundle.clone();
        b[i] ^= 0x01;
        match proof::verify(&b, &g.net.genesis) {
            Ok(r) => panic!("byte {i} of {} changed, still verified: {r}", bundle.len()),
            Err(d) => assert!(!d.reason.is_empty()),
        }
    }
    // Against another genesis.
    let other = TestNet::new(&["AA", "AB", "AC", "AD", "AE"], 12);
    let d = proof::verify(&bundle, &other.genesis).unwrap_err();
    assert_eq!(d.kind, "genesis", "{d:?}");
    // Without the governance block, the voter set after the suspension cannot be derived.
    let mut parsed: kp_proto::pb::ProofBundle = prost::Message::decode(bundle.as_slice()).unwrap();
    parsed.blocks.retain(|b| BlockHeader::decode(&b.header).unwrap().height != SUSPEND_AT);
    let d = proof::verify(&prost::Message::encode_to_vec(&parsed), &g.net.genesis).unwrap_err();
    assert_eq!((d.height, d.kind), (12, "voter_set"), "{d:?}");
}

/// A commit certificate that stands in for one withheld precommit with that voter's prevote is
/// accepted by the audit, by the rule the engine applies (`Certificate::verify_commit`); one
/// that uses it where it does not apply is refused by name. (The last block's certificate: no
/// later header binds it.)
#[test]
fn a_withheld_precommit_is_accepted_where_the_rule_applies_and_refused_elsewhere() {
    use kp_consensus::block::{VoteBody, VoteKind, VoteSignature};
    let g = golden();
    let last = g.blocks.len() - 1;
    let (block, commit) = &g.blocks[last];
    let signer = |voter: &str| {
        let body = VoteBody { kind: VoteKind::Prevote, ..commit.body };
        let t = time(BLOCKS + 1);
        VoteSignature {
            voter: pid(voter),
            time: t,
            signature: g.net.keys[&pid(voter)].node.sign(Tag::Vote, g.net.chain_id(), &body.signing_bytes(t)),
        }
    };
    let mut withheld = commit.clone();
    withheld.signatures.retain(|s| s.voter != pid("AC"));
    withheld.withheld = Some(signer("AC"));
    let mut blocks = raw(&g.blocks);
    blocks[last].certificate = wire::encode_certificate(&withheld);
    let r = run(&g, blocks);
    assert!(r.verified(), "{r}");
    assert_eq!(r.blocks, BLOCKS);
    kp_consensus::apply_committed(g.net.chain_id(), g.net.rule(), &mut replayed_before(&g, last), block, &withheld)
        .unwrap();

    // AC's prevote beside its own precommit, two precommits missing, or the stand-in in a
    // certificate that is no commit certificate: refused.
    let mut both = commit.clone();
    both.withheld = Some(signer("AC"));
    let mut two = withheld.clone();
    two.signatures.retain(|s| s.voter != pid("AD"));
    for (bad, says) in [(both, "AC"), (two, "AD")] {
        let mut blocks = raw(&g.blocks);
        blocks[last].certificate = wire::encode_certificate(&bad);
        let r = run(&g, blocks);
        assert_found(&r, BLOCKS, "certificate", None);
        assert!(r.discrepancy.unwrap().reason.contains(says));
    }
}

/// The application after the blocks before `index`, replayed through the consensus check.
fn replayed_before(g: &Golden, index: usize) -> LedgerApp {
    let mut app = LedgerApp::new(&g.net.genesis).unwrap();
    for (b, c) in &g.blocks[..index] {
        kp_consensus::apply_committed(g.net.chain_id(), g.net.rule(), &mut app, b, c).unwrap();
    }
    app
}
