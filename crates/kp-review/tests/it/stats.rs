//! Statistics: totals by hand on a small ledger, quarter boundaries, world totals.

use crate::common::*;
use crate::world;
use kp_domain::{Carats, HsCode, UsdCents};
use kp_review::{Amount, Stats};

fn small() -> kp_review::Review {
    use HsCode::*;
    let g = genesis(&[("BW", "Botswana"), ("EU", "European Union"), ("AE", "United Arab Emirates")]);
    let mut l = Ledger::default();
    let issue = |l: &mut Ledger, num: &str, exp: &str, imp: &str, day: &str, lines| {
        let c = certificate(num, exp, imp, date(day), 30, 1, lines);
        l.push(at(day, 9), issued(&c));
        c
    };
    // The last day of Q1 and the first of Q2.
    issue(
        &mut l,
        "BW-1",
        "BW",
        "EU",
        "2026-03-31",
        vec![line(Unsorted, 10_000, 1_000_000), line(NonIndustrial, 1_000, 300_000)],
    );
    issue(&mut l, "BW-2", "BW", "EU", "2026-04-01", vec![line(Unsorted, 20_000, 2_000_000)]);
    // The last day of the year; the years before and after are left out.
    issue(&mut l, "BW-3", "BW", "AE", "2026-12-31", vec![line(Industrial, 5_000, 50_000)]);
    issue(&mut l, "BW-4", "BW", "AE", "2025-12-31", vec![line(Industrial, 5_000, 50_000)]);
    issue(&mut l, "BW-6", "BW", "EU", "2027-01-01", vec![line(Industrial, 5_000, 50_000)]);
    // Voided: left out.
    issue(&mut l, "BW-5", "BW", "EU", "2026-05-05", vec![line(Unsorted, 99_000, 9_900_000)]);
    l.push(at("2026-05-06", 9), voided("BW-5"));
    issue(&mut l, "EU-1", "EU", "AE", "2026-06-30", vec![line(NonIndustrial, 3_000, 900_000)]);
    // Amended: the latest content counts.
    issue(&mut l, "AE-1", "AE", "BW", "2026-07-01", vec![line(NonIndustrial, 500, 100_000)]);
    let c = certificate("AE-1", "AE", "BW", date("2026-07-01"), 30, 1, vec![line(NonIndustrial, 600, 120_000)]);
    l.push(at("2026-07-01", 10), amended(&c));
    // Production: revision 1 replaces revision 0; another year is left out.
    l.push(at("2026-07-02", 9), production("BW", 2026, 1, 0, vec![line(Unsorted, 100_000, 9_000_000)]));
    l.push(
        at("2026-07-03", 9),
        production("BW", 2026, 1, 1, vec![line(Unsorted, 120_000, 10_000_000), line(Industrial, 30_000, 300_000)]),
    );
    l.push(at("2027-01-02", 9), production("BW", 2026, 2, 0, vec![line(Unsorted, 80_000, 7_000_000)]));
    l.push(at("2027-01-03", 9), production("BW", 2025, 2, 0, vec![line(Unsorted, 1, 1)]));
    review_of(&g, &l.committed())
}

fn amount(carats: u64, cents: u64, certificates: u64) -> Amount {
    Amount { carats: Carats(carats), value: UsdCents(cents), certificates }
}

/// World totals are the sums over the participants, exports and imports alike.
fn assert_world_is_the_sum(s: &Stats) {
    for (i, w) in s.world.iter().enumerate() {
        let mut exports = Amount::default();
        let mut imports = Amount::default();
        for p in &s.participants {
            let q = &p.quarters[i];
            assert_eq!(q.quarter, w.quarter);
            for (sum, add) in [(&mut exports, &q.exports.total), (&mut imports, &q.imports.total)] {
                sum.carats = Carats(sum.carats.0 + add.carats.0);
                sum.value = UsdCents(sum.value.0 + add.value.0);
                sum.certificates += add.certificates;
            }
            // Each flow's breakdowns add up to its total.
            for flow in [&q.exports, &q.imports] {
                let by_cp: u64 = flow.by_counterpart.iter().map(|c| c.amount.carats.0).sum();
                let by_hs: u64 = flow.by_hs_code.iter().map(|h| h.amount.carats.0).sum();
                let cells: u64 = flow.cells.iter().map(|c| c.amount.carats.0).sum();
                assert_eq!((by_cp, by_hs, cells), (flow.total.carats.0, flow.total.carats.0, flow.total.carats.0));
            }
        }
        assert_eq!(exports, w.exports, "{}", w.quarter);
        assert_eq!(imports, w.imports, "{}", w.quarter);
    }
    for (i, w) in s.world_production.iter().enumerate() {
        let sum: u64 = s.participants.iter().map(|p| p.production[i].carats.0).sum();
        assert_eq!(sum, w.carats.0);
    }
}

