//! A synthetic year (2026) of KP trade among the 59 participants of the registry, generated from
//! a seed, and then a set of planted anomalies whose expected findings are recorded as they are
//! planted.
//!
//! The clean part is built so that no finding can arise from it, whatever the seed:
//! - producers report real-world production (2022 figures) scaled down 16 times, to match a few
//!   thousand certificates of realistic size (1,500 to 30,000 ct from producers, 200 to 8,000 ct
//!   from traders) — world trade at about 1/16 of its size;
//! - producers export 70–88% of their half-year production; the hubs (EU, AE) re-export 75–85%
//!   of what they imported in the same half-year, other traders (IN, IL, US, ...) 30–50%;
//!   voided certificates are not counted as supply;
//! - prices per carat are a base per HS code (7102.10 USD 95, 7102.21 USD 9, 7102.31 USD 170)
//!   times an origin factor (0.9–1.1) times noise (0.8–1.2), amendments move a value by ±5%;
//! - every certificate not voided is sealed 1–48 h after issue and its receipt confirmed,
//!   matching, 1–20 days after the seal, within validity (45 days);
//! - VE, CF, GN, CG and LB (suspended, restricted, or with planted balances) take no part in
//!   the random trade; their certificates are written by hand.

use crate::common::*;
use kp_domain::*;
use kp_review::AnomalyKind;
use std::collections::BTreeMap;

pub const SEED: u64 = 0x4b50_2026_0001;
pub const TODAY: &str = "2027-04-01";
const SCALE: u64 = 16;

/// Annual production in carats (2022, approximate public figures).
const PRODUCERS: [(&str, u64); 15] = [
    ("RU", 41_900_000),
    ("BW", 24_500_000),
    ("CA", 16_200_000),
    ("CD", 9_900_000),
    ("ZA", 9_700_000),
    ("AO", 8_800_000),
    ("ZW", 4_500_000),
    ("NA", 2_100_000),
    ("LS", 730_000),
    ("SL", 690_000),
    ("TZ", 380_000),
    ("BR", 160_000),
    ("GY", 100_000),
    ("GH", 80_000),
    ("LR", 50_000),
];

const FROM_PRODUCERS: [(&str, u64); 8] =
    [("EU", 35), ("AE", 30), ("IN", 20), ("IL", 5), ("CN", 3), ("US", 3), ("CH", 2), ("TH", 2)];

const FROM_EU: [(&str, u64); 12] = [
    ("IN", 40),
    ("AE", 15),
    ("IL", 10),
    ("US", 10),
    ("CN", 6),
    ("TH", 5),
    ("CH", 5),
    ("AM", 2),
    ("BY", 2),
    ("LK", 2),
    ("GB", 2),
    ("SG", 1),
];

const FROM_AE: [(&str, u64); 9] =
    [("IN", 50), ("EU", 20), ("IL", 6), ("CN", 6), ("US", 5), ("TH", 4), ("SG", 3), ("QA", 3), ("TR", 3)];

const TRADERS: [&str; 12] = ["IN", "IL", "US", "CN", "CH", "TH", "SG", "AM", "BY", "LK", "GB", "QA"];

const FROM_TRADERS: [(&str, u64); 26] = [
    ("AE", 20),
    ("EU", 20),
    ("IN", 10),
    ("CN", 8),
    ("US", 8),
    ("IL", 6),
    ("TH", 5),
    ("JP", 3),
    ("KR", 3),
    ("MY", 2),
    ("ID", 1),
    ("MX", 1),
    ("NZ", 1),
    ("PA", 1),
    ("QA", 2),
    ("TR", 2),
    ("UA", 1),
    ("VN", 2),
    ("KH", 1),
    ("LA", 1),
    ("MU", 1),
    ("NO", 1),
    ("BD", 1),
    ("KZ", 1),
    ("KG", 1),
    ("AU", 1),
];

