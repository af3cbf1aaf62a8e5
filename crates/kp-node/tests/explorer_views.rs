//! The explorer's pages rendered on kp-review's synthetic year of trade (59 participants, a few
//! thousand certificates, planted anomalies): the right figures, every planted anomaly listed
//! with its evidence, links that resolve, and what each caller identity may not see withheld in
//! the HTML, the JSON twin and the CSV alike.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_arithmetic,
    clippy::cast_possible_truncation
)]

#[path = "../../kp-review/tests/it/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../../kp-review/tests/it/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

use common::{date, pid, review_of};
use kp_domain::{CertificateNumber, EventId};
use kp_node::access::{Caller, Grant, Role};
use kp_node::explorer::views::{self, PAGE_SIZE};
use kp_review::{AnomalyKind, AnomalyParams, Review};
use std::collections::BTreeSet;
use std::sync::OnceLock;

struct Fixture {
    world: synthetic::World,
    review: Review,
    anomalies: Vec<kp_review::Anomaly>,
    ids: BTreeSet<EventId>,
    max_height: u64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        println!("synthetic world: seed {:#x}", synthetic::SEED);
        let world = synthetic::generate(synthetic::SEED);
        let mut review = review_of(&world.genesis, &world.entries);
        review.note_block(world.today.start());
        let anomalies = review.anomalies(&AnomalyParams::new(world.today));
        let ids = world.entries.iter().map(|e| e.id).collect();
        let max_height = world.entries.last().map_or(0, |e| e.height);
        Fixture { world, review, anomalies, ids, max_height }
    })
}

fn caller(role: Role) -> Caller {
    Caller { role, name: "test".into(), refused: None }
}

fn html(page: &views::Page) -> String {
    let tables: Vec<&str> = page.tables.iter().map(|(n, _)| *n).collect();
    views::layout(&page.title, "test", "/", page.csv.is_some(), &tables, &page.body).into_string()
}

/// Every `href="..."` of a page.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"").skip(1).filter_map(|s| s.split('"').next()).map(|s| s.replace("&amp;", "&")).collect()
}

/// Checks that a link names a route the explorer serves and something the ledger holds.
fn resolves(f: &Fixture, link: &str) -> Result<(), String> {
    let path = link.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [""] | ["blocks"] | ["statistics"] | ["anomalies"] | ["static", "explorer.css"] => Ok(()),
        ["participant", code] => {
            let p = kp_domain::ParticipantId::new(code).map_err(|e| format!("{link}: {e}"))?;
            if f.review.knows_participant(p) { Ok(()) } else { Err(format!("{link}: unknown participant")) }
        }
        ["certificate", n] | ["certificate", n, "verify" | "proof"] => {
            let n = CertificateNumber::new(&n.replace("%2F", "/")).map_err(|e| format!("{link}: {e}"))?;
            f.review.exporter_of(&n).map(|_| ()).ok_or_else(|| format!("{link}: unknown certificate"))
        }
        ["event", id] => {
            let bytes: [u8; 32] =
                hex::decode(id).map_err(|e| format!("{link}: {e}"))?.try_into().map_err(|_| link.to_owned())?;
            if f.ids.contains(&EventId(bytes)) { Ok(()) } else { Err(format!("{link}: unknown event")) }
        }
        ["block", h] => {
            let h: u64 = h.parse().map_err(|_| format!("{link}: height"))?;
            if (1..=f.max_height).contains(&h) { Ok(()) } else { Err(format!("{link}: no such block")) }
        }
        _ => Err(format!("{link}: no such route")),
    }
}

fn assert_links_resolve(f: &Fixture, html: &str) -> usize {
    let all = links(html);
    let bad: Vec<String> = all
        .iter()
        .filter_map(|l| match l.strip_prefix('#') {
            // An anchor: an element of the page itself.
            Some(id) => (!html.contains(&format!("id=\"{id}\""))).then(|| format!("{l}: no such element")),
            None => resolves(f, l).err(),
        })
        .collect();
    assert!(bad.is_empty(), "{} of {} links do not resolve: {:?}", bad.len(), all.len(), &bad[..bad.len().min(10)]);
    all.len()
}