#[test]
fn stats_by_hand() {
    let review = small();
    let s = review.stats(2026, None);
    assert_eq!(s.participants.len(), 3);
    let bw = s.participant(pid("BW")).unwrap();
    assert_eq!(bw.name.as_deref(), Some("Botswana"));
    let q = |n: u8| bw.quarter(n).unwrap();
    assert_eq!(q(1).exports.total, amount(11_000, 1_300_000, 1));
    assert_eq!(q(1).exports.hs(HsCode::Unsorted), amount(10_000, 1_000_000, 1));
    assert_eq!(q(1).exports.hs(HsCode::NonIndustrial), amount(1_000, 300_000, 1));
    assert_eq!(q(1).exports.counterpart(pid("EU")), amount(11_000, 1_300_000, 1));
    assert_eq!(q(2).exports.total, amount(20_000, 2_000_000, 1));
    assert_eq!(q(3).exports.total, Amount::default());
    assert_eq!(q(3).imports.total, amount(600, 120_000, 1));
    assert_eq!(q(3).imports.counterpart(pid("AE")), amount(600, 120_000, 1));
    assert_eq!(q(4).exports.total, amount(5_000, 50_000, 1));
    assert_eq!(q(4).exports.counterpart(pid("AE")), amount(5_000, 50_000, 1));
    let h1 = bw.half(1).unwrap();
    assert_eq!((h1.reported, h1.revision, h1.carats, h1.value), (true, Some(1), Carats(150_000), UsdCents(10_300_000)));
    assert_eq!(h1.by_hs_code.len(), 2);
    let h2 = bw.half(2).unwrap();
    assert_eq!((h2.revision, h2.carats, h2.value), (Some(0), Carats(80_000), UsdCents(7_000_000)));
    let ae = s.participant(pid("AE")).unwrap();
    assert!(!ae.half(1).unwrap().reported);
    assert_eq!(ae.quarter(2).unwrap().imports.total, amount(3_000, 900_000, 1));

    let world: Vec<Amount> = s.world.iter().map(|w| w.exports).collect();
    assert_eq!(
        world,
        vec![
            amount(11_000, 1_300_000, 1),
            amount(23_000, 2_900_000, 2),
            amount(600, 120_000, 1),
            amount(5_000, 50_000, 1)
        ]
    );
    assert_eq!(s.world_production[0].carats, Carats(150_000));
    assert_eq!(s.world_production[1].carats, Carats(80_000));
    assert_world_is_the_sum(&s);

    // One participant: the same figures, and the same world.
    let one = review.stats(2026, Some(pid("BW")));
    assert_eq!(one.participants.len(), 1);
    assert_eq!(one.participants[0], *bw);
    assert_eq!(one.world, s.world);
    assert_eq!(
        one.to_csv(),
        "participant,period,flow,hs_code,counterpart,carats,value_usd,certificates\n\
         BW,2026-Q1,exports,7102.10,EU,100.00,10000.00,1\n\
         BW,2026-Q1,exports,7102.31,EU,10.00,3000.00,1\n\
         BW,2026-Q2,exports,7102.10,EU,200.00,20000.00,1\n\
         BW,2026-Q3,imports,7102.31,AE,6.00,1200.00,1\n\
         BW,2026-Q4,exports,7102.21,AE,50.00,500.00,1\n\
         BW,2026-H1,production,7102.10,,1200.00,100000.00,\n\
         BW,2026-H1,production,7102.21,,300.00,3000.00,\n\
         BW,2026-H2,production,7102.10,,800.00,70000.00,\n"
    );
    let text = one.to_string();
    assert!(text.contains("2026-Q1 exports: 110.00 ct, USD 13000.00, 1 certificate(s)"), "{text}");
    let json = serde_json::to_value(&one).unwrap();
    assert_eq!(json["participants"][0]["quarters"][0]["quarter"], "2026-Q1");
    assert_eq!(json["participants"][0]["production"][0]["period"], "2026-H1");

    // Other years hold what falls in them.
    let y2025 = review.stats(2025, Some(pid("BW")));
    assert_eq!(y2025.participants[0].quarter(4).unwrap().exports.total, amount(5_000, 50_000, 1));
    assert_eq!(y2025.participants[0].half(2).unwrap().carats, Carats(1));
    let y2027 = review.stats(2027, None);
    assert_eq!(y2027.world[0].exports, amount(5_000, 50_000, 1));
}

#[test]
fn synthetic_world_totals_are_the_sum_of_participants() {
    let w = world();
    let review = review_of(&w.genesis, &w.entries);
    let s = review.stats(2026, None);
    assert_eq!(s.participants.len(), 59);
    assert_world_is_the_sum(&s);
    let total: u64 = s.world.iter().map(|q| q.exports.certificates).sum();
    // Every 2026 certificate but the voided ones.
    assert!(total > 2_000 && total < w.certificates as u64, "{total}");
    // Production of the large producers is reported, and Botswana's is about 1/16 of 12 Mct.
    let bw = s.participant(pid("BW")).unwrap();
    assert_eq!(bw.half(1).unwrap().carats, Carats(24_500_000 * 100 / 2 / 16));
    assert!(s.to_csv().lines().count() > 1_000);
}
