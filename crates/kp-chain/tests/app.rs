//! `LedgerApp` as the consensus engine's application: a block executed tentatively stays
//! applied for its commit, and is undone for another. (The network of engines over the ledger
//! is simulated in `kp-sim`, which drives the node's own core.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use kp_chain::LedgerApp;
use kp_consensus::block::Block;
use kp_domain::{EventPayload, Role};
use kp_testkit::{TestNet, at, certificate};

/// The block executed last stays applied for its commit, invisibly: the application still
/// answers for the committed state, executing another block first undoes it, and the state a
/// commit leaves is the state of a node that executed nothing else.
#[test]
fn an_executed_block_is_kept_for_its_commit_and_undone_for_another() {
    use kp_consensus::Application;
    use kp_consensus::block::{BlockHeader, Certificate, VoteBody, VoteKind, events_root};
    let net = TestNet::new(&["BW", "EU", "ZA"], 12);
    let t = at(2, 0);
    let issue = |n: &str, by: &str, to: &str| {
        net.envelope_with(net.key(by, Role::Exporting), &EventPayload::CertificateIssued(certificate(n, by, to, t)))
    };
    let a = vec![issue("BW-1", "BW", "EU"), issue("EU-1", "EU", "ZA")];
    let b = vec![issue("ZA-1", "ZA", "BW")];
    let mut app = LedgerApp::new(&net.genesis).unwrap();
    let genesis_root = app.ledger().clone().state_root();
    let voters = app.voters();

    // Executing A leaves it applied, but the application answers for the committed state.
    let xa = app.execute(t, &a).unwrap();
    assert!(app.has_executed());
    assert_eq!((app.height(), app.events_committed(), app.voters()), (0, 0, voters.clone()));
    assert_eq!(app.ledger().events_applied(), 2, "A is applied");
    assert_eq!(app.execute(t, &a).unwrap(), xa, "executing A again is the same execution");

    // Executing B undoes A first: B's execution is that of a node that never saw A.
    let xb = app.execute(t, &b).unwrap();
    let mut fresh = LedgerApp::new(&net.genesis).unwrap();
    assert_eq!(fresh.execute(t, &b).unwrap(), xb);
    assert_eq!(app.ledger().events_applied(), 1);
    // Settling leaves the committed state.
    assert_eq!(app.committed().clone().state_root(), genesis_root);
    assert!(!app.has_executed());

    // A committed block that is the one executed is kept as it is; one that is not (A, after B
    // was executed) is applied from scratch. Either way the state is the block's.
    // (Numbered 2, since block 1 carries no events; its parent's certificate is never checked
    // here: the application commits what the engine verified.)
    let parent = kp_domain::Hash32([7; 32]);
    let last = Certificate {
        body: VoteBody { kind: VoteKind::Precommit, height: 1, round: 0, block_hash: parent },
        signatures: Vec::new(),
        withheld: None,
    };
    let block = |events: &[Vec<u8>], x: &kp_consensus::Execution| {
        let header = BlockHeader {
            chain_id: net.genesis.chain_id.clone(),
            height: 2,
            round: 0,
            prev_hash: parent,
            last_commit_hash: kp_consensus::block::certificate_hash(&kp_consensus::wire::encode_certificate(&last)),
            proposer: kp_testkit::pid("BW"),
            time: t,
            events_root: events_root(events),
            event_count: events.len() as u32,
            state_root: x.state_root,
            voters_hash: kp_consensus::block::voters_hash(&x.required),
        };
        Block::new(header, events.to_vec(), Some(last.clone())).unwrap()
    };
    let certificate = |b: &Block| Certificate {
        body: VoteBody { kind: VoteKind::Precommit, height: 2, round: 0, block_hash: b.hash() },
        signatures: Vec::new(),
        withheld: None,
    };
    for executed_first in [&a, &b] {
        let mut app = LedgerApp::new(&net.genesis).unwrap();
        app.execute(t, executed_first).unwrap();
        let committed = block(&a, &xa);
        app.commit(&committed, &certificate(&committed));
        assert!(!app.has_executed());
        assert_eq!((app.height(), app.events_committed()), (2, 2));
        assert_eq!(app.last_certificate(), Some(&certificate(&committed)), "the next block's time derives from it");
        assert_eq!(app.ledger_mut().state_root(), xa.state_root);
        assert_eq!(app.ledger().tentative_depth(), 0);
    }
}

/// A governance event shares no block: a proposal that mixes one with other events is refused
/// when executed (the proposer never makes one), alone it executes.
#[test]
fn a_governance_event_has_a_block_of_its_own() {
    use kp_consensus::Application;
    let net = TestNet::new(&["BW", "EU", "ZA"], 13);
    let t = at(2, 0);
    let issue = net.envelope_with(
        net.key("BW", Role::Exporting),
        &EventPayload::CertificateIssued(certificate("BW-1", "BW", "EU", t)),
    );
    let act = kp_testkit::act("S-1", kp_domain::GovernanceAction::Suspend { participant: kp_testkit::pid("ZA") });
    let suspend = net.governance_envelope("BW", &act, &["BW", "EU"]);
    let mut app = LedgerApp::new(&net.genesis).unwrap();
    for mixed in [vec![issue.clone(), suspend.clone()], vec![suspend.clone(), issue.clone()]] {
        let e = app.execute(t, &mixed).unwrap_err();
        assert!(e.reason.contains("block of its own"), "{e:?}");
        assert_eq!(app.ledger().events_applied(), 0, "nothing of a refused block stays applied");
    }
    let wp = kp_testkit::act("WP-1", kp_domain::GovernanceAction::Suspend { participant: kp_testkit::pid("ZA") });
    let opening =
        net.envelope_with(net.key("BW", Role::Exporting), &net.written_procedure("BW", &wp, at(9, 0)).payload);
    assert!(app.execute(t, &[issue.clone(), opening.clone()]).is_err());
    app.execute(t, &[suspend]).unwrap();
    assert!(app.execute(t, &[opening]).is_ok());
    assert!(app.execute(t, &[issue]).is_ok());
}
