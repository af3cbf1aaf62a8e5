//! The review-visit report on a small hand-built ledger, with exact expected values.

use crate::common::*;
use kp_domain::{Carats, GovernanceAction, HsCode, UsdCents};
use kp_review::{Amount, CertificateState, Incident, TradeRole};

struct Small {
    review: kp_review::Review,
    /// Event ids of EU-2026-0001: issue, amendment, seal, receipt.
    eu1_events: Vec<kp_domain::EventId>,
    suspend: kp_domain::EventId,
}

fn small_ledger() -> Small {
    use HsCode::*;
    let g = genesis(&[("BW", "Botswana"), ("EU", "European Union"), ("AE", "United Arab Emirates"), ("IN", "India")]);
    let mut l = Ledger::default();
    // Before the period: received (not overdue), and one never received (overdue).
    let c = certificate("BW-2025-0099", "BW", "EU", date("2025-12-20"), 30, 1, vec![line(Unsorted, 10_000, 500_000)]);
    l.push(at("2025-12-20", 9), issued(&c));
    l.push(at("2025-12-21", 9), sealed("BW-2025-0099", at("2025-12-21", 9)));
    l.push(at("2025-12-28", 9), received_ok(&c, at("2025-12-28", 9)));
    let c = certificate("BW-2025-0100", "BW", "AE", date("2025-12-28"), 30, 1, vec![line(Unsorted, 10_000, 500_000)]);
    l.push(at("2025-12-28", 10), issued(&c));
    l.push(at("2025-12-29", 9), sealed("BW-2025-0100", at("2025-12-29", 9)));
    // 1: received as declared.
    let c = certificate(
        "BW-2026-0001",
        "BW",
        "EU",
        date("2026-02-01"),
        30,
        3,
        vec![line(Unsorted, 100_000, 10_000_000), line(NonIndustrial, 20_000, 6_000_000)],
    );
    l.push(at("2026-02-01", 9), issued(&c));
    l.push(at("2026-02-02", 9), sealed("BW-2026-0001", at("2026-02-02", 9)));
    l.push(at("2026-02-10", 9), received_ok(&c, at("2026-02-10", 9)));
    // 2: received after expiry, 10 ct short, seals broken.
    let c = certificate("BW-2026-0002", "BW", "AE", date("2026-02-05"), 30, 2, vec![line(Unsorted, 50_000, 4_000_000)]);
    l.push(at("2026-02-05", 9), issued(&c));
    l.push(at("2026-02-06", 9), sealed("BW-2026-0002", at("2026-02-06", 9)));
    l.push(at("2026-03-10", 9), received("BW-2026-0002", at("2026-03-10", 9), 2, 49_000, false));
    // 3: sealed, never received, expired.
    let c = certificate("BW-2026-0003", "BW", "EU", date("2026-03-01"), 30, 1, vec![line(Industrial, 30_000, 300_000)]);
    l.push(at("2026-03-01", 9), issued(&c));
    l.push(at("2026-03-02", 9), sealed("BW-2026-0003", at("2026-03-02", 9)));
    // 4: issued only, still valid.
    let c = certificate(
        "BW-2026-0004",
        "BW",
        "IN",
        date("2026-04-20"),
        60,
        1,
        vec![line(NonIndustrial, 10_000, 2_500_000)],
    );
    l.push(at("2026-04-20", 9), issued(&c));
    // 5: voided.
    let c = certificate("BW-2026-0005", "BW", "EU", date("2026-03-10"), 30, 1, vec![line(Unsorted, 5_000, 400_000)]);
    l.push(at("2026-03-10", 9), issued(&c));
    l.push(at("2026-03-11", 9), voided("BW-2026-0005"));
    // An import, amended (parcels and carats), received with the original parcel count.
    let mut c = certificate(
        "EU-2026-0001",
        "EU",
        "BW",
        date("2026-03-15"),
        30,
        2,
        vec![line(Industrial, 2_000, 20_000), line(NonIndustrial, 8_000, 1_600_000)],
    );
    let mut eu1_events = vec![l.push(at("2026-03-15", 9), issued(&c))];
    c = certificate(
        "EU-2026-0001",
        "EU",
        "BW",
        date("2026-03-15"),
        30,
        3,
        vec![line(Industrial, 2_000, 20_000), line(NonIndustrial, 9_000, 1_800_000)],
    );
    eu1_events.push(l.push(at("2026-03-15", 11), amended(&c)));
    eu1_events.push(l.push(at("2026-03-16", 9), sealed("EU-2026-0001", at("2026-03-16", 9))));
    eu1_events.push(l.push(at("2026-03-20", 9), received("EU-2026-0001", at("2026-03-20", 9), 2, 11_000, true)));
    // An import sealed, never received, expired.
    let c =
        certificate("AE-2026-0001", "AE", "BW", date("2026-04-02"), 30, 1, vec![line(NonIndustrial, 4_000, 800_000)]);
    l.push(at("2026-04-02", 9), issued(&c));
    l.push(at("2026-04-03", 9), sealed("AE-2026-0001", at("2026-04-03", 9)));
    // Not BW's.
    let c =
        certificate("EU-2026-0002", "EU", "AE", date("2026-04-01"), 30, 1, vec![line(NonIndustrial, 4_000, 800_000)]);
    l.push(at("2026-04-01", 9), issued(&c));
    // BW suspended and readmitted.
    let suspend = l.push(at("2026-05-01", 9), governance("KP-1", GovernanceAction::Suspend { participant: pid("BW") }));
    l.push(at("2026-05-10", 9), governance("KP-2", GovernanceAction::Readmit { participant: pid("BW") }));
    Small { review: review_of(&g, &l.committed()), eu1_events, suspend }
}

