//! The node's core without a network: the collection of governance approvals
//! (`Core::approve`: who is still missing, what is refused, the bounds on open acts), and how
//! clients' events are passed on to the upcoming proposers (`Core::tick`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::{EventId, EventPayload, GovernanceAction, ParticipantId, Role, Timestamp};
use kp_node::config::{ConsensusSection, engine_config};
use kp_node::core::{ApprovalBytes, ApprovalError, Core, DraftStatus, Effect, FORWARD_EVERY_MS, Submission};
use kp_testkit::{TestNet, pid};

fn approval(net: &TestNet, reference: &str, signer: &str) -> ApprovalBytes {
    let act = kp_testkit::act(reference, GovernanceAction::Suspend { participant: pid("ZA") });
    let bytes = kp_proto::encode_act(&act);
    let a = kp_proto::Approval::sign(net.key(signer, Role::Exporting), net.chain_id(), &bytes);
    ApprovalBytes { act: bytes, key: a.key.0.to_vec(), signature: a.signature.0.to_vec() }
}

fn approve(core: &mut Core, a: ApprovalBytes) -> (Result<DraftStatus, ApprovalError>, Vec<Effect>) {
    core.approve(a, true).unwrap()
}

#[test]
fn approvals_are_collected_checked_and_bounded() {
    let net = TestNet::new(&["BW", "EU", "ZA"], 7);
    let dir = tempfile::tempdir().unwrap();
    let key = kp_crypto::SecretKey::from_seed(&net.keys[&pid("BW")].node.to_seed());
    let config = engine_config(&ConsensusSection::default());
    let (mut core, _) = Core::open(&net.genesis, key, dir.path(), config, 100, kp_node::now(), false).unwrap();

    // BW approves the suspension of ZA: EU's approval is still needed (not ZA's, the subject).
    let (status, effects) = approve(&mut core, approval(&net, "A-1", "BW"));
    let status = status.unwrap();
    assert_eq!(status.missing, vec![pid("EU")]);
    assert!(status.refused.is_none());
    assert!(matches!(effects.as_slice(), [Effect::GossipApproval(_)]), "the approval is passed on");
    // The same approval again changes nothing and is not passed on again.
    let (status, effects) = approve(&mut core, approval(&net, "A-1", "BW"));
    assert_eq!(status.unwrap().draft.approvals.len(), 1);
    assert!(effects.is_empty());
    let (status, _) = approve(&mut core, approval(&net, "A-1", "EU"));
    assert!(status.unwrap().missing.is_empty(), "complete once EU approves");

    // Refused with the reason: a forged signature, a key that is no authority's, bytes that
    // are no act.
    let mut forged = approval(&net, "A-2", "EU");
    forged.signature[0] ^= 1;
    assert!(matches!(approve(&mut core, forged).0, Err(ApprovalError::BadSignature(_))));
    let stranger = kp_testkit::seeded_key(99, "stranger");
    let mut unknown = approval(&net, "A-2", "EU");
    let a = kp_proto::Approval::sign(&stranger, net.chain_id(), &unknown.act);
    unknown.key = a.key.0.to_vec();
    unknown.signature = a.signature.0.to_vec();
    assert!(matches!(approve(&mut core, unknown).0, Err(ApprovalError::UnknownKey(_))));
    let mut garbage = approval(&net, "A-2", "EU");
    garbage.act = vec![0xff; 7];
    assert!(matches!(approve(&mut core, garbage).0, Err(ApprovalError::Malformed(_))));
    assert_eq!(core.drafts(None).len(), 1, "nothing refused was kept");

    // One participant may open at most 4 acts awaiting approval.
    for r in ["B-1", "B-2", "B-3"] {
        approve(&mut core, approval(&net, r, "BW")).0.unwrap();
    }
    match approve(&mut core, approval(&net, "B-4", "BW")).0 {
        Err(ApprovalError::TooMany(p)) => assert_eq!(p, pid("BW")),
        other => panic!("a fifth open act was accepted: {other:?}"),
    }
    // Another participant still may, and approving an act already open is not opening one.
    approve(&mut core, approval(&net, "B-4", "EU")).0.unwrap();
    approve(&mut core, approval(&net, "B-4", "BW")).0.unwrap();
    assert_eq!(core.drafts(Some("B-4")).first().unwrap().draft.approvals.len(), 2);
}

