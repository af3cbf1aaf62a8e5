//! The synthetic year: every planted anomaly is found, with its evidence, and nothing else.

use crate::common::*;
use crate::synthetic::{self, Expected};
use crate::world;
use kp_domain::{Carats, EventId};
use kp_review::{Anomaly, AnomalyKind, AnomalyParams, Figures, anomalies_to_csv};
use std::collections::BTreeMap;

type Key = (AnomalyKind, String, Option<String>, String);

fn key_of_found(a: &Anomaly) -> Key {
    (a.kind, a.participant.to_string(), a.certificate.as_ref().map(|c| c.to_string()), a.period.to_string())
}

fn key_of_expected(e: &Expected) -> Key {
    (e.kind, e.participant.to_string(), e.certificate.as_ref().map(|c| c.to_string()), e.period.clone())
}

/// Asserts that `found` is exactly `expected`: the same findings, each with the expected
/// evidence. On failure, prints every difference.
fn assert_same(found: &[Anomaly], expected: &[&Expected]) {
    let found_by_key: BTreeMap<Key, &Anomaly> = found.iter().map(|a| (key_of_found(a), a)).collect();
    assert_eq!(found_by_key.len(), found.len(), "two findings share a key");
    let expected_by_key: BTreeMap<Key, &Expected> = expected.iter().map(|e| (key_of_expected(e), *e)).collect();
    let mut problems = Vec::new();
    for (k, a) in &found_by_key {
        match expected_by_key.get(k) {
            None => problems.push(format!("unexpected finding: {a}")),
            Some(e) if e.event_ids != a.event_ids => problems.push(format!(
                "wrong evidence for {k:?}: expected {:?}, found {:?}\n{a}",
                e.event_ids.iter().map(EventId::short).collect::<Vec<_>>(),
                a.event_ids.iter().map(EventId::short).collect::<Vec<_>>()
            )),
            Some(_) => {}
        }
    }
    for k in expected_by_key.keys() {
        if !found_by_key.contains_key(k) {
            problems.push(format!("missing finding: {k:?}"));
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn synthetic_year_is_realistic_in_size() {
    let w = world();
    // A few thousand certificates, about three events each, among the 59 participants.
    assert_eq!(w.genesis.participants.len(), 59);
    assert!((2_000..6_000).contains(&w.certificates), "{} certificates", w.certificates);
    assert!(w.entries.len() > 2 * w.certificates, "{} events", w.entries.len());
    let review = review_of(&w.genesis, &w.entries);
    assert_eq!(review.ignored().0, 0, "{:?}", review.ignored().1);
    assert_eq!(review.certificate_count(), w.certificates);
    // Every kind of anomaly is planted.
    for kind in AnomalyKind::ALL {
        assert!(w.expected.iter().any(|e| e.kind == kind), "{kind} is not planted");
    }
}

#[test]
fn synthetic_year_finds_exactly_the_planted_anomalies() {
    let w = world();
    let review = review_of(&w.genesis, &w.entries);
    let found = review.anomalies(&AnomalyParams::new(w.today));
    println!("{} certificates, {} events, {} findings:", w.certificates, w.entries.len(), found.len());
    for a in &found {
        print!("{a}");
    }
    assert_same(&found, &w.expected.iter().collect::<Vec<_>>());

    // The figures of the Republic of the Congo pattern, and the bound on cited certificates.
    let cg: Vec<&Anomaly> =
        found.iter().filter(|a| a.kind == AnomalyKind::ExportsExceedSupply && a.participant == pid("CG")).collect();
    assert_eq!(cg.len(), 2);
    match &cg[0].figures {
        Figures::ExportsExceedSupply {
            exports, production, imports, export_certificates, production_reported, ..
        } => {
            // 10 certificates of 30,000 + 1,700 k carats.
            assert_eq!(*exports, Carats(37_650_000));
            assert_eq!(*production, Carats(2_000_000));
            assert_eq!(*imports, Carats(0));
            assert_eq!(*export_certificates, 10);
            assert!(production_reported);
        }
        other => panic!("wrong figures {other:?}"),
    }
    assert_eq!(cg[1].event_ids.len(), 1 + kp_review::MAX_EXPORT_EVIDENCE);
    assert!(cg[0].explanation.contains("376500.00 ct"), "{}", cg[0].explanation);
    // LB: 6% over its imports, no production report.
    let lb = found.iter().find(|a| a.participant == pid("LB")).unwrap();
    assert!(matches!(
        lb.figures,
        Figures::ExportsExceedSupply {
            exports: Carats(1_060_000),
            imports: Carats(1_000_000),
            production_reported: false,
            ..
        }
    ));
    // Undervaluation figures are consistent with the definition.
    for a in found.iter().filter(|a| a.kind == AnomalyKind::Undervaluation) {
        let Figures::Undervaluation { usd_per_carat, median_usd_per_carat, robust_z, samples, .. } = a.figures else {
            panic!()
        };
        assert!(usd_per_carat < median_usd_per_carat / 2.0);
        assert!(robust_z.unwrap() > 3.5, "{a}");
        assert!(samples >= 8);
    }
    // The late confirmation received after expiry says so.
    let late = found.iter().find(|a| a.kind == AnomalyKind::LateConfirmation && a.participant == pid("IN")).unwrap();
    assert!(matches!(late.figures, Figures::LateConfirmation { delay_days: 48, after_expiry: true, .. }), "{late}");

    // Every output form is produced, and the CSV has one row per finding.
    let csv = anomalies_to_csv(&found);
    assert_eq!(csv.lines().count(), found.len() + 1);
    let json = serde_json::to_value(&found).unwrap();
    assert_eq!(json[0]["kind"], "never_confirmed");
    assert!(json[0]["event_ids"][0].as_str().unwrap().len() == 64);
}

#[test]
fn period_and_today_select_the_findings() {
    let w = world();
    let review = review_of(&w.genesis, &w.entries);
    let (from, to) = (date("2026-01-01"), date("2026-06-30"));
    let params = AnomalyParams { from: Some(from), to: Some(to), ..AnomalyParams::new(w.today) };
    let expected: Vec<&Expected> = w.expected.iter().filter(|e| (from..=to).contains(&e.date)).collect();
    assert!(expected.len() >= 6);
    assert_same(&review.anomalies(&params), &expected);

    // Before the expiry of the planted unconfirmed shipments, they are not yet due.
    let early = AnomalyParams::new(date("2026-11-01"));
    assert!(!review.anomalies(&early).iter().any(|a| a.kind == AnomalyKind::NeverConfirmed));
}

#[test]
fn same_seed_same_findings() {
    let a = synthetic::generate(synthetic::SEED);
    let b = synthetic::generate(synthetic::SEED);
    let params = AnomalyParams::new(a.today);
    let ra = review_of(&a.genesis, &a.entries).anomalies(&params);
    let rb = review_of(&b.genesis, &b.entries).anomalies(&params);
    assert_eq!(serde_json::to_string(&ra).unwrap(), serde_json::to_string(&rb).unwrap());
}

#[test]
fn other_seeds_are_clean_too() {
    // The clean part must be clean whatever the seed; the planted set is the same.
    for seed in [1u64, 2, 3] {
        let w = synthetic::generate(seed);
        let found = review_of(&w.genesis, &w.entries).anomalies(&AnomalyParams::new(w.today));
        println!("seed {seed}: {} findings", found.len());
        assert_same(&found, &w.expected.iter().collect::<Vec<_>>());
    }
}

#[test]
fn undervaluation_needs_both_conditions_enough_samples_and_a_whole_quarter_norm() {
    use kp_domain::HsCode::NonIndustrial;
    let g = genesis(&[("BW", "Botswana"), ("EU", "European Union")]);
    let mut l = Ledger::default();
    l.push(at("2026-04-01", 1), production("BW", 2026, 1, 0, vec![line(NonIndustrial, 100_000_000, 1)]));
    l.push(at("2026-07-01", 1), production("BW", 2026, 2, 0, vec![line(NonIndustrial, 100_000_000, 1)]));
    // 2026-Q2: twelve lines of 100 ct at these USD per carat. Median 100, MAD 1.5, spread 2.22:
    // 60 is 18 spreads below but above half the median (clean); 45 is below both (flagged).
    let q2 = [98, 99, 100, 100, 101, 102, 97, 103, 100, 100, 60, 45];
    let mut numbers = Vec::new();
    for (k, usd) in q2.iter().enumerate() {
        let day = date("2026-04-01").add_days(i32::try_from(k).unwrap());
        let num = format!("BW-Q2-{k:02}");
        let c = certificate(&num, "BW", "EU", day, 45, 1, vec![line(NonIndustrial, 10_000, 10_000 * usd)]);
        l.push(day.start().saturating_add_ms(9 * 3_600_000), issued(&c));
        numbers.push(num);
    }
    // 2026-Q3: nine lines at exactly 100 and one at 40: the spread is zero.
    for k in 0..10u64 {
        let day = date("2026-07-01").add_days(i32::try_from(k).unwrap());
        let usd = if k == 9 { 40 } else { 100 };
        let c = certificate(
            &format!("BW-Q3-{k:02}"),
            "BW",
            "EU",
            day,
            45,
            1,
            vec![line(NonIndustrial, 10_000, 10_000 * usd)],
        );
        l.push(day.start().saturating_add_ms(9 * 3_600_000), issued(&c));
    }
    let review = review_of(&g, &l.committed());
    // Early enough that nothing has expired: only undervaluation can be found.
    let today = date("2026-04-02");
    let flagged = |p: &AnomalyParams| -> Vec<String> {
        review.anomalies(p).iter().map(|a| a.certificate.as_ref().unwrap().to_string()).collect()
    };
    let params = AnomalyParams::new(today);
    assert_eq!(flagged(&params), ["BW-Q2-11", "BW-Q3-09"]);
    let found = review.anomalies(&params);
    assert!(
        matches!(found[0].figures, Figures::Undervaluation { robust_z: Some(z), samples: 12, .. } if z > 24.0 && z < 25.0)
    );
    assert!(matches!(found[1].figures, Figures::Undervaluation { robust_z: None, samples: 10, .. }));
    assert!(found[1].explanation.contains("unbounded"), "{}", found[1].explanation);
    // min_samples: a group of 12 lines is used at 12, not at 13 (nor is the group of 10 at 11).
    assert_eq!(flagged(&AnomalyParams { min_samples: 12, ..params.clone() }), ["BW-Q2-11"]);
    assert!(flagged(&AnomalyParams { min_samples: 13, ..params.clone() }).is_empty());
    // A period holding only the outlier's day still measures it against the whole quarter.
    let day = date("2026-04-12");
    assert_eq!(flagged(&AnomalyParams { from: Some(day), to: Some(day), ..params.clone() }), ["BW-Q2-11"]);
    let after = day.add_days(1);
    assert!(flagged(&AnomalyParams { from: Some(after), to: Some(date("2026-06-30")), ..params.clone() }).is_empty());
    // Whatever the threshold, the 60 stays above half the median and is not flagged.
    assert_eq!(flagged(&AnomalyParams { undervaluation_threshold: 0.5, ..params }), ["BW-Q2-11", "BW-Q3-09"]);
}

/// What is due is judged as of the ledger's consensus time — the time of the last block seen —
/// never the reading machine's clock: the same report on any machine.
#[test]
fn reports_judge_by_the_ledgers_consensus_time() {
    let w = world();
    let mut review = review_of(&w.genesis, &w.entries);
    assert_eq!(review.as_of(), w.genesis.genesis_time.date(), "before any block: the genesis time");
    let due = w.today.days() - w.genesis.genesis_time.date().days();
    let head = w.genesis.genesis_time.saturating_add_ms(u64::try_from(due).unwrap() * 86_400_000);
    review.note_block(head);
    review.note_block(w.genesis.genesis_time);
    assert_eq!(review.as_of(), w.today, "the last block's date, never moved back");
    let by_ledger = review.anomalies(&AnomalyParams::new(review.as_of()));
    let by_day = review.anomalies(&AnomalyParams::new(w.today));
    assert_eq!(serde_json::to_string(&by_ledger).unwrap(), serde_json::to_string(&by_day).unwrap());
    assert!(by_ledger.iter().any(|a| a.kind == AnomalyKind::NeverConfirmed));
}