fn participant(
    f: &Fixture,
    who: &str,
    c: &Caller,
    page: usize,
) -> (views::ParticipantView, kp_review::ParticipantReport) {
    let (from, to) = (date("2026-01-01"), date("2026-12-31"));
    let report = f.review.participant_report(pid(who), from, to, 60, f.world.today);
    let stats = vec![f.review.stats(2026, None)];
    (views::participant_view(&f.review, &report, &stats, c, page).unwrap(), report)
}

#[test]
fn a_participant_page_has_its_report_s_figures_for_its_own_authority() {
    let f = fixture();
    let bw = caller(Role::Authority(pid("BW")));
    let (v, report) = participant(f, "BW", &bw, 1);
    assert_eq!(v.paging.total, report.certificates.len());
    assert!(report.certificates.len() > PAGE_SIZE, "BW has {} certificates", report.certificates.len());
    assert_eq!(v.certificates.len(), PAGE_SIZE);
    assert_eq!(v.exports.as_ref().unwrap().total, report.exports.total);
    assert!(v.certificates.iter().all(|c| c.carats.is_some()), "BW sees its own certificates");
    let page = views::participant_page(&v);
    let h = html(&page);
    let total = report.exports.total.carats.0;
    assert!(h.contains(&format!("{}.{:02}", total / 100, total % 100)), "export total shown");
    assert!(h.contains(&format!("page 1 of {}", v.paging.pages)));
    let n = assert_links_resolve(f, &h);
    assert!(n > PAGE_SIZE, "{n} links");
    // Every table has its CSV: the totals' first row is the whole flow.
    let names: Vec<&str> = page.tables.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["exports", "imports", "overdue", "production"]);
    let exports = &page.tables[0].1;
    let all = exports.lines().nth(1).unwrap();
    assert_eq!(
        all,
        format!(
            "all,all,{},{}.{:02},{}.{:02}",
            report.exports.total.certificates,
            total / 100,
            total % 100,
            report.exports.total.value.0 / 100,
            report.exports.total.value.0 % 100
        )
    );
    assert!(h.contains("table=production"), "the page links each table's CSV");
    // The last page holds the rest; one past it is not found.
    let (last, _) = participant(f, "BW", &bw, v.paging.pages);
    assert_eq!(last.certificates.len(), report.certificates.len() - (v.paging.pages - 1) * PAGE_SIZE);
    let stats = vec![f.review.stats(2026, None)];
    let e = views::participant_view(&f.review, &report, &stats, &bw, v.paging.pages + 1).unwrap_err();
    assert_eq!(e.status, 404, "{e:?}");
    // Production reports: BW is a producer and reported both halves.
    assert_eq!(v.production.len(), 2);
    assert!(v.production.iter().all(|p| p.reported && p.carats.is_some()), "{:?}", v.production);
}

#[test]
fn another_participant_s_authority_and_an_observer_see_no_figures_of_bw_s_trade() {
    let f = fixture();
    for c in [caller(Role::Authority(pid("CD"))), caller(Role::Observer)] {
        let (v, report) = participant(f, "BW", &c, 1);
        assert!(v.exports.is_none() && v.imports.is_none(), "{:?}: totals withheld", c.role);
        for row in &v.certificates {
            let involved = matches!(&c.role, Role::Authority(p) if *p == row.counterpart);
            assert_eq!(row.carats.is_some(), involved, "{:?} {}", c.role, row.number);
        }
        assert!(v.production.iter().all(|p| p.carats.is_none()), "production withheld");
        let page = views::participant_page(&v);
        let h = html(&page);
        assert!(h.contains("withheld"));
        let total = report.exports.total.carats.0;
        assert!(!h.contains(&format!("{}.{:02}", total / 100, total % 100)), "no export total in the HTML");
        let json = page.json.to_string();
        assert!(!json.contains(&report.exports.total.carats.0.to_string()), "no export total in the JSON");
        // The CSV has the rows without their figures.
        let csv = page.csv.clone().unwrap();
        assert_eq!(csv.lines().count(), v.certificates.len() + 1);
        let names: Vec<&str> = page.tables.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["overdue", "production"], "no totals' CSV where the totals are withheld");
    }
}