fn base_price(code: HsCode) -> f64 {
    match code {
        HsCode::Unsorted => 95.0,
        HsCode::Industrial => 9.0,
        HsCode::NonIndustrial => 170.0,
    }
}

/// A finding the review must report.
#[derive(Clone, Debug)]
pub struct Expected {
    pub kind: AnomalyKind,
    pub participant: ParticipantId,
    pub certificate: Option<CertificateNumber>,
    pub period: String,
    /// The certificate's issue date, or the half-year's first day.
    pub date: Date,
    pub event_ids: Vec<EventId>,
}

#[derive(Debug)]
pub struct World {
    pub genesis: Genesis,
    pub entries: Vec<Entry>,
    pub expected: Vec<Expected>,
    pub today: Date,
    pub certificates: usize,
}

#[derive(Clone, Copy, Debug)]
enum Style {
    Producer,
    /// DR Congo: mostly industrial goods.
    Industrial,
    Trader,
}

struct Gen {
    rng: Rng,
    ledger: Ledger,
    serial: BTreeMap<String, u32>,
    origin_factor: BTreeMap<String, f64>,
    /// Carats (hundredths) imported per (participant, half), certificates not voided.
    imports: BTreeMap<(String, u8), u64>,
    expected: Vec<Expected>,
    certificates: usize,
}

fn half_of(d: Date) -> u8 {
    if d.month() <= 6 { 1 } else { 2 }
}

fn quarter_name(d: Date) -> String {
    format!("{}-Q{}", d.year(), (d.month() - 1) / 3 + 1)
}

const HOUR: u64 = 3_600_000;
const DAY: u64 = 86_400_000;

impl Gen {
    fn factor(&mut self, p: &str) -> f64 {
        if let Some(f) = self.origin_factor.get(p) {
            return *f;
        }
        let f = self.rng.uniform(0.9, 1.1);
        self.origin_factor.insert(p.to_owned(), f);
        f
    }

    fn priced(&mut self, exporter: &str, code: HsCode, hundredths: u64) -> HsLine {
        let price = base_price(code) * self.factor(exporter) * self.rng.uniform(0.8, 1.2);
        let cents = ((hundredths as f64) * price).round().max(1.0) as u64;
        line(code, hundredths, cents)
    }

    fn lines(&mut self, exporter: &str, hundredths: u64, style: Style) -> Vec<HsLine> {
        let split = |rng: &mut Rng, total: u64, lo: f64, hi: f64| -> (u64, u64) {
            let a = ((total as f64) * rng.uniform(lo, hi)) as u64;
            let a = a.clamp(1, total - 1);
            (a, total - a)
        };
        use HsCode::*;
        let parts: Vec<(HsCode, u64)> = match (style, self.rng.below(100)) {
            (Style::Producer, 0..65) => vec![(Unsorted, hundredths)],
            (Style::Producer, 65..90) => {
                let (a, b) = split(&mut self.rng, hundredths, 0.7, 0.9);
                vec![(Unsorted, a), (Industrial, b)]
            }
            (Style::Producer, _) => {
                let (a, b) = split(&mut self.rng, hundredths, 0.2, 0.4);
                vec![(Industrial, a), (NonIndustrial, b)]
            }
            (Style::Industrial, 0..60) => vec![(Industrial, hundredths)],
            (Style::Industrial, _) => {
                let (a, b) = split(&mut self.rng, hundredths, 0.2, 0.4);
                vec![(Unsorted, a), (Industrial, b)]
            }
            (Style::Trader, 0..50) => vec![(NonIndustrial, hundredths)],
            (Style::Trader, 50..80) => {
                let (a, b) = split(&mut self.rng, hundredths, 0.1, 0.3);
                vec![(Industrial, a), (NonIndustrial, b)]
            }
            (Style::Trader, _) => {
                let (a, rest) = split(&mut self.rng, hundredths, 0.3, 0.5);
                let (b, c) = split(&mut self.rng, rest, 0.2, 0.4);
                vec![(Unsorted, a), (Industrial, b), (NonIndustrial, c)]
            }
        };
        parts.into_iter().map(|(code, h)| self.priced(exporter, code, h)).collect()
    }

