//! Odd input never panics: events out of order, repeated, missing, or strange in content.

use crate::common::*;
use crate::world;
use kp_domain::*;
use kp_review::{AnomalyParams, Review, anomalies_to_csv, chart_svg};

/// Runs every output of the review with the given day and parameters; checks invariants that
/// hold for any input.
fn exercise(review: &Review, rng: &mut Rng, participants: &[ParticipantId]) {
    let pick = |rng: &mut Rng| participants[usize::try_from(rng.below(participants.len() as u64)).unwrap()];
    let day = |rng: &mut Rng| Date(i32::try_from(rng.range(19_000, 21_000)).unwrap());
    let params = AnomalyParams {
        from: if rng.below(3) == 0 { None } else { Some(day(rng)) },
        to: if rng.below(3) == 0 { None } else { Some(day(rng)) },
        today: day(rng),
        late_receipt_days: u32::try_from(rng.below(60)).unwrap(),
        balance_tolerance_percent: u32::try_from(rng.below(20)).unwrap(),
        undervaluation_threshold: rng.uniform(0.0, 6.0),
        min_samples: usize::try_from(rng.below(12)).unwrap(),
    };
    let found = review.anomalies(&params);
    assert!(found.windows(2).all(|w| w[0].kind <= w[1].kind), "findings are ordered by kind");
    for a in &found {
        assert!(!a.event_ids.is_empty(), "a finding without evidence: {a}");
        let _ = a.to_string();
    }
    let _ = anomalies_to_csv(&found);
    let _ = serde_json::to_string(&found).unwrap();
    for year in [2025, 2026, 2027] {
        let stats = review.stats(year, None);
        for (i, w) in stats.world.iter().enumerate() {
            let sum: u64 = stats.participants.iter().map(|p| p.quarters[i].exports.total.carats.0).sum();
            assert_eq!(sum, w.exports.carats.0);
        }
        let _ = (stats.to_csv(), stats.to_string(), serde_json::to_string(&stats).unwrap());
        let p = pick(rng);
        let _ = chart_svg(&stats, p);
        let _ = chart_svg(&review.stats(year, Some(p)), p);
    }
    let p = pick(rng);
    let (from, to) = (day(rng), day(rng));
    let overdue = if rng.below(4) == 0 { u32::MAX } else { u32::try_from(rng.below(90)).unwrap() };
    let report = review.participant_report(p, from, to, overdue, day(rng));
    let _ = (report.to_csv(), report.to_string(), serde_json::to_string(&report).unwrap());
}

#[test]
fn shuffled_truncated_and_repeated_streams_never_panic() {
    let w = world();
    let participants: Vec<ParticipantId> = w.genesis.participants.iter().map(|p| p.id).collect();
    let seed = 0x0dd_1e55;
    println!("odd streams: seed {seed:#x}");
    let mut rng = Rng::new(seed);
    for round in 0..10 {
        let mut entries = w.entries.clone();
        match round % 4 {
            0 => rng.shuffle(&mut entries),
            1 => entries.truncate(usize::try_from(rng.below(entries.len() as u64)).unwrap()),
            2 => entries.retain(|_| rng.below(10) != 0),
            _ => {
                // Repeat some events later in the stream, and shuffle a window.
                let extra: Vec<Entry> = entries.iter().filter(|_| rng.below(20) == 0).cloned().collect();
                entries.extend(extra);
                let start = usize::try_from(rng.below(entries.len() as u64 / 2)).unwrap();
                let end = start + entries.len() / 4;
                rng.shuffle(&mut entries[start..end]);
            }
        }
        let review = review_of(&w.genesis, &entries);
        exercise(&review, &mut rng, &participants);
    }
}