#[test]
fn a_reviewer_sees_what_its_grant_covers() {
    let f = fixture();
    let grant = Grant { participants: Some([pid("CG")].into()), from: None, to: None };
    let r = caller(Role::Reviewer(grant));
    let (cg, _) = participant(f, "CG", &r, 1);
    assert!(cg.exports.is_some());
    assert!(cg.certificates.iter().all(|c| c.carats.is_some()));
    let (bw, _) = participant(f, "BW", &r, 1);
    assert!(bw.exports.is_none());
}

#[test]
fn the_statistics_page_has_the_world_totals_and_the_chart() {
    let f = fixture();
    let stats = f.review.stats(2026, None);
    let v = views::stats_view(&stats, Some(pid("CG")));
    assert_eq!(v.participants.len(), stats.participants.len());
    let ids: Vec<_> = stats.participants.iter().map(|p| p.participant).collect();
    let page = views::stats_page(&v, &ids);
    let h = html(&page);
    for w in &stats.world {
        let c = w.exports.carats.0;
        assert!(h.contains(&format!("{}.{:02}", c / 100, c % 100)), "world {} shown", w.quarter);
    }
    assert!(h.contains("<svg"), "the chart is inline SVG");
    assert!(!page.json.to_string().contains("<svg"), "the JSON twin carries data, not the picture");
    let csv = page.csv.unwrap();
    assert_eq!(csv.lines().count(), stats.participants.len() + 1);
    let bw = stats.participant(pid("BW")).unwrap();
    let q1 = bw.quarter(1).unwrap().exports.total.carats.0;
    let line = csv.lines().find(|l| l.starts_with("BW,")).unwrap();
    assert!(line.contains(&format!("{}.{:02}", q1 / 100, q1 % 100)), "{line}");
    assert_links_resolve(f, &h);
}

#[test]
fn every_planted_anomaly_is_listed_with_its_evidence() {
    let f = fixture();
    let local = caller(Role::Local);
    let first = views::anomalies_view(&f.review, &f.anomalies, &local, None, None, None, None, 1).unwrap();
    assert_eq!(first.paging.total, f.anomalies.len());
    let mut rows = Vec::new();
    let mut html_all = String::new();
    for page in 1..=first.paging.pages {
        let v = views::anomalies_view(&f.review, &f.anomalies, &local, None, None, None, None, page).unwrap();
        html_all.push_str(&html(&views::anomalies_page(&v, &[])));
        rows.extend(v.anomalies);
    }
    for e in &f.world.expected {
        let found = rows.iter().find(|r| {
            r.kind == e.kind && r.participant == e.participant && r.certificate == e.certificate && r.period == e.period
        });
        let found =
            found.unwrap_or_else(|| panic!("planted {:?} {} {:?} not listed", e.kind, e.participant, e.certificate));
        assert_eq!(found.event_ids, e.event_ids, "evidence of {:?} {}", e.kind, e.participant);
        for id in &e.event_ids {
            assert!(html_all.contains(&format!("/event/{}", id.to_hex())), "evidence linked");
        }
        if let Some(n) = &e.certificate {
            assert!(html_all.contains(&views::certificate_href(n)), "certificate linked");
        }
    }
    assert_links_resolve(f, &html_all);
    // Filters: one kind, one participant.
    let cg = views::anomalies_view(
        &f.review,
        &f.anomalies,
        &local,
        Some(AnomalyKind::ExportsExceedSupply),
        Some(pid("CG")),
        None,
        None,
        1,
    )
    .unwrap();
    assert_eq!(cg.anomalies.len(), 2, "{:?}", cg.anomalies);
    // An observer sees the findings, without the certificates' figures.
    let obs =
        views::anomalies_view(&f.review, &f.anomalies, &caller(Role::Observer), None, None, None, None, 1).unwrap();
    assert_eq!(obs.paging.total, f.anomalies.len());
    for r in &obs.anomalies {
        assert_eq!(r.explanation.is_some(), r.certificate.is_none(), "{r:?}");
    }
}