    fn new_cert(&mut self, exporter: &str, importer: &str, issued_on: Date, lines: Vec<HsLine>) -> Certificate {
        let serial = self.serial.entry(exporter.to_owned()).or_default();
        *serial += 1;
        let num = format!("{exporter}-{}-{:06}", issued_on.year(), serial);
        let parcels = u32::try_from(self.rng.range(1, 12)).unwrap();
        self.certificates += 1;
        certificate(&num, exporter, importer, issued_on, 45, parcels, lines)
    }

    /// Counts a certificate (not voided) as its importer's supply.
    fn track(&mut self, c: &Certificate) {
        *self.imports.entry((c.importer.to_string(), half_of(c.issued_on))).or_default() += c.carats.0;
    }

    fn push(&mut self, time: Timestamp, payload: EventPayload) -> EventId {
        self.ledger.push(time, payload)
    }

    /// A clean shipment: issued, perhaps amended (value ±5%) or voided, sealed, received exactly.
    fn shipment(&mut self, exporter: &str, importer: &str, issued_on: Date, hundredths: u64, style: Style) {
        let lines = self.lines(exporter, hundredths, style);
        let mut c = self.new_cert(exporter, importer, issued_on, lines);
        let issue_time = issued_on.start().saturating_add_ms(self.rng.range(7 * HOUR, 17 * HOUR));
        self.push(issue_time, issued(&c));
        let fate = self.rng.below(1000);
        if fate < 8 {
            self.push(issue_time.saturating_add_ms(2 * HOUR), voided(c.number.as_str()));
            return;
        }
        if (14..34).contains(&fate) {
            let bump = self.rng.uniform(0.95, 1.05);
            for l in &mut c.lines {
                l.value = UsdCents(((l.value.0 as f64) * bump).round().max(1.0) as u64);
            }
            c.value = UsdCents(c.lines.iter().map(|l| l.value.0).sum());
            c.parcels += 1;
            self.push(issue_time.saturating_add_ms(HOUR / 2), amended(&c));
        }
        let seal_time = issue_time.saturating_add_ms(self.rng.range(HOUR, 48 * HOUR));
        let sealed_at = Timestamp(seal_time.0 - self.rng.below(HOUR));
        self.push(seal_time, sealed(c.number.as_str(), sealed_at));
        if fate < 14 {
            self.push(seal_time.saturating_add_ms(DAY), voided(c.number.as_str()));
            return;
        }
        self.track(&c);
        let receipt_time = seal_time.saturating_add_ms(self.rng.range(DAY, 20 * DAY));
        let received_at = Timestamp(receipt_time.0 - self.rng.below(3 * HOUR));
        self.push(receipt_time, received_ok(&c, received_at));
    }

    fn random_day(&mut self, half: u8) -> Date {
        let (first, days) = if half == 1 { (date("2026-01-01"), 181) } else { (date("2026-07-01"), 184) };
        first.add_days(i32::try_from(self.rng.below(days)).unwrap())
    }

    /// Ships about `budget` hundredths of a carat from `exporter` to weighted destinations.
    fn ship_budget(
        &mut self,
        exporter: &str,
        half: u8,
        budget: u64,
        sizes: (f64, f64),
        to: &[(&str, u64)],
        style: Style,
    ) {
        let destinations: Vec<(&str, u64)> = to.iter().copied().filter(|(d, _)| *d != exporter).collect();
        let mut remaining = budget;
        while remaining > 5_000 {
            let carats = self.rng.uniform(sizes.0.ln(), sizes.1.ln()).exp();
            let size = ((carats * 100.0) as u64).min(remaining);
            let importer = self.rng.weighted(&destinations);
            let day = self.random_day(half);
            self.shipment(exporter, importer, day, size, style);
            remaining -= size;
        }
    }

