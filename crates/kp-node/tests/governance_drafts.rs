//! The node's collection of governance approvals (`Core::approve`): who is still missing, what
//! is refused (forged, unknown or malformed approvals), and the bounds on open acts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::{GovernanceAction, Role};
use kp_node::config::{ConsensusSection, engine_config};
use kp_node::core::{ApprovalBytes, ApprovalError, Core, DraftStatus, Effect};
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