/// The events passed on, by proposer, in `effects`.
fn forwarded(effects: &[Effect]) -> Vec<(ParticipantId, Vec<EventId>)> {
    let mut out: Vec<(ParticipantId, Vec<EventId>)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Forward(to, envelopes) => Some((*to, envelopes.iter().map(|b| kp_crypto::event_id(b)).collect())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Ticks the core at its deadlines until it is in `round` (of height 1), gathering the effects.
fn until_round(core: &mut Core, round: u32) -> Vec<Effect> {
    let mut effects = Vec::new();
    for _ in 0..100 {
        if core.round() == round {
            return effects;
        }
        let at = core.next_deadline().expect("a round timer is set");
        effects.extend(core.tick(at).unwrap());
    }
    panic!("round {round} not reached; at round {}", core.round());
}

#[test]
fn clients_events_go_to_the_upcoming_proposers_once_each() {
    // Voters BW, EU, NA, ZA; the leader of (height h, round r) is voters[(h + r) mod 4]. BW's
    // node proposes in none of the first rounds: EU leads (1, 0), NA leads (2, 0).
    let net = TestNet::new(&["BW", "EU", "NA", "ZA"], 8);
    let dir = tempfile::tempdir().unwrap();
    let key = kp_crypto::SecretKey::from_seed(&net.keys[&pid("BW")].node.to_seed());
    let config = engine_config(&ConsensusSection::default());
    let start = kp_node::now();
    let (mut core, _) = Core::open(&net.genesis, key, dir.path(), config, 100, start, false).unwrap();
    let issue = |number: &str, by: &str, to: &str| {
        let c = kp_testkit::certificate(number, by, to, start);
        net.envelope_with(net.key(by, Role::Exporting), &EventPayload::CertificateIssued(c))
    };
    let submit = |core: &mut Core, envelope: Vec<u8>, at: Timestamp| {
        let (answers, _) = core.submit_batch(vec![envelope], at).unwrap();
        match answers.as_slice() {
            [Submission::Added(id)] => *id,
            other => panic!("not added: {other:?}"),
        }
    };

    // To the two upcoming proposers only, not to ZA's node.
    let first = submit(&mut core, issue("BW-1", "BW", "EU"), start);
    let effects = core.tick(start).unwrap();
    assert_eq!(forwarded(&effects), vec![(pid("EU"), vec![first]), (pid("NA"), vec![first])]);

    // A second event waits for the next batch: not sooner than FORWARD_EVERY_MS after the last.
    let second = submit(&mut core, issue("BW-2", "BW", "ZA"), start.saturating_add_ms(5));
    assert!(forwarded(&core.tick(start.saturating_add_ms(FORWARD_EVERY_MS - 1)).unwrap()).is_empty());
    let effects = core.tick(start.saturating_add_ms(FORWARD_EVERY_MS)).unwrap();
    assert_eq!(forwarded(&effects), vec![(pid("EU"), vec![second]), (pid("NA"), vec![second])]);
    let t = start.saturating_add_ms(200);
    assert!(forwarded(&core.tick(t).unwrap()).is_empty(), "each gets each event once");

    // An event a peer passed on is held (never passed on again by this node).
    let theirs = issue("ZA-1", "ZA", "EU");
    let theirs_id = kp_crypto::event_id(&theirs);
    let (received, _) = core.receive_events(vec![theirs.clone()], t).unwrap();
    assert_eq!(received.added, 1);
    assert!(core.pending(&theirs_id).is_some());
    let (again, _) = core.receive_events(vec![theirs], t).unwrap();
    assert_eq!(again.added, 0, "an event already held is not added twice");

    // Round 1 (NA leads it, and height 2): NA already has BW's events, so nothing goes out;
    // the peer's event stays held until it is committed, whoever proposes.
    let effects = until_round(&mut core, 1);
    assert!(forwarded(&effects).is_empty(), "{:?}", forwarded(&effects));
    assert!(core.pending(&theirs_id).is_some(), "a peer's event is held until committed");
    assert!(core.pending(&first).is_some() && core.pending(&second).is_some(), "own events stay");

    // Round 2 (ZA leads): ZA's node gets both events in submission order, in the tick that
    // enters the round.
    let both = vec![first, second];
    let effects = until_round(&mut core, 2);
    assert_eq!(forwarded(&effects), vec![(pid("ZA"), both.clone())]);

    // Round 4 (EU leads again): EU's node still holds both, so nothing is sent again — unless
    // it reconnects (it may have restarted and lost what it held in memory).
    let effects = until_round(&mut core, 4);
    assert!(forwarded(&effects).is_empty(), "{:?}", forwarded(&effects));
    core.peer_connected(pid("EU"));
    let at = core.next_deadline().expect("a pass due");
    assert_eq!(forwarded(&core.tick(at).unwrap()), vec![(pid("EU"), both.clone())]);

    // A restart reloads the own events (kept durably) but not the peer's (held in memory only:
    // its origin keeps it and passes it on again).
    drop(core);
    let key = kp_crypto::SecretKey::from_seed(&net.keys[&pid("BW")].node.to_seed());
    let config = engine_config(&ConsensusSection::default());
    let (core, _) = Core::open(&net.genesis, key, dir.path(), config, 100, kp_node::now(), false).unwrap();
    assert!(both.iter().all(|id| core.pending(id).is_some()), "own events are kept across a restart");
    assert!(core.pending(&theirs_id).is_none(), "a peer's event is not");
}