    fn production_lines(&mut self, p: &str, hundredths: u64) -> Vec<HsLine> {
        let industrial_share = if p == "CD" { 0.7 } else { 0.2 };
        let b = ((hundredths as f64) * industrial_share) as u64;
        vec![self.priced(p, HsCode::Unsorted, hundredths - b), self.priced(p, HsCode::Industrial, b)]
    }

    fn clean_year(&mut self) {
        for half in [1u8, 2] {
            let report_time = if half == 1 { at("2026-07-10", 9) } else { at("2027-01-10", 9) };
            for (i, (p, annual)) in PRODUCERS.iter().enumerate() {
                let produced = annual * 100 / 2 / SCALE;
                let time = report_time.saturating_add_ms(u64::try_from(i).unwrap() * 60_000);
                let lines = self.production_lines(p, produced);
                if *p == "ZA" && half == 1 {
                    // A first report far too low, corrected by revision 1: only the latter counts.
                    let low = self.production_lines(p, 1_000_000);
                    self.push(time, production(p, 2026, 1, 0, low));
                    self.push(at("2026-07-20", 9), production(p, 2026, 1, 1, lines));
                } else {
                    self.push(time, production(p, 2026, u32::from(half), 0, lines));
                }
                let budget = ((produced as f64) * self.rng.uniform(0.70, 0.88)) as u64;
                let style = if *p == "CD" { Style::Industrial } else { Style::Producer };
                self.ship_budget(p, half, budget, (1_500.0, 30_000.0), &FROM_PRODUCERS, style);
            }
            for (hub, to) in [("EU", &FROM_EU[..]), ("AE", &FROM_AE[..])] {
                let imported = self.imports.get(&(hub.to_owned(), half)).copied().unwrap_or(0);
                let budget = ((imported as f64) * self.rng.uniform(0.75, 0.85)) as u64;
                self.ship_budget(hub, half, budget, (200.0, 8_000.0), to, Style::Trader);
            }
            for trader in TRADERS {
                let imported = self.imports.get(&(trader.to_owned(), half)).copied().unwrap_or(0);
                let budget = ((imported as f64) * self.rng.uniform(0.3, 0.5)) as u64;
                self.ship_budget(trader, half, budget, (200.0, 8_000.0), &FROM_TRADERS, Style::Trader);
            }
        }
    }

    fn expect(
        &mut self,
        kind: AnomalyKind,
        participant: &str,
        c: Option<&Certificate>,
        period: String,
        date: Date,
        ids: Vec<EventId>,
    ) {
        self.expected.push(Expected {
            kind,
            participant: pid(participant),
            certificate: c.map(|c| c.number.clone()),
            period,
            date,
            event_ids: ids,
        });
    }

    /// A certificate with one line at `factor` times the base price (no noise).
    fn at_price(
        &mut self,
        exporter: &str,
        importer: &str,
        day: &str,
        code: HsCode,
        hundredths: u64,
        factor: f64,
    ) -> Certificate {
        let cents = ((hundredths as f64) * base_price(code) * factor).round() as u64;
        self.new_cert(exporter, importer, date(day), vec![line(code, hundredths, cents)])
    }

    /// A certificate of normal prices.
    fn normal(&mut self, exporter: &str, importer: &str, day: &str, hundredths: u64) -> Certificate {
        let style = if ["EU", "AE", "LB"].contains(&exporter) { Style::Trader } else { Style::Producer };
        let lines = self.lines(exporter, hundredths, style);
        self.new_cert(exporter, importer, date(day), lines)
    }

    /// Issue at 09:00, seal the next day at 09:00, receipt `days` later at 09:00, tracked.
    fn complete(&mut self, c: &Certificate, days: u64) -> [EventId; 3] {
        let issue = c.issued_on.start().saturating_add_ms(9 * HOUR);
        let a = self.push(issue, issued(c));
        let b = self.push(issue.saturating_add_ms(DAY), sealed(c.number.as_str(), issue.saturating_add_ms(DAY)));
        let receipt = issue.saturating_add_ms((1 + days) * DAY);
        let r = self.push(receipt, received_ok(c, receipt));
        self.track(c);
        [a, b, r]
    }

