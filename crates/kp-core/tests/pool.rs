//! The pending pool's tentative block under the core's lock: a full pool refuses without
//! touching it, reads never undo it, and a store failure in a submission group leaves nothing
//! of the group behind (the same events are taken when submitted again).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_core::{Core, RejectKind, Submission};
use kp_domain::{EventPayload, Role, Timestamp};
use kp_store::FaultyMemBackend;
use kp_testkit::{TestNet, at, certificate, pid, seal};

type FailingDisk = FaultyMemBackend;

fn config() -> kp_consensus::Config {
    kp_consensus::Config { round_timeout_base_ms: 1_000, round_timeout_cap_ms: 30_000, idle_block_ms: 2_000 }
}

/// BW's node of a four-participant network (it leads no round before a while).
fn node(net: &TestNet, disk: FailingDisk) -> Core<FailingDisk> {
    let key = kp_crypto::SecretKey::from_seed(&net.keys[&pid("BW")].node.to_seed());
    Core::open_with(disk, &net.genesis, key, config(), 100, at(1, 0), false).unwrap().0
}

fn issue(net: &TestNet, number: &str) -> Vec<u8> {
    let c = certificate(number, "BW", "EU", at(1, 0));
    net.envelope_with(net.key("BW", Role::Exporting), &EventPayload::CertificateIssued(c))
}

fn added(answers: &[Submission]) -> usize {
    answers.iter().filter(|a| matches!(a, Submission::Added(_))).count()
}

fn reapplied(core: &Core<FailingDisk>) -> u64 {
    core.metrics().pool_reapplied.get()
}

#[test]
fn a_full_pool_refuses_without_touching_its_tentative_block() {
    let net = TestNet::new(&["BW", "EU", "NA", "ZA"], 3);
    let mut core = node(&net, FailingDisk::default());
    core.set_pending_limit(4);
    let now = Timestamp(at(1, 0).0 + 10);
    let first: Vec<Vec<u8>> = (0..4).map(|k| issue(&net, &format!("BW-{k}"))).collect();
    let (answers, _) = core.submit_batch(first, now).unwrap();
    assert_eq!(added(&answers), 4);
    assert!(core.pool_block_applied());
    let before = reapplied(&core);
    for k in 0..20 {
        let (answers, _) = core.submit_batch(vec![issue(&net, &format!("BW-X{k}"))], now).unwrap();
        assert!(matches!(answers.as_slice(), [Submission::Rejected(_, RejectKind::PoolFull, _)]), "{answers:?}");
        assert!(core.pool_block_applied(), "a refusal for a full pool undid the pool's block");
    }
    assert_eq!(reapplied(&core), before, "a full pool was applied again for submissions it refused");
    // A batch larger than the room: what fits is checked and kept, the rest refused unchecked.
    core.set_pending_limit(6);
    let batch: Vec<Vec<u8>> = (0..4).map(|k| issue(&net, &format!("BW-Y{k}"))).collect();
    let (answers, _) = core.submit_batch(batch, now).unwrap();
    assert_eq!(added(&answers), 2);
    assert!(answers[2..].iter().all(|a| matches!(a, Submission::Rejected(_, RejectKind::PoolFull, _))));
    assert_eq!(core.pool_len(), 6);
}

#[test]
fn reads_never_undo_the_pools_tentative_block() {
    let net = TestNet::new(&["BW", "EU", "NA", "ZA"], 4);
    let mut core = node(&net, FailingDisk::default());
    let now = Timestamp(at(1, 0).0 + 10);
    let (answers, _) = core.submit_batch(vec![issue(&net, "BW-1")], now).unwrap();
    assert_eq!(added(&answers), 1);
    let before = reapplied(&core);
    // GetGovernance, an approval (its key checked on the ledger), and the store's reads.
    assert!(core.drafts(None).is_empty());
    let act = kp_testkit::act("KP/1", kp_domain::GovernanceAction::Suspend { participant: pid("ZA") });
    let bytes = kp_proto::encode_act(&act);
    let a = kp_proto::Approval::sign(net.key("EU", Role::Exporting), net.chain_id(), &bytes);
    let approval = kp_core::ApprovalBytes { act: bytes, key: a.key.0.to_vec(), signature: a.signature.0.to_vec() };
    let (status, _) = core.approve(approval, true).unwrap();
    assert_eq!(status.unwrap().missing.len(), 2, "BW and NA still to approve (ZA is the subject)");
    assert_eq!(core.drafts(None).len(), 1);
    let number = kp_domain::CertificateNumber::new("BW-1").unwrap();
    assert!(core.store().custody(&number).unwrap().is_empty(), "pending, not committed");
    assert!(core.pool_block_applied(), "a read undid the pool's tentative block");
    // The next submission is checked against the pool as it stands: no re-application.
    let sealed =
        net.envelope_with(net.key("BW", Role::Exporting), &EventPayload::ShipmentSealed(seal("BW-1", at(1, 0))));
    let (answers, _) = core.submit_batch(vec![sealed], now).unwrap();
    assert_eq!(added(&answers), 1, "{answers:?}");
    assert_eq!(reapplied(&core), before);
}

#[test]
fn a_store_failure_in_a_group_leaves_nothing_of_it_behind() {
    let net = TestNet::new(&["BW", "EU", "NA", "ZA"], 5);
    let disk = FailingDisk::default();
    let mut core = node(&net, disk.clone());
    let now = Timestamp(at(1, 0).0 + 10);
    let (answers, _) = core.submit_batch(vec![issue(&net, "BW-1")], now).unwrap();
    assert_eq!(added(&answers), 1);
    let before = reapplied(&core);
    let group = vec![
        issue(&net, "BW-2"),
        net.envelope_with(net.key("BW", Role::Exporting), &EventPayload::ShipmentSealed(seal("BW-2", at(1, 0)))),
    ];
    disk.fail_pool_writes(1);
    assert!(core.submit_batch(group.clone(), now).is_err(), "the clients of the group are told");
    assert_eq!(core.pool_len(), 1);
    assert!(core.pool_block_applied(), "the pool's own block stays applied");
    // Submitted again, the same events are taken: nothing of the failed group was left applied.
    let (answers, _) = core.submit_batch(group, now).unwrap();
    assert_eq!(added(&answers), 2, "{answers:?}");
    assert_eq!(reapplied(&core), before);
    // A duplicate within one group is answered as such, without a rebuild.
    let twice = vec![issue(&net, "BW-3"), issue(&net, "BW-3")];
    let (answers, _) = core.submit_batch(twice, now).unwrap();
    assert!(matches!(answers.as_slice(), [Submission::Added(_), Submission::Duplicate(_, None)]), "{answers:?}");
    assert_eq!(reapplied(&core), before);
}