fn amount(carats: u64, cents: u64, certificates: u64) -> Amount {
    Amount { carats: Carats(carats), value: UsdCents(cents), certificates }
}

#[test]
fn report_lists_states_incidents_totals_and_overdue() {
    let s = small_ledger();
    let r = s.review.participant_report(pid("BW"), date("2026-01-01"), date("2026-06-30"), 30, date("2026-05-25"));
    assert_eq!(r.name.as_deref(), Some("Botswana"));
    assert_eq!(r.genesis_status.as_deref(), Some("active"));

    let rows: Vec<(&str, TradeRole, &str, CertificateState)> =
        r.certificates.iter().map(|c| (c.number.as_str(), c.role, c.counterpart.as_str(), c.state)).collect();
    use CertificateState::*;
    use TradeRole::*;
    assert_eq!(
        rows,
        vec![
            ("BW-2026-0001", Exporter, "EU", Received),
            ("BW-2026-0002", Exporter, "AE", Received),
            ("BW-2026-0003", Exporter, "EU", ExpiredWithoutReceipt),
            ("BW-2026-0005", Exporter, "EU", Voided),
            ("EU-2026-0001", Importer, "EU", Received),
            ("AE-2026-0001", Importer, "AE", ExpiredWithoutReceipt),
            ("BW-2026-0004", Exporter, "IN", Issued),
        ]
    );
    let by_number = |n: &str| r.certificates.iter().find(|c| c.number.as_str() == n).unwrap();
    assert!(by_number("BW-2026-0001").incidents.is_empty());
    assert_eq!(
        by_number("BW-2026-0002").incidents,
        vec![
            Incident::CaratsMismatch { declared: Carats(50_000), found: Carats(49_000) },
            Incident::SealsBroken,
            Incident::ReceivedAfterExpiry { expires_on: date("2026-03-07"), received_on: date("2026-03-10") },
        ]
    );
    let eu1 = by_number("EU-2026-0001");
    assert_eq!(eu1.incidents, vec![Incident::ParcelsMismatch { declared: 3, found: 2 }]);
    assert_eq!((eu1.revision, eu1.parcels, eu1.carats, eu1.value), (1, 3, Carats(11_000), UsdCents(1_820_000)));
    assert_eq!(eu1.events.iter().map(|e| e.id).collect::<Vec<_>>(), s.eu1_events);
    assert_eq!(
        eu1.events.iter().map(|e| e.kind.field_name()).collect::<Vec<_>>(),
        ["certificate_issued", "certificate_amended", "shipment_sealed", "receipt_confirmed"]
    );
    assert_eq!(by_number("BW-2026-0001").lines.len(), 2);

    // Totals leave the voided certificate out.
    assert_eq!(r.exports.total, amount(210_000, 22_800_000, 4));
    assert_eq!(r.exports.hs(HsCode::Unsorted), amount(150_000, 14_000_000, 2));
    assert_eq!(r.exports.hs(HsCode::Industrial), amount(30_000, 300_000, 1));
    assert_eq!(r.exports.hs(HsCode::NonIndustrial), amount(30_000, 8_500_000, 2));
    assert_eq!(r.exports.counterpart(pid("AE")), amount(50_000, 4_000_000, 1));
    assert_eq!(r.exports.counterpart(pid("EU")), amount(150_000, 16_300_000, 2));
    assert_eq!(r.exports.counterpart(pid("IN")), amount(10_000, 2_500_000, 1));
    assert_eq!(r.imports.total, amount(15_000, 2_620_000, 2));
    assert_eq!(r.imports.hs(HsCode::Industrial), amount(2_000, 20_000, 1));
    assert_eq!(r.imports.hs(HsCode::NonIndustrial), amount(13_000, 2_600_000, 2));
    assert_eq!(r.imports.hs(HsCode::Unsorted), Amount::default());
    assert_eq!(r.imports.counterpart(pid("AE")), amount(4_000, 800_000, 1));
    assert_eq!(r.imports.counterpart(pid("EU")), amount(11_000, 1_820_000, 1));

    // Overdue: whatever the issue date, not received, not voided, issued more than 30 days ago.
    let overdue: Vec<(&str, i64, CertificateState)> =
        r.overdue.iter().map(|o| (o.number.as_str(), o.days_outstanding, o.state)).collect();
    assert_eq!(
        overdue,
        vec![
            ("BW-2025-0100", 148, ExpiredWithoutReceipt),
            ("BW-2026-0003", 85, ExpiredWithoutReceipt),
            ("AE-2026-0001", 53, ExpiredWithoutReceipt),
            ("BW-2026-0004", 35, Issued),
        ]
    );

    // Governance history.
    let gov: Vec<(&str, &str)> = r.governance.iter().map(|g| (g.action.as_str(), g.status.as_str())).collect();
    assert_eq!(gov, vec![("suspend", "suspended"), ("readmit", "active")]);
    assert_eq!(r.governance[0].event.id, s.suspend);

    // Other forms.
    let csv = r.to_csv();
    assert_eq!(csv.lines().count(), 1 + 7);
    let row = csv.lines().find(|l| l.starts_with("BW-2026-0002,")).unwrap();
    assert!(
        row.starts_with(
            "BW-2026-0002,exporter,AE,2026-02-05,2026-03-07,7102.10:500.00:40000.00,500.00,40000.00,2,0,received,\
             \"carats: 490.00 ct found, 500.00 ct declared;seals broken;received 2026-03-10, after expiry on \
             2026-03-07\","
        ),
        "{row}"
    );
    assert_eq!(row.rsplit(',').next().unwrap().split(' ').count(), 3, "three event ids: {row}");
    let text = r.to_string();
    assert!(text.contains("BW-2026-0003 exporter EU expired without receipt"), "{text}");
    assert!(text.contains("seals broken"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["certificates"][2]["state"], "expired_without_receipt");
    assert_eq!(json["certificates"][1]["incidents"][1]["incident"], "seals_broken");
}

#[test]
fn report_with_a_short_allowance_and_other_days() {
    let s = small_ledger();
    // On 2026-03-05 nothing of 2026 had expired; BW-2026-0003 was sealed, still valid.
    let r = s.review.participant_report(pid("BW"), date("2026-01-01"), date("2026-12-31"), 3, date("2026-03-05"));
    let states: Vec<(&str, CertificateState)> = r.certificates.iter().map(|c| (c.number.as_str(), c.state)).collect();
    assert!(states.contains(&("BW-2026-0003", CertificateState::Sealed)));
    // Allowance 3 days: BW-2025-0100 and BW-2026-0003 (issued 03-01, 4 days before) are overdue.
    let overdue: Vec<&str> = r.overdue.iter().map(|o| o.number.as_str()).collect();
    assert_eq!(overdue, ["BW-2025-0100", "BW-2026-0003"]);
    // Certificates issued on the report's bounds are included.
    let r = s.review.participant_report(pid("BW"), date("2026-02-01"), date("2026-02-05"), 30, date("2026-05-25"));
    let numbers: Vec<&str> = r.certificates.iter().map(|c| c.number.as_str()).collect();
    assert_eq!(numbers, ["BW-2026-0001", "BW-2026-0002"]);
    // An unknown participant, or an empty period, gives an empty report.
    let r = s.review.participant_report(pid("ZZ"), date("2026-01-01"), date("2026-12-31"), 30, date("2026-05-25"));
    assert!(r.name.is_none() && r.certificates.is_empty() && r.overdue.is_empty());
    let r = s.review.participant_report(pid("BW"), date("2026-12-31"), date("2026-01-01"), 30, date("2026-05-25"));
    assert!(r.certificates.is_empty());
    assert_eq!(r.exports.total, Amount::default());
}