    fn planted(&mut self) {
        use AnomalyKind::*;
        let q = |c: &Certificate| quarter_name(c.issued_on);

        // never_confirmed: sealed, never received; and never even sealed.
        let c = self.normal("BW", "EU", "2026-10-01", 500_000);
        let i = self.push(at("2026-10-01", 10), issued(&c));
        let s = self.push(at("2026-10-02", 9), sealed(c.number.as_str(), at("2026-10-02", 9)));
        self.track(&c);
        self.expect(NeverConfirmed, "BW", Some(&c), q(&c), c.issued_on, vec![i, s]);
        let c = self.normal("AO", "AE", "2026-11-03", 300_000);
        let i = self.push(at("2026-11-03", 10), issued(&c));
        self.track(&c);
        self.expect(NeverConfirmed, "AO", Some(&c), q(&c), c.issued_on, vec![i]);

        // late_confirmation: 48 days after the seal (received after expiry), and 36 days.
        let c = self.normal("RU", "IN", "2026-06-01", 800_000);
        let i = self.push(at("2026-06-01", 9), issued(&c));
        let s = self.push(at("2026-06-02", 10), sealed(c.number.as_str(), at("2026-06-02", 10)));
        let r = self.push(at("2026-07-20", 11), received_ok(&c, at("2026-07-20", 11)));
        self.track(&c);
        self.expect(LateConfirmation, "IN", Some(&c), q(&c), c.issued_on, vec![i, s, r]);
        let c = self.normal("CA", "EU", "2026-02-02", 700_000);
        let i = self.push(at("2026-02-02", 9), issued(&c));
        let s = self.push(at("2026-02-02", 15), sealed(c.number.as_str(), at("2026-02-02", 15)));
        let r = self.push(at("2026-03-10", 15), received_ok(&c, at("2026-03-10", 15)));
        self.track(&c);
        self.expect(LateConfirmation, "EU", Some(&c), q(&c), c.issued_on, vec![i, s, r]);
        // Clean: exactly 30 days between the seal and the receipt is not late.
        let c = self.normal("ZA", "EU", "2026-05-04", 600_000);
        self.push(at("2026-05-04", 8), issued(&c));
        self.push(at("2026-05-04", 12), sealed(c.number.as_str(), at("2026-05-04", 12)));
        self.push(at("2026-06-03", 12), received_ok(&c, at("2026-06-03", 12)));
        self.track(&c);

        // receipt_mismatch: carats, broken seals, and parcels against the amended revision.
        let c = self.normal("BW", "IN", "2026-08-10", 600_000);
        let i = self.push(at("2026-08-10", 9), issued(&c));
        let s = self.push(at("2026-08-11", 9), sealed(c.number.as_str(), at("2026-08-11", 9)));
        let r = self.push(
            at("2026-08-20", 9),
            received(c.number.as_str(), at("2026-08-20", 9), c.parcels, c.carats.0 - 1_234, true),
        );
        self.track(&c);
        self.expect(ReceiptMismatch, "BW", Some(&c), q(&c), c.issued_on, vec![i, s, r]);
        let c = self.normal("AE", "IN", "2026-09-07", 250_000);
        let i = self.push(at("2026-09-07", 9), issued(&c));
        let s = self.push(at("2026-09-08", 9), sealed(c.number.as_str(), at("2026-09-08", 9)));
        let r = self
            .push(at("2026-09-12", 9), received(c.number.as_str(), at("2026-09-12", 9), c.parcels, c.carats.0, false));
        self.track(&c);
        self.expect(ReceiptMismatch, "AE", Some(&c), q(&c), c.issued_on, vec![i, s, r]);
        let mut c = self.normal("EU", "US", "2026-04-14", 180_000);
        c.parcels = 4;
        let i = self.push(at("2026-04-14", 9), issued(&c));
        let original_parcels = c.parcels;
        c.parcels = 5;
        let a = self.push(at("2026-04-14", 11), amended(&c));
        let s = self.push(at("2026-04-15", 9), sealed(c.number.as_str(), at("2026-04-15", 9)));
        let r = self.push(
            at("2026-04-25", 9),
            received(c.number.as_str(), at("2026-04-25", 9), original_parcels, c.carats.0, true),
        );
        self.track(&c);
        self.expect(ReceiptMismatch, "EU", Some(&c), q(&c), c.issued_on, vec![i, a, s, r]);
        // Clean: the carats were amended, and the receipt matches the amendment.
        let mut c = self.normal("EU", "CH", "2026-05-19", 200_000);
        self.push(at("2026-05-19", 9), issued(&c));
        let first = &mut c.lines[0];
        first.carats = Carats(first.carats.0 - 5_000);
        c.carats = Carats(c.lines.iter().map(|l| l.carats.0).sum());
        self.push(at("2026-05-19", 10), amended(&c));
        self.push(at("2026-05-20", 9), sealed(c.number.as_str(), at("2026-05-20", 9)));
        self.push(at("2026-05-28", 9), received_ok(&c, at("2026-05-28", 9)));
        self.track(&c);

        // undervaluation: a line at 15% of the norm; and a value lowered by an amendment.
        let c = self.at_price("NA", "EU", "2026-07-21", HsCode::NonIndustrial, 200_000, 0.15);
        let [i, _, _] = self.complete(&c, 10);
        self.expect(Undervaluation, "NA", Some(&c), q(&c), c.issued_on, vec![i]);
        let lines =
            vec![self.priced("AE", HsCode::Industrial, 70_000), self.priced("AE", HsCode::NonIndustrial, 130_000)];
        let mut c = self.new_cert("AE", "IN", date("2026-02-17"), lines);
        let i = self.push(at("2026-02-17", 9), issued(&c));
        c.lines[1].value = UsdCents((130_000.0 * base_price(HsCode::NonIndustrial) * 0.15) as u64);
        c.value = UsdCents(c.lines.iter().map(|l| l.value.0).sum());
        let a = self.push(at("2026-02-17", 12), amended(&c));
        self.push(at("2026-02-18", 9), sealed(c.number.as_str(), at("2026-02-18", 9)));
        self.push(at("2026-02-25", 9), received_ok(&c, at("2026-02-25", 9)));
        self.track(&c);
        self.expect(Undervaluation, "AE", Some(&c), q(&c), c.issued_on, vec![i, a]);
        // Clean: low (62% of the norm) but not below half of it.
        let c = self.at_price("BW", "EU", "2026-03-16", HsCode::Unsorted, 300_000, 0.62);
        self.complete(&c, 5);
        // Clean: far below the norm, but the only line of its code in 2027-Q1 (< min_samples).
        self.push(
            at("2027-01-04", 9),
            production("BW", 2027, 1, 0, vec![line(HsCode::Unsorted, 30_000_000, 285_000_000)]),
        );
        let c = self.at_price("BW", "EU", "2027-01-05", HsCode::NonIndustrial, 100_000, 0.1);
        self.complete(&c, 5);

        // trade_while_suspended. VE, importer: issued before its suspension, sealed and
        // received after it.
        let c = self.normal("EU", "VE", "2026-02-01", 100_000);
        self.complete(&c, 8);
        let c = self.normal("EU", "VE", "2026-03-01", 120_000);
        let i = self.push(at("2026-03-01", 9), issued(&c));
        let g = self.push(
            at("2026-03-03", 12),
            governance("KP-2026-VE-1", GovernanceAction::Suspend { participant: pid("VE") }),
        );
        let s = self.push(at("2026-03-04", 9), sealed(c.number.as_str(), at("2026-03-04", 9)));
        let r = self.push(at("2026-03-10", 9), received_ok(&c, at("2026-03-10", 9)));
        self.track(&c);
        self.expect(TradeWhileSuspended, "VE", Some(&c), q(&c), c.issued_on, vec![i, g, s, r]);
        self.push(
            at("2026-09-01", 9),
            governance("KP-2026-VE-2", GovernanceAction::Readmit { participant: pid("VE") }),
        );
        let c = self.normal("EU", "VE", "2026-09-10", 110_000);
        self.complete(&c, 6);

        // CF, exporter: received after its suspension; later restricted to a zone, and a
        // certificate that meets the restriction is clean.
        self.push(
            at("2026-07-10", 12),
            production("CF", 2026, 1, 0, vec![line(HsCode::Unsorted, 5_000_000, 60_000_000)]),
        );
        self.push(
            at("2027-01-10", 12),
            production("CF", 2026, 2, 0, vec![line(HsCode::Unsorted, 4_000_000, 48_000_000)]),
        );
        let c = self.normal("CF", "EU", "2026-04-20", 150_000);
        self.complete(&c, 11);
        let c = self.normal("CF", "EU", "2026-04-28", 160_000);
        let i = self.push(at("2026-04-28", 9), issued(&c));
        self.push(at("2026-04-29", 9), sealed(c.number.as_str(), at("2026-04-29", 9)));
        let g = self.push(
            at("2026-05-10", 12),
            governance("KP-2026-CF-1", GovernanceAction::Suspend { participant: pid("CF") }),
        );
        let r = self.push(at("2026-05-12", 9), received_ok(&c, at("2026-05-12", 9)));
        self.track(&c);
        self.expect(TradeWhileSuspended, "CF", Some(&c), q(&c), c.issued_on, vec![i, g, r]);
        self.push(
            at("2026-08-01", 9),
            governance(
                "KP-2026-CF-2",
                GovernanceAction::Restrict { participant: pid("CF"), zones: vec![label("Berberati")] },
            ),
        );
        let mut c = self.normal("CF", "AE", "2026-08-10", 150_000);
        c.origin_zone = Some(label("Berberati"));
        self.complete(&c, 9);

        // GN, exporter: restricted between issue and seal, certificate without a zone.
        self.push(
            at("2026-07-10", 13),
            production("GN", 2026, 1, 0, vec![line(HsCode::Unsorted, 3_000_000, 30_000_000)]),
        );
        self.push(
            at("2027-01-10", 13),
            production("GN", 2026, 2, 0, vec![line(HsCode::Unsorted, 6_000_000, 60_000_000)]),
        );
        let c_in = self.normal("EU", "GN", "2026-09-01", 90_000);
        let c = self.normal("GN", "EU", "2026-09-10", 200_000);
        let i = self.push(at("2026-09-10", 9), issued(&c));
        let g = self.push(
            at("2026-09-15", 12),
            governance(
                "KP-2026-GN-1",
                GovernanceAction::Restrict { participant: pid("GN"), zones: vec![label("Banankoro")] },
            ),
        );
        let s = self.push(at("2026-09-16", 9), sealed(c.number.as_str(), at("2026-09-16", 9)));
        let r = self.push(at("2026-09-25", 9), received_ok(&c, at("2026-09-25", 9)));
        self.track(&c);
        self.expect(TradeWhileSuspended, "GN", Some(&c), q(&c), c.issued_on, vec![i, g, s, r]);
        // Clean: from the listed zone; and GN importing while restricted.
        let mut c = self.normal("GN", "AE", "2026-09-12", 180_000);
        c.origin_zone = Some(label("Banankoro"));
        self.push(at("2026-09-12", 9), issued(&c));
        self.push(at("2026-09-16", 10), sealed(c.number.as_str(), at("2026-09-16", 10)));
        self.push(at("2026-09-26", 9), received_ok(&c, at("2026-09-26", 9)));
        self.track(&c);
        self.push(at("2026-09-01", 9), issued(&c_in));
        self.push(at("2026-09-20", 9), sealed(c_in.number.as_str(), at("2026-09-20", 9)));
        self.push(at("2026-09-30", 9), received_ok(&c_in, at("2026-09-30", 9)));
        self.track(&c_in);
        self.push(
            at("2026-10-15", 9),
            governance("KP-2026-GN-2", GovernanceAction::Readmit { participant: pid("GN") }),
        );

        // exports_exceed_supply. CG, H1: 10 certificates against a production of 20,000 ct.
        let report = self.push(
            at("2026-07-10", 14),
            production("CG", 2026, 1, 0, vec![line(HsCode::Unsorted, 2_000_000, 20_000_000)]),
        );
        let mut exports = Vec::new();
        for k in 0..10u64 {
            let day = date("2026-01-15").add_days(i32::try_from(15 * k).unwrap());
            let c = self.normal("CG", if k % 2 == 0 { "AE" } else { "EU" }, &day.to_string(), 3_000_000 + 170_000 * k);
            let [i, _, _] = self.complete(&c, 7);
            exports.push((c.carats.0, i));
        }
        exports.sort_by_key(|e| std::cmp::Reverse(e.0));
        let ids = std::iter::once(report).chain(exports.iter().map(|e| e.1)).collect();
        self.expect(ExportsExceedSupply, "CG", None, "2026-H1".into(), date("2026-01-01"), ids);
        // CG, H2: 25 certificates; the finding cites the 20 largest.
        let report = self.push(
            at("2027-01-10", 14),
            production("CG", 2026, 2, 0, vec![line(HsCode::Unsorted, 1_500_000, 15_000_000)]),
        );
        let mut exports = Vec::new();
        for k in 0..25u64 {
            let day = date("2026-07-06").add_days(i32::try_from(7 * k).unwrap());
            let c = self.normal("CG", if k % 2 == 0 { "EU" } else { "AE" }, &day.to_string(), 100_000 + 3_700 * k);
            let [i, _, _] = self.complete(&c, 5);
            exports.push((c.carats.0, i));
        }
        exports.sort_by_key(|e| std::cmp::Reverse(e.0));
        let ids = std::iter::once(report).chain(exports.iter().take(20).map(|e| e.1)).collect();
        self.expect(ExportsExceedSupply, "CG", None, "2026-H2".into(), date("2026-07-01"), ids);

        // LB, a trader without production: 4% over its imports in H1 (within the 5%
        // tolerance), 6% over in H2.
        for (imported_on, exports_on, sizes, flagged) in [
            ("2026-02-10", ["2026-03-20", "2026-04-15"], [600_000u64, 440_000], false),
            ("2026-08-10", ["2026-09-20", "2026-10-15"], [600_000, 460_000], true),
        ] {
            let c = self.normal("AE", "LB", imported_on, 1_000_000);
            self.complete(&c, 6);
            let mut ids = Vec::new();
            for (day, size) in exports_on.iter().zip(sizes) {
                let c = self.normal("LB", "EU", day, size);
                let [i, _, _] = self.complete(&c, 6);
                ids.push(i);
            }
            if flagged {
                self.expect(ExportsExceedSupply, "LB", None, "2026-H2".into(), date("2026-07-01"), ids);
            }
        }
    }
}

/// Generates the world of `seed`.
pub fn generate(seed: u64) -> World {
    let mut g = Gen {
        rng: Rng::new(seed),
        ledger: Ledger::default(),
        serial: BTreeMap::new(),
        origin_factor: BTreeMap::new(),
        imports: BTreeMap::new(),
        expected: Vec::new(),
        certificates: 0,
    };
    g.clean_year();
    g.planted();
    World {
        genesis: world_genesis(),
        entries: g.ledger.committed(),
        expected: g.expected,
        today: date(TODAY),
        certificates: g.certificates,
    }
}
