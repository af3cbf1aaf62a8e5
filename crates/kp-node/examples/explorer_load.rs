//! How long the explorer's pages take on a ledger of 1,000,000 events (or the count given): a
//! generated trade of three years among the 59 participants (issue, seal, receipt per
//! certificate), fed to the review model as the node's index task feeds it, then each page
//! built as the explorer builds it — the whole-model computation once (what a new committed
//! height costs a query), then the page from the kept result (every other request at that
//! height). Prints one JSON object; `scripts/bench-explorer.sh` runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_arithmetic, clippy::cast_possible_truncation)]

#[path = "../../kp-review/tests/it/common.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use kp_domain::{HsCode, ParticipantId};
use kp_node::access::{Caller, Role};
use kp_node::explorer::views;
use kp_review::AnomalyParams;
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() {
    let events: usize = std::env::args().nth(1).map_or(1_000_000, |s| s.parse().expect("a number of events"));
    let genesis = world_genesis();
    let codes: Vec<ParticipantId> = genesis.participants.iter().map(|p| p.id).collect();
    let mut rng = Rng::new(0x4b50_e8e1_0001);
    let t = Instant::now();
    let mut ledger = Ledger::default();
    let first = date("2024-01-01");
    let hs = [HsCode::Unsorted, HsCode::Industrial, HsCode::NonIndustrial];
    for i in 0..events / 3 {
        let e = codes[rng.below(codes.len() as u64) as usize];
        let mut m = codes[rng.below(codes.len() as u64) as usize];
        if m == e {
            m = codes[(codes.iter().position(|c| *c == e).unwrap() + 1) % codes.len()];
        }
        let day = first.add_days(rng.below(3 * 365) as i32);
        let carats = rng.range(20_000, 3_000_000);
        let value = carats * rng.range(50, 20_000) / 100;
        let number = format!("{e}-{}-{i:07}", day.year());
        let c = certificate(
            &number,
            e.as_str(),
            m.as_str(),
            day,
            45,
            1 + (i % 20) as u32,
            vec![line(hs[i % 3], carats, value)],
        );
        let at = day.start().saturating_add_ms(3_600_000);
        ledger.push(at, issued(&c));
        ledger.push(at.saturating_add_ms(20 * 3_600_000), sealed(&number, at.saturating_add_ms(19 * 3_600_000)));
        ledger.push(at.saturating_add_ms(5 * 86_400_000), received_ok(&c, at.saturating_add_ms(4 * 86_400_000)));
    }
    let entries = ledger.committed();
    drop(ledger);
    let generated_ms = ms(t);
    let t = Instant::now();
    let mut review = review_of(&genesis, &entries);
    let last = entries.last().map(|e| e.time).unwrap();
    review.note_block(last);
    let indexed_ms = ms(t);
    let heights = entries.last().map_or(0, |e| e.height);
    drop(entries);
    let rss_after_index = rss_mb();

    let bw = Caller { role: Role::Authority(codes[0]), name: "bench".into(), refused: None };
    let as_of = review.as_of();
    // The last full year of the generated trade (the ledger's day is a few days into the next).
    let year = first.year() + 2;
    let (from, to) = (kp_domain::Date::from_ymd(year, 1, 1).unwrap(), kp_domain::Date::from_ymd(year, 12, 31).unwrap());
    let render =
        |p: &views::Page| views::layout(&p.title, "bench", "/", p.csv.is_some(), &[], &p.body).into_string().len();

    let t = Instant::now();
    let report = review.participant_report(codes[0], from, to, 60, as_of);
    let report_ms = ms(t);
    let t = Instant::now();
    let stats = review.stats(year, None);
    let stats_ms = ms(t);
    let t = Instant::now();
    let v = views::participant_view(&review, &report, std::slice::from_ref(&stats), &bw, 1).unwrap();
    let bytes = render(&views::participant_page(&v));
    let participant_page_ms = ms(t);
    let pages = v.paging.pages;
    let t = Instant::now();
    let last_page = views::participant_view(&review, &report, std::slice::from_ref(&stats), &bw, pages).unwrap();
    render(&views::participant_page(&last_page));
    let participant_last_page_ms = ms(t);

    let t = Instant::now();
    let sv = views::stats_view(&stats, Some(codes[0]));
    render(&views::stats_page(&sv, &codes));
    let stats_page_ms = ms(t);

    let t = Instant::now();
    let anomalies = review.anomalies(&AnomalyParams::new(as_of));
    let anomalies_ms = ms(t);
    let t = Instant::now();
    let av = views::anomalies_view(&review, &anomalies, &bw, None, None, None, None, 1).unwrap();
    render(&views::anomalies_page(&av, &codes));
    let anomalies_page_ms = ms(t);

    let number = report.certificates.first().map(|c| c.number.clone()).unwrap();
    let t = Instant::now();
    let cv = views::certificate_view(&review, &bw, &number, vec![]).unwrap();
    render(&views::certificate_page(&cv));
    let certificate_page_ms = ms(t);
    let t = Instant::now();
    let histories = review.participant_histories();
    let network_part_ms = ms(t);

    println!(
        "{}",
        serde_json::json!({
            "events": events / 3 * 3,
            "certificates": review.certificate_count(),
            "blocks": heights,
            "generate_ms": generated_ms,
            "index_ms": indexed_ms,
            "rss_mb_after_index": rss_after_index,
            "once_per_height_and_query_ms": {
                "participant_report_year": report_ms,
                "statistics_year": stats_ms,
                "anomalies_all": anomalies_ms,
            },
            "page_from_kept_result_ms": {
                "participant_first_page": participant_page_ms,
                "participant_last_page": participant_last_page_ms,
                "statistics_with_chart": stats_page_ms,
                "anomalies_first_page": anomalies_page_ms,
                "certificate": certificate_page_ms,
                "network_participants": network_part_ms,
            },
            "participant": codes[0].to_string(),
            "participant_certificates_in_period": report.certificates.len(),
            "participant_pages": pages,
            "participant_page_bytes": bytes,
            "anomalies": anomalies.len(),
            "participants_listed": histories.len(),
        })
    );
}