#[test]
fn strange_events_are_ignored_or_kept_without_panic() {
    use HsCode::*;
    let g = genesis(&[("BW", "Botswana"), ("EU", "European Union")]);
    let mut l = Ledger::default();
    // Custody events of a certificate nobody issued.
    l.push(at("2026-01-02", 9), sealed("BW-404", at("2026-01-02", 9)));
    l.push(at("2026-01-02", 10), received("BW-404", at("2026-01-02", 10), 1, 1, true));
    l.push(at("2026-01-02", 11), voided("BW-404"));
    let ghost = certificate("BW-404", "BW", "EU", date("2026-01-01"), 30, 1, vec![line(Unsorted, 1, 1)]);
    l.push(at("2026-01-02", 12), amended(&ghost));
    // Issued twice; sealed, received and voided twice; a receipt before the seal.
    let c = certificate("BW-1", "BW", "EU", date("2026-01-03"), 30, 1, vec![line(Unsorted, 100, 100)]);
    l.push(at("2026-01-03", 9), issued(&c));
    l.push(at("2026-01-03", 10), issued(&c));
    l.push(at("2026-01-03", 11), received_ok(&c, at("2026-01-03", 11)));
    l.push(at("2026-01-03", 12), sealed("BW-1", at("2026-01-03", 12)));
    l.push(at("2026-01-03", 13), sealed("BW-1", at("2026-01-03", 13)));
    l.push(at("2026-01-03", 14), received_ok(&c, at("2026-01-03", 14)));
    l.push(at("2026-01-03", 15), voided("BW-1"));
    l.push(at("2026-01-03", 16), voided("BW-1"));
    // Content the rules would refuse: own importer, expiry before issue, no lines, overflowing
    // quantities, a participant nobody admitted.
    let mut odd = certificate("BW-2", "BW", "BW", date("2026-02-01"), -5, 0, vec![]);
    odd.carats = Carats(u64::MAX);
    odd.value = UsdCents(0);
    l.push(at("2026-02-01", 9), issued(&odd));
    let huge = certificate(
        "BW-3",
        "BW",
        "XX",
        date("2026-02-02"),
        30,
        u32::MAX,
        vec![line(Unsorted, u64::MAX, u64::MAX), line(Unsorted, u64::MAX, u64::MAX), line(Industrial, 0, 5)],
    );
    l.push(at("2026-02-02", 9), issued(&huge));
    l.push(at("2026-02-03", 9), received("BW-3", at("2020-01-01", 0), 0, u64::MAX, false));
    // Production revisions out of order; governance about strangers; key rotation.
    l.push(at("2026-07-02", 9), production("BW", 2026, 1, 3, vec![line(Unsorted, 100, 100)]));
    l.push(at("2026-07-03", 9), production("BW", 2026, 1, 1, vec![line(Unsorted, 200, 200)]));
    l.push(at("2026-07-04", 9), governance("KP-X", GovernanceAction::Suspend { participant: pid("XX") }));
    l.push(
        at("2026-07-05", 9),
        governance("KP-K", GovernanceAction::AuthorityKeyRevoked { participant: pid("BW"), key: PublicKey([9; 32]) }),
    );
    let review = review_of(&g, &l.committed());
    let (count, kept) = review.ignored();
    let reasons: Vec<&str> = kept.iter().map(|i| i.reason).collect();
    assert_eq!(
        reasons,
        [
            "seal of an unknown certificate",
            "receipt of an unknown certificate",
            "void of an unknown certificate",
            "amendment of an unknown certificate",
            "certificate number already issued",
            "certificate already sealed",
            "certificate already received",
            "certificate already voided",
            "production report older than the one recorded",
        ]
    );
    assert_eq!(count, 9);
    assert_eq!(review.certificate_count(), 3);
    // The stranger is known by its code, with its suspension.
    let r = review.participant_report(pid("XX"), date("2026-01-01"), date("2026-12-31"), 30, date("2026-12-31"));
    assert_eq!(r.certificates.len(), 1);
    assert_eq!(r.governance.len(), 1);
    assert!(r.name.is_none());
    let mut rng = Rng::new(7);
    let participants = [pid("BW"), pid("EU"), pid("XX"), pid("ZZ")];
    for _ in 0..20 {
        exercise(&review, &mut rng, &participants);
    }
    // Extreme days.
    for today in [Date(i32::MIN), Date(-1), Date(0), Date(i32::MAX)] {
        let _ = review.anomalies(&AnomalyParams::new(today));
        let _ = review.participant_report(pid("BW"), Date(i32::MIN), Date(i32::MAX), u32::MAX, today);
    }
    let _ = review.stats(i32::MIN, None);
    let _ = review.stats(i32::MAX, None);
}
