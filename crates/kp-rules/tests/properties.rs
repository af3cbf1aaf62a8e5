//! Properties of the rules engine over random sequences of events (seeded by proptest; a
//! failing case prints its minimal sequence and proptest records the seed in
//! `proptest-regressions/`).
//! - it never panics, whatever the sequence;
//! - the state root is a pure function of the accepted sequence: replaying only the accepted
//!   events on a fresh ledger accepts them all and gives the same root, however often the
//!   root was computed along the way;
//! - a rejected event leaves the state root unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::*;
use kp_rules::Ledger;
use kp_testkit::{TestNet, act, at, certificate, pid, receipt, seal};
use proptest::prelude::*;

const CODES: [&str; 4] = ["BW", "EU", "CA", "AE"];

#[derive(Debug, Clone)]
enum Op {
    Issue { n: u8, from: usize, to: usize },
    Seal { n: u8, by: usize },
    Receive { n: u8, by: usize, short: bool },
    Void { n: u8, by: usize },
    Amend { n: u8, by: usize, to: usize },
    Produce { by: usize, revision: u32 },
    Suspend { who: usize },
    Readmit { who: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..CODES.len();
    prop_oneof![
        4 => (0u8..6, who.clone(), who.clone()).prop_map(|(n, from, to)| Op::Issue { n, from, to }),
        3 => (0u8..6, who.clone()).prop_map(|(n, by)| Op::Seal { n, by }),
        3 => (0u8..6, who.clone(), any::<bool>()).prop_map(|(n, by, short)| Op::Receive { n, by, short }),
        1 => (0u8..6, who.clone()).prop_map(|(n, by)| Op::Void { n, by }),
        1 => (0u8..6, who.clone(), who.clone()).prop_map(|(n, by, to)| Op::Amend { n, by, to }),
        1 => (who.clone(), 0u32..3).prop_map(|(by, revision)| Op::Produce { by, revision }),
        1 => who.clone().prop_map(|who| Op::Suspend { who }),
        1 => who.prop_map(|who| Op::Readmit { who }),
    ]
}

fn number(code: &str, n: u8) -> String {
    format!("{code}-{n}")
}

fn build(net: &TestNet, ledger: &Ledger, op: &Op, t: Timestamp, reference: usize) -> Event {
    let c = |i: usize| CODES[i];
    match op {
        Op::Issue { n, from, to } => net.raw_event(
            c(*from),
            Role::Exporting,
            EventPayload::CertificateIssued(certificate(&number(c(*from), *n), c(*from), c(*to), t)),
        ),
        Op::Seal { n, by } => {
            net.raw_event(c(*by), Role::Exporting, EventPayload::ShipmentSealed(seal(&number(c(*by), *n), t)))
        }
        Op::Receive { n, by, short } => {
            // Receive the certificate of that number from whichever exporter has one.
            let found = CODES.iter().find_map(|e| ledger.certificate(&CertificateNumber::new(&number(e, *n)).unwrap()));
            let cert =
                found.map(|r| r.certificate.clone()).unwrap_or_else(|| certificate(&number("BW", *n), "BW", c(*by), t));
            let mut r = receipt(&cert, t);
            if *short {
                r.parcels_found = r.parcels_found.saturating_sub(1);
            }
            net.raw_event(c(*by), Role::Importing, EventPayload::ReceiptConfirmed(r))
        }
        Op::Void { n, by } => net.raw_event(
            c(*by),
            Role::Exporting,
            EventPayload::CertificateVoided(CertificateVoided {
                certificate: CertificateNumber::new(&number(c(*by), *n)).unwrap(),
                reason: Text::new("cancelled").unwrap(),
            }),
        ),
        Op::Amend { n, by, to } => net.raw_event(
            c(*by),
            Role::Exporting,
            EventPayload::CertificateAmended(CertificateAmended {
                certificate: certificate(&number(c(*by), *n), c(*by), c(*to), t),
                reason: Text::new("corrected").unwrap(),
            }),
        ),
        Op::Produce { by, revision } => net.raw_event(
            c(*by),
            Role::Exporting,
            EventPayload::ProductionReported(ProductionReported {
                participant: pid(c(*by)),
                period: HalfYear::new(2026, 1).unwrap(),
                revision: *revision,
                lines: vec![HsLine { hs_code: HsCode::Unsorted, carats: Carats(500), value: UsdCents(700) }],
                zones: vec![],
            }),
        ),
        Op::Suspend { who } => {
            let others = net.all_but(&[c(*who)]);
            let proposer = others.first().cloned().unwrap_or_else(|| c(*who).to_owned());
            net.governance(
                &proposer,
                &act(&format!("G-{reference}"), GovernanceAction::Suspend { participant: pid(c(*who)) }),
                &others,
            )
        }
        Op::Readmit { who } => {
            let voters: Vec<String> = ledger.voters().iter().map(|(p, _)| p.to_string()).collect();
            let proposer = voters.first().cloned().unwrap_or_else(|| "BW".to_owned());
            net.governance(
                &proposer,
                &act(&format!("G-{reference}"), GovernanceAction::Readmit { participant: pid(c(*who)) }),
                &voters,
            )
        }
    }
}

/// A store's view of a ledger: the genesis records, then the changes taken after each block.
type Stored = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

/// A ledger from the genesis that tracks its changes, and the records a store starts with.
fn tracked(net: &TestNet) -> (Ledger, Stored) {
    let mut ledger = Ledger::from_genesis(&net.genesis).unwrap();
    let stored = ledger.records().into_iter().collect();
    ledger.track_changes();
    (ledger, stored)
}

/// Takes the ledger's changes into the store's view, as a store does after each block.
fn take_changes(ledger: &mut Ledger, stored: &mut Stored) {
    for (key, value) in ledger.take_changes() {
        match value {
            Some(v) => {
                stored.insert(key, v);
            }
            None => {
                stored.remove(&key);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn state_root_is_a_pure_function_of_the_accepted_sequence(
        ops in proptest::collection::vec((op(), 0u64..3, 0u64..4_000_000, any::<bool>()), 1..40),
    ) {
        let net = TestNet::new(&CODES, 42);
        let mut ledger = Ledger::from_genesis(&net.genesis).unwrap();
        let mut accepted = Vec::new();
        let mut day = 1;
        for (i, (op, day_step, ms, root_now)) in ops.iter().enumerate() {
            day += day_step;
            // Sometimes a block time earlier than the last: must be refused, not panic.
            let t = if *day_step == 0 && *ms > 3_900_000 { at(day.saturating_sub(1), 0) } else { at(day, *ms) };
            let event = build(&net, &ledger, op, t, i);
            let before = ledger.state_root();
            match ledger.apply(&event, t) {
                Ok(_) => accepted.push((event, t)),
                Err(_) => prop_assert_eq!(ledger.state_root(), before),
            }
            if *root_now {
                ledger.state_root();
            }
        }
        let mut replay = Ledger::from_genesis(&net.genesis).unwrap();
        for (event, t) in &accepted {
            prop_assert!(replay.apply(event, *t).is_ok());
        }
        prop_assert_eq!(replay.state_root(), ledger.state_root());
        prop_assert_eq!(replay.events_applied(), accepted.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Voters execute a proposal tentatively and undo it when the round fails: after a
    /// rollback the state root is exactly what it was, and the ledger behaves as if the block
    /// had never been executed.
    #[test]
    fn rolled_back_blocks_leave_no_trace(
        blocks in proptest::collection::vec((proptest::collection::vec((op(), 0u64..4_000_000), 1..8), any::<bool>()), 1..8),
    ) {
        let net = TestNet::new(&CODES, 43);
        let (mut ledger, mut stored) = tracked(&net);
        let mut committed = Vec::new();
        let mut day = 1;
        let mut reference = 0;
        for (ops, keep) in &blocks {
            day += 1;
            let before = ledger.state_root();
            let applied_before = ledger.events_applied();
            ledger.begin_block();
            let mut accepted = Vec::new();
            for (op, ms) in ops {
                reference += 1;
                let t = at(day, 0);
                let event = build(&net, &ledger, op, at(day, *ms % 1000), reference);
                if ledger.apply(&event, t).is_ok() {
                    accepted.push((event, t));
                }
            }
            let tentative = ledger.state_root();
            if *keep {
                ledger.commit_block();
                committed.extend(accepted);
            } else {
                ledger.rollback_block();
                prop_assert_eq!(ledger.state_root(), before);
                prop_assert_eq!(ledger.events_applied(), applied_before);
                // Executing the same block again gives the same tentative root.
                ledger.begin_block();
                for (event, t) in &accepted {
                    prop_assert!(ledger.apply(event, *t).is_ok());
                }
                prop_assert_eq!(ledger.state_root(), tentative);
                ledger.rollback_block();
                prop_assert_eq!(ledger.state_root(), before);
            }
            take_changes(&mut ledger, &mut stored);
        }
        let mut replay = Ledger::from_genesis(&net.genesis).unwrap();
        for (event, t) in &committed {
            prop_assert!(replay.apply(event, *t).is_ok());
        }
        prop_assert_eq!(replay.state_root(), ledger.state_root());
        // The changes taken block by block add up to the state's records, and those records
        // restore a ledger with the same root and the same records.
        let records = ledger.records();
        prop_assert_eq!(stored.clone().into_iter().collect::<Vec<_>>(), records.clone());
        let mut restored = Ledger::from_records(stored, ledger.events_applied()).unwrap();
        prop_assert_eq!(restored.state_root(), ledger.state_root());
        prop_assert_eq!(restored.records(), records);
        prop_assert_eq!(restored.voters(), ledger.voters());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A node executes a proposal as a rooted tentative block and keeps it applied for the
    /// commit, while its pending pool is checked in a scratch block on top: undoing the
    /// scratch block leaves the executed block exactly as it was (root, events, records), and
    /// committing the executed block hands the store only what it wrote.
    #[test]
    fn scratch_blocks_over_an_executed_block_leave_no_trace(
        blocks in proptest::collection::vec(
            (proptest::collection::vec((op(), 0u64..4_000_000), 1..6), proptest::collection::vec(op(), 0..6), any::<bool>()),
            1..6,
        ),
    ) {
        let net = TestNet::new(&CODES, 44);
        let (mut ledger, mut stored) = tracked(&net);
        let mut committed = Vec::new();
        let mut reference = 1_000;
        for (day, (executed, pool, keep)) in blocks.iter().enumerate() {
            let t = at(day as u64 + 2, 0);
            ledger.begin_block();
            let mut accepted = Vec::new();
            for (op, _) in executed {
                reference += 1;
                let event = build(&net, &ledger, op, t, reference);
                if ledger.apply(&event, t).is_ok() {
                    accepted.push(event);
                }
            }
            let root = ledger.state_root();
            let applied = ledger.events_applied();
            let records = ledger.records();
            // The pool, checked in a scratch block (twice, as a node rebuilds it).
            for _ in 0..2 {
                ledger.begin_scratch();
                for op in pool {
                    reference += 1;
                    let event = build(&net, &ledger, op, t, reference);
                    let _ = ledger.apply(&event, t);
                }
                prop_assert_eq!(ledger.tentative_depth(), 2);
                ledger.rollback_block();
            }
            prop_assert_eq!(ledger.state_root(), root);
            prop_assert_eq!(ledger.events_applied(), applied);
            prop_assert_eq!(ledger.records(), records);
            if *keep {
                ledger.commit_block();
                committed.extend(accepted.into_iter().map(|e| (e, t)));
            } else {
                ledger.rollback_block();
            }
            take_changes(&mut ledger, &mut stored);
            // What the store holds is exactly the committed state.
            prop_assert_eq!(stored.clone().into_iter().collect::<Vec<_>>(), ledger.records());
        }
        let mut replay = Ledger::from_genesis(&net.genesis).unwrap();
        for (event, t) in &committed {
            prop_assert!(replay.apply(event, *t).is_ok());
        }
        prop_assert_eq!(replay.state_root(), ledger.state_root());
    }
}