#[test]
fn a_certificate_page_shows_its_incidents_to_its_parties_only() {
    let f = fixture();
    let mismatch = f.world.expected.iter().find(|e| e.kind == AnomalyKind::ReceiptMismatch).unwrap();
    let number = mismatch.certificate.clone().unwrap();
    let exporter = f.review.exporter_of(&number).unwrap();
    let own = views::certificate_view(&f.review, &caller(Role::Authority(exporter)), &number, vec![]).unwrap();
    let figures = own.figures.as_ref().unwrap();
    assert!(!figures.incidents.is_empty(), "{own:?}");
    assert_eq!(own.state, "received");
    let h = html(&views::certificate_page(&own));
    assert!(h.contains(&figures.incidents[0]));
    assert!(h.contains("id=\"bundle\""), "its party may download the bundle");
    let obs = views::certificate_view(&f.review, &caller(Role::Observer), &number, vec![]).unwrap();
    assert!(obs.figures.is_none() && !obs.bundle_allowed);
    let page = views::certificate_page(&obs);
    let h = html(&page);
    assert!(!h.contains(&figures.incidents[0]) && h.contains("withheld"));
    assert!(!page.json.to_string().contains("carats"), "{}", page.json);
    let missing = CertificateNumber::new("ZZ-0000-NOPE").unwrap();
    assert_eq!(views::certificate_view(&f.review, &caller(Role::Observer), &missing, vec![]).unwrap_err().status, 404);
}

#[test]
fn pages_are_found_from_1_to_the_last() {
    let rows: Vec<u32> = (0..120).collect();
    assert_eq!(views::paginate(&rows, 3).unwrap().0, (100..120).collect::<Vec<_>>());
    assert_eq!(views::paginate(&rows, 0).unwrap_err().status, 404);
    assert_eq!(views::paginate(&rows, 4).unwrap_err().status, 404);
    assert_eq!(views::paginate(&rows, usize::MAX).unwrap_err().status, 404);
    let none: Vec<u32> = Vec::new();
    assert_eq!(views::paginate(&none, 1).unwrap().1.pages, 1);
}

#[test]
fn text_from_the_ledger_is_escaped() {
    // A participant's name (from a governance act) reaches pages as text, never as markup.
    let mut page = views::NetworkView {
        chain_id: "c".into(),
        genesis_hash: "g".into(),
        height: 0,
        head_hash: "h".into(),
        head_time: "t".into(),
        round: 0,
        node_of: None,
        waiting_for: vec!["CD".into()],
        seconds_since_head: 42,
        blocks_per_hour: None,
        committed_events: 0,
        pending_events: 0,
        voters: vec![],
        recent: vec![],
        participants: vec![kp_review::ParticipantHistory {
            participant: pid("XX"),
            name: Some("<script>alert(1)</script>".into()),
            genesis_status: None,
            status: None,
            governance: vec![],
        }],
        indexed_height: 0,
    };
    let h = html(&views::network_page(&page));
    assert!(!h.contains("<script>") && h.contains("&lt;script&gt;"));
    assert!(h.contains("Waiting for CD"), "the missing voter comes first");
    page.waiting_for.clear();
    assert!(!html(&views::network_page(&page)).contains("Waiting for"));
}
