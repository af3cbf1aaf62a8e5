//! The explorer's pages as data and as HTML. Each view is built once, from the review model
//! (`kp_review::Review`) or from what the node's store answered, *after* the caller's access
//! rules have removed what it may not see; the HTML, the JSON twin and the CSV export are then
//! three renderings of that one value, so no format can show more than another.

use crate::access::{Caller, Concerns};
use kp_domain::{Carats, CertificateNumber, Date, EventId, HsLine, ParticipantId, UsdCents};
use kp_review::{
    Amount, Anomaly, AnomalyKind, CertificateEntry, Flow, GovernanceEntry, ParticipantHistory, ProductionHalf, Review,
    Stats, TradeRole, WorldQuarter, csv_line,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

/// Rows on one page of any list.
pub const PAGE_SIZE: usize = 50;

/// A page in its three forms: the HTML body, its JSON twin (the same data), and the CSV export
/// of its main table.
#[derive(Debug)]
pub struct Page {
    pub title: String,
    pub body: Markup,
    pub json: serde_json::Value,
    pub csv: Option<String>,
    /// The page's other tables as CSV, by name (`?format=csv&table=NAME`).
    pub tables: Vec<(&'static str, String)>,
}

/// Why a page cannot be shown: an HTTP status and a sentence for the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub status: u16,
    pub title: &'static str,
    pub message: String,
}

impl PageError {
    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError { status: 400, title: "Bad request", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError { status: 404, title: "Not found", message: message.into() }
    }
    pub fn forbidden(message: impl Into<String>) -> PageError {
        PageError { status: 403, title: "Not allowed", message: message.into() }
    }
    pub fn unavailable(message: impl Into<String>) -> PageError {
        PageError { status: 503, title: "Not ready", message: message.into() }
    }
    pub fn internal(message: impl Into<String>) -> PageError {
        PageError { status: 500, title: "Node error", message: message.into() }
    }
}

/// A page whose figures were computed at `computed`, an earlier height than the explorer's
/// `indexed` one, says so (in the HTML, and as `as_of_height` in the JSON).
pub fn as_of_height(mut page: Page, computed: u64, indexed: u64) -> Page {
    if computed < indexed {
        let body = page.body;
        page.body = html! {
            p class="note" role="note" { "Figures as of height " (computed) "; the ledger is at height " (indexed)
                ". They are computed again at most every 10 seconds." }
            (body)
        };
        if let serde_json::Value::Object(m) = &mut page.json {
            m.insert("as_of_height".into(), computed.into());
        }
    }
    page
}

/// Where a list's page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Paging {
    pub page: usize,
    pub pages: usize,
    pub total: usize,
    pub page_size: usize,
}

/// The rows of page `page` (from 1) of `items`; a page past the last is not found.
pub fn paginate<T: Clone>(items: &[T], page: usize) -> Result<(Vec<T>, Paging), PageError> {
    let pages = items.len().div_ceil(PAGE_SIZE).max(1);
    if page == 0 || page > pages {
        return Err(PageError::not_found(format!("page {page} does not exist: pages run from 1 to {pages}")));
    }
    let start = (page - 1) * PAGE_SIZE;
    let rows = items.iter().skip(start).take(PAGE_SIZE).cloned().collect();
    Ok((rows, Paging { page, pages, total: items.len(), page_size: PAGE_SIZE }))
}

/// A path segment for a certificate number (which may hold `/`).
pub fn certificate_href(number: &CertificateNumber) -> String {
    format!("/certificate/{}", number.as_str().replace('/', "%2F"))
}

fn event_href(id: &EventId) -> String {
    format!("/event/{}", id.to_hex())
}

fn participant_href(p: ParticipantId) -> String {
    format!("/participant/{p}")
}

/// Hundredths as a decimal number with two places.
fn decimal(hundredths: u64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// The facts that decide who sees a certificate's figures.
fn certificate_concerns(exporter: ParticipantId, importer: ParticipantId, issued_on: Date) -> Concerns {
    Concerns::Certificate { exporter, importer, issued_on }
}

/// The whole page around a view's body: navigation, search, the caller's identity, and links to
/// the page's JSON twin and CSV export.
pub fn layout(
    title: &str,
    viewer: &str,
    path_and_query: &str,
    has_csv: bool,
    tables: &[&str],
    body: &Markup,
) -> Markup {
    let twin = |format: &str| {
        let sep = if path_and_query.contains('?') { '&' } else { '?' };
        format!("{path_and_query}{sep}format={format}")
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — KP ledger explorer" }
                link rel="stylesheet" href="/static/explorer.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    nav aria-label="Explorer" {
                        ul {
                            li { a href="/" { "Network" } }
                            li { a href="/blocks" { "Blocks" } }
                            li { a href="/statistics" { "Statistics" } }
                            li { a href="/anomalies" { "Anomalies" } }
                        }
                    }
                    form action="/search" method="get" role="search" {
                        label for="q" { "Certificate, event id, participant or height" }
                        input id="q" name="q" type="search" maxlength="80" required;
                        button type="submit" { "Search" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p {
                        "Viewing as " strong id="viewer" { (viewer) } ". "
                        a href=(twin("json")) { "This page as JSON" }
                        @if has_csv { " · " a href=(twin("csv")) { "its table as CSV" } }
                        @for t in tables { " · " a href=(format!("{}&table={t}", twin("csv"))) { (t) " as CSV" } }
                    }
                }
            }
        }
    }
}

/// The page of an error.
pub fn error_body(e: &PageError) -> Markup {
    html! {
        p class="error" role="alert" { (e.message) }
        p { a href="/" { "Back to the network" } }
    }
}

fn pager(paging: &Paging, base: &str) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        @if paging.pages > 1 {
            nav class="pager" aria-label="Pages" {
                @if paging.page > 1 { a rel="prev" href=(format!("{base}{sep}page={}", paging.page - 1)) { "← previous" } " " }
                span { "page " (paging.page) " of " (paging.pages) " (" (paging.total) " rows)" }
                @if paging.page < paging.pages { " " a rel="next" href=(format!("{base}{sep}page={}", paging.page + 1)) { "next →" } }
            }
        }
    }
}

fn amount_cells(a: &Amount) -> Markup {
    html! { td class="num" { (a.certificates) } td class="num" { (decimal(a.carats.0)) } td class="num" { (decimal(a.value.0)) } }
}

// ---------------------------------------------------------------------------------------------
// Certificate

/// One custody step as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    pub kind: String,
    pub height: u64,
    pub index: u32,
    pub time: String,
    pub event_id: String,
    /// The signing authority as the ledger knew its key (`BW exporting`).
    pub signer: String,
}

/// The figures of a certificate, for a caller entitled to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateFigures {
    pub carats: Carats,
    pub value: UsdCents,
    pub parcels: u32,
    pub lines: Vec<HsLine>,
    pub revision: u32,
    pub incidents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateView {
    pub number: CertificateNumber,
    pub state: String,
    pub exporter: ParticipantId,
    pub importer: ParticipantId,
    pub issued_on: Date,
    pub expires_on: Date,
    /// `None`: withheld from this caller (commercial fields).
    pub figures: Option<CertificateFigures>,
    pub steps: Vec<StepRow>,
    /// Whether this caller may download the proof bundle.
    pub bundle_allowed: bool,
}

/// The certificate `number` as `caller` may see it, with the custody steps the store gave.
pub fn certificate_view(
    review: &Review,
    caller: &Caller,
    number: &CertificateNumber,
    steps: Vec<StepRow>,
) -> Result<CertificateView, PageError> {
    let today = review.as_of();
    let entry = review
        .certificate(number, today)
        .ok_or_else(|| PageError::not_found(format!("no certificate {number} on this ledger")))?;
    let exporter = review.exporter_of(number).unwrap_or(entry.counterpart);
    let sees = caller.sees(&certificate_concerns(exporter, entry.counterpart, entry.issued_on));
    Ok(CertificateView {
        number: number.clone(),
        state: entry.state.to_string(),
        exporter,
        importer: entry.counterpart,
        issued_on: entry.issued_on,
        expires_on: entry.expires_on,
        figures: sees.then(|| CertificateFigures {
            carats: entry.carats,
            value: entry.value,
            parcels: entry.parcels,
            lines: entry.lines.clone(),
            revision: entry.revision,
            incidents: entry.incidents.iter().map(ToString::to_string).collect(),
        }),
        steps,
        bundle_allowed: sees,
    })
}

pub fn certificate_page(v: &CertificateView) -> Page {
    let href = certificate_href(&v.number);
    let body = html! {
        dl class="facts" {
            dt { "State" } dd id="state" data-state=(v.state) { (v.state) }
            dt { "Exporter" } dd { a href=(participant_href(v.exporter)) { (v.exporter) } }
            dt { "Importer" } dd { a href=(participant_href(v.importer)) { (v.importer) } }
            dt { "Issued" } dd { (v.issued_on) }
            dt { "Valid until" } dd { (v.expires_on) }
            @if let Some(f) = &v.figures {
                dt { "Carats" } dd { (decimal(f.carats.0)) }
                dt { "Value (USD)" } dd { (decimal(f.value.0)) }
                dt { "Parcels" } dd { (f.parcels) }
                dt { "Revision" } dd { (f.revision) }
                dt { "HS lines" } dd { @for l in &f.lines { (l.hs_code) ": " (decimal(l.carats.0)) " ct, USD " (decimal(l.value.0)) br; } }
                dt { "Incidents" } dd id="incidents" { @if f.incidents.is_empty() { "none" } @else { @for i in &f.incidents { (i) br; } } }
            } @else {
                dt { "Figures" } dd class="redacted" { "withheld: this identity does not see this certificate's commercial fields" }
            }
        }
        h2 { "Custody timeline" }
        table id="steps" {
            caption { (v.steps.len()) " signed steps, in commit order" }
            thead { tr { th scope="col" { "Step" } th scope="col" { "Height" } th scope="col" { "Block time" } th scope="col" { "Signed by" } th scope="col" { "Event" } } }
            tbody {
                @for s in &v.steps {
                    tr class="step" {
                        td { (s.kind) }
                        td { a href=(format!("/block/{}", s.height)) { (s.height) } }
                        td { (s.time) }
                        td { (s.signer) }
                        td { a href=(format!("/event/{}", s.event_id)) { code { (s.event_id.get(..16).unwrap_or(&s.event_id)) "…" } } }
                    }
                }
            }
        }
        h2 { "Proof" }
        p {
            "A proof bundle carries these signed events with their inclusion proofs, their blocks' commit "
            "certificates and every governance act that fixed the voters, so that it can be checked against "
            "the genesis alone."
        }
        form action=(format!("{href}/verify")) method="get" {
            button type="submit" id="verify" { "Verify the proof against the genesis" }
        }
        @if v.bundle_allowed {
            p { a id="bundle" href=(format!("{href}/proof")) download { "Download the proof bundle" }
                " and check it offline with " code { "kpledger verify-proof BUNDLE --genesis genesis.json" } "." }
        } @else {
            p class="redacted" { "The bundle carries the signed events in full: this identity may verify it here but not download it." }
        }
    };
    let mut csv = csv_line(&["kind", "height", "index", "block_time", "signer", "event_id"]);
    for s in &v.steps {
        csv.push_str(&csv_line(&[
            s.kind.clone(),
            s.height.to_string(),
            s.index.to_string(),
            s.time.clone(),
            s.signer.clone(),
            s.event_id.clone(),
        ]));
    }
    Page {
        title: format!("Certificate {}", v.number),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables: Vec::new(),
    }
}

/// What a verified bundle proves, as the verify action shows it.
pub fn verify_page(number: &CertificateNumber, outcome: &Result<kp_audit::proof::ProofReport, String>) -> Page {
    let href = certificate_href(number);
    let body = match outcome {
        Ok(r) => html! {
            p id="verdict" class="verified" role="status" { "Verified" }
            p { "The bundle for " a href=(href) { (number) } " was checked against the genesis "
                code { (r.genesis_hash) } " of chain " code { (r.chain_id) } ": every step below is in a block "
                "committed by all its required voters, whose set was derived from the genesis and the governance acts listed." }
            table id="proven" {
                caption { (r.steps.len()) " custody events proven committed" }
                thead { tr { th scope="col" { "Step" } th scope="col" { "Height" } th scope="col" { "Signed by" } th scope="col" { "Voters" } } }
                tbody {
                    @for s in &r.steps {
                        tr {
                            td { (s.kind) }
                            td { a href=(format!("/block/{}", s.height)) { (s.height) } }
                            td { (s.signer) }
                            td { (r.committed_by.iter().find(|(h, _)| *h == s.height).map_or(0, |(_, v)| v.len())) }
                        }
                    }
                }
            }
            p { (r.governance_acts.len()) " governance act(s) applied to derive the voters." }
            p class="caveat" { "Not proven: that no other event about " (number) " exists (a bundle can omit one)." }
        },
        Err(why) => html! {
            p id="verdict" class="failed" role="alert" { "Not verified" }
            p { (why) }
        },
    };
    Page {
        title: format!("Proof of {number}"),
        body,
        json: match outcome {
            Ok(r) => serde_json::json!({ "verified": true, "report": r }),
            Err(why) => serde_json::json!({ "verified": false, "reason": why }),
        },
        csv: None,
        tables: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Participant

/// A certificate in a participant's list; figures `None` when withheld from the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRow {
    pub number: CertificateNumber,
    pub role: TradeRole,
    pub counterpart: ParticipantId,
    pub issued_on: Date,
    pub state: String,
    pub carats: Option<Carats>,
    pub value: Option<UsdCents>,
    pub incidents: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueRow {
    pub number: CertificateNumber,
    pub role: TradeRole,
    pub counterpart: ParticipantId,
    pub issued_on: Date,
    pub days_outstanding: i64,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductionRow {
    pub period: String,
    pub reported: bool,
    /// `None`: not reported, or withheld from this caller.
    pub carats: Option<Carats>,
    pub value: Option<UsdCents>,
    pub event: Option<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantView {
    pub participant: ParticipantId,
    pub name: Option<String>,
    pub from: Date,
    pub to: Date,
    pub as_of: Date,
    pub status: Option<String>,
    pub genesis_status: Option<String>,
    pub governance: Vec<GovernanceEntry>,
    pub certificates: Vec<CertificateRow>,
    pub paging: Paging,
    pub states: Vec<(String, usize)>,
    /// Totals over the period (voided certificates left out); `None`: withheld from this caller.
    pub exports: Option<Flow>,
    pub imports: Option<Flow>,
    pub overdue: Vec<OverdueRow>,
    pub production: Vec<ProductionRow>,
}

/// A participant's report for `[from, to]` as `caller` may see it. `stats` are the statistics
/// of each year the period touches (for the production reports).
pub fn participant_view(
    review: &Review,
    report: &kp_review::ParticipantReport,
    stats: &[Stats],
    caller: &Caller,
    page: usize,
) -> Result<ParticipantView, PageError> {
    let p = report.participant;
    let rows: Vec<CertificateRow> = report
        .certificates
        .iter()
        .map(|c: &CertificateEntry| {
            let (exporter, importer) = match c.role {
                TradeRole::Exporter => (p, c.counterpart),
                TradeRole::Importer => (c.counterpart, p),
            };
            let sees = caller.sees(&certificate_concerns(exporter, importer, c.issued_on));
            CertificateRow {
                number: c.number.clone(),
                role: c.role,
                counterpart: c.counterpart,
                issued_on: c.issued_on,
                state: c.state.to_string(),
                carats: sees.then_some(c.carats),
                value: sees.then_some(c.value),
                incidents: sees.then(|| c.incidents.iter().map(ToString::to_string).collect()),
            }
        })
        .collect();
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for r in &rows {
        *states.entry(r.state.clone()).or_default() += 1;
    }
    let (certificates, paging) = paginate(&rows, page)?;
    let entitled = caller.sees_participant(p);
    let history = review.participant_histories().into_iter().find(|h| h.participant == p);
    let production = stats
        .iter()
        .filter_map(|s| s.participant(p))
        .flat_map(|ps| ps.production.iter())
        .map(|h: &ProductionHalf| {
            let start = h.period.days().0;
            let sees = caller.sees(&Concerns::Production { participant: p, start });
            ProductionRow {
                period: h.period.to_string(),
                reported: h.reported,
                carats: (sees && h.reported).then_some(h.carats),
                value: (sees && h.reported).then_some(h.value),
                event: h.event.map(|e| e.id),
            }
        })
        .collect();
    Ok(ParticipantView {
        participant: p,
        name: report.name.clone(),
        from: report.from,
        to: report.to,
        as_of: report.today,
        status: history.as_ref().and_then(|h| h.status.clone()),
        genesis_status: report.genesis_status.clone(),
        governance: report.governance.clone(),
        certificates,
        paging,
        states: states.into_iter().collect(),
        exports: entitled.then(|| report.exports.clone()),
        imports: entitled.then(|| report.imports.clone()),
        overdue: report
            .overdue
            .iter()
            .map(|o| OverdueRow {
                number: o.number.clone(),
                role: o.role,
                counterpart: o.counterpart,
                issued_on: o.issued_on,
                days_outstanding: o.days_outstanding,
                state: o.state.to_string(),
            })
            .collect(),
        production,
    })
}

/// A flow's rows as CSV: the total, then by HS code, by counterpart, and by both.
fn flow_csv(f: &Flow) -> String {
    let mut out = csv_line(&["hs_code", "counterpart", "certificates", "carats", "value_usd"]);
    let row = |hs: String, cp: String, a: &Amount| {
        csv_line(&[hs, cp, a.certificates.to_string(), decimal(a.carats.0), decimal(a.value.0)])
    };
    out.push_str(&row("all".into(), "all".into(), &f.total));
    for h in &f.by_hs_code {
        out.push_str(&row(h.hs_code.to_string(), "all".into(), &h.amount));
    }
    for c in &f.by_counterpart {
        out.push_str(&row("all".into(), c.counterpart.to_string(), &c.amount));
    }
    for c in &f.cells {
        out.push_str(&row(c.hs_code.to_string(), c.counterpart.to_string(), &c.amount));
    }
    out
}

fn flow_table(id: &str, title: &str, f: &Flow) -> Markup {
    if f.total.certificates == 0 {
        return html! { p id=(id) { (title) ": none in the period." } };
    }
    html! {
        table id=(id) {
            caption { (title) ": " (f.total.certificates) " certificate(s), " (decimal(f.total.carats.0)) " ct, USD " (decimal(f.total.value.0)) }
            thead { tr { th scope="col" { "By" } th scope="col" { "Certificates" } th scope="col" { "Carats" } th scope="col" { "USD" } } }
            tbody {
                @for h in &f.by_hs_code { tr { th scope="row" { "HS " (h.hs_code) } (amount_cells(&h.amount)) } }
                @for c in &f.by_counterpart { tr { th scope="row" { a href=(participant_href(c.counterpart)) { (c.counterpart) } } (amount_cells(&c.amount)) } }
            }
        }
    }
}

/// The periods a reviewer asks for most, relative to the ledger's day.
fn quick_periods(base: &str, as_of: Date) -> Markup {
    let year = as_of.year();
    let q = kp_review::Quarter::of(as_of);
    let last_q = if q.quarter == 1 {
        kp_review::Quarter { year: year - 1, quarter: 4 }
    } else {
        kp_review::Quarter { year, quarter: q.quarter - 1 }
    };
    html! {
        p class="periods" {
            "Period: "
            a href=(format!("{base}?quarter={last_q}")) { "last quarter (" (last_q) ")" } " · "
            a href=(format!("{base}?quarter={q}")) { "this quarter" } " · "
            a href=(format!("{base}?year={year}")) { (year) } " · "
            a href=(format!("{base}?year={}", year - 1)) { (year - 1) }
        }
    }
}

pub fn participant_page(v: &ParticipantView) -> Page {
    let base = participant_href(v.participant);
    let list_base = format!("{base}?from={}&to={}", v.from, v.to);
    let body = html! {
        (quick_periods(&base, v.as_of))
        form method="get" action=(base) class="period" {
            label for="from" { "From" } input id="from" name="from" type="date" value=(v.from);
            label for="to" { "to" } input id="to" name="to" type="date" value=(v.to);
            button type="submit" { "Show" }
        }
        dl class="facts" {
            dt { "Name" } dd { (v.name.as_deref().unwrap_or("(unknown)")) }
            dt { "Status" } dd id="status" { (v.status.as_deref().unwrap_or("not in the genesis")) }
            dt { "Period" } dd { (v.from) " to " (v.to) " (as of " (v.as_of) ")" }
            dt { "Certificates" } dd id="certificate-count" { (v.paging.total)
                @for (s, n) in &v.states { " · " (n) " " (s) } }
        }
        h2 { "Totals" }
        @match (&v.exports, &v.imports) {
            (Some(e), Some(i)) => { (flow_table("exports", "Exports", e)) (flow_table("imports", "Imports", i)) },
            _ => { p class="redacted" { "Totals by HS code and counterpart are withheld: this identity is not entitled to "
                (v.participant) "'s certificates. The quarterly totals are on the " a href="/statistics" { "statistics page" } "." } },
        }
        p { a href=(format!("/statistics?participant={}&year={}", v.participant, v.to.year())) { "Exports against production plus imports, " (v.to.year()) } }
        h2 { "Certificates" }
        table id="certificates" {
            caption { "Certificates issued or received, by issue date" }
            thead { tr { th scope="col" { "Number" } th scope="col" { "Role" } th scope="col" { "Counterpart" } th scope="col" { "Issued" }
                th scope="col" { "State" } th scope="col" { "Carats" } th scope="col" { "USD" } th scope="col" { "Incidents" } } }
            tbody {
                @for c in &v.certificates {
                    tr {
                        td { a href=(certificate_href(&c.number)) { (c.number) } }
                        td { (c.role) }
                        td { a href=(participant_href(c.counterpart)) { (c.counterpart) } }
                        td { (c.issued_on) }
                        td { (c.state) }
                        @match (&c.carats, &c.value, &c.incidents) {
                            (Some(ct), Some(usd), Some(inc)) => { td class="num" { (decimal(ct.0)) } td class="num" { (decimal(usd.0)) } td { (inc.join("; ")) } },
                            _ => { td class="redacted" colspan="3" { "withheld" } },
                        }
                    }
                }
            }
        }
        (pager(&v.paging, &list_base))
        h2 { "Awaiting receipt" }
        @if v.overdue.is_empty() { p { "Nothing overdue." } } @else {
            table id="overdue" {
                caption { (v.overdue.len()) " certificates not received long after issue" }
                thead { tr { th scope="col" { "Number" } th scope="col" { "Role" } th scope="col" { "Counterpart" } th scope="col" { "Issued" } th scope="col" { "Days" } th scope="col" { "State" } } }
                tbody { @for o in &v.overdue { tr {
                    td { a href=(certificate_href(&o.number)) { (o.number) } } td { (o.role) }
                    td { a href=(participant_href(o.counterpart)) { (o.counterpart) } } td { (o.issued_on) }
                    td class="num" { (o.days_outstanding) } td { (o.state) } } } }
            }
        }
        h2 { "Production reports" }
        table id="production" {
            thead { tr { th scope="col" { "Half-year" } th scope="col" { "Reported" } th scope="col" { "Carats" } th scope="col" { "USD" } th scope="col" { "Event" } } }
            tbody { @for r in &v.production { tr {
                td { (r.period) } td { @if r.reported { "yes" } @else { "no" } }
                td class="num" { @if let Some(c) = r.carats { (decimal(c.0)) } @else if r.reported { span class="redacted" { "withheld" } } }
                td class="num" { @if let Some(c) = r.value { (decimal(c.0)) } }
                td { @if let Some(e) = &r.event { a href=(event_href(e)) { code { (e.short()) } } } }
            } } }
        }
        h2 { "Governance history" }
        p { "Status at genesis: " (v.genesis_status.as_deref().unwrap_or("not in the genesis")) }
        @if !v.governance.is_empty() {
            ul { @for g in &v.governance { li { (g.event.time) ": " (g.action) " → " (g.status)
                @if !g.zones.is_empty() { " (zones " (g.zones.join(", ")) ")" }
                " — " a href=(event_href(&g.event.id)) { "event" } } } }
        }
    };
    let mut csv =
        csv_line(&["number", "role", "counterpart", "issued_on", "state", "carats", "value_usd", "incidents"]);
    for c in &v.certificates {
        csv.push_str(&csv_line(&[
            c.number.to_string(),
            c.role.to_string(),
            c.counterpart.to_string(),
            c.issued_on.to_string(),
            c.state.clone(),
            c.carats.map(|x| decimal(x.0)).unwrap_or_default(),
            c.value.map(|x| decimal(x.0)).unwrap_or_default(),
            c.incidents.as_ref().map(|i| i.join(";")).unwrap_or_default(),
        ]));
    }
    let mut tables = Vec::new();
    for (name, flow) in [("exports", &v.exports), ("imports", &v.imports)] {
        if let Some(f) = flow {
            tables.push((name, flow_csv(f)));
        }
    }
    let mut overdue = csv_line(&["number", "role", "counterpart", "issued_on", "days_outstanding", "state"]);
    for o in &v.overdue {
        overdue.push_str(&csv_line(&[
            o.number.to_string(),
            o.role.to_string(),
            o.counterpart.to_string(),
            o.issued_on.to_string(),
            o.days_outstanding.to_string(),
            o.state.clone(),
        ]));
    }
    tables.push(("overdue", overdue));
    let mut production = csv_line(&["half_year", "reported", "carats", "value_usd", "event_id"]);
    for r in &v.production {
        production.push_str(&csv_line(&[
            r.period.clone(),
            r.reported.to_string(),
            r.carats.map(|c| decimal(c.0)).unwrap_or_default(),
            r.value.map(|c| decimal(c.0)).unwrap_or_default(),
            r.event.map(|e| e.to_hex()).unwrap_or_default(),
        ]));
    }
    tables.push(("production", production));
    Page {
        title: format!("{} {}", v.participant, v.name.as_deref().unwrap_or("")),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables,
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsRow {
    pub participant: ParticipantId,
    pub name: Option<String>,
    /// Q1 to Q4.
    pub exports: Vec<Amount>,
    pub imports: Vec<Amount>,
    /// H1 and H2 (carats; 0 when not reported).
    pub production: Vec<Carats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsView {
    pub year: i32,
    pub world: Vec<WorldQuarter>,
    pub world_production: Vec<Carats>,
    pub participants: Vec<StatsRow>,
    pub chart_of: Option<ParticipantId>,
    #[serde(skip)]
    pub chart_svg: Option<String>,
}

/// The year's statistics: quarterly totals per participant (the figures the KP publishes), and
/// the chart of one participant's exports against its production plus imports.
pub fn stats_view(stats: &Stats, chart_of: Option<ParticipantId>) -> StatsView {
    let participants = stats
        .participants
        .iter()
        .map(|ps| StatsRow {
            participant: ps.participant,
            name: ps.name.clone(),
            exports: (1..=4).map(|q| ps.quarter(q).map(|s| s.exports.total).unwrap_or_default()).collect(),
            imports: (1..=4).map(|q| ps.quarter(q).map(|s| s.imports.total).unwrap_or_default()).collect(),
            production: (1..=2).map(|h| ps.half(h).map_or(Carats(0), |p| p.carats)).collect(),
        })
        .collect();
    StatsView {
        year: stats.year,
        world: stats.world.clone(),
        world_production: stats.world_production.iter().map(|p| p.carats).collect(),
        participants,
        chart_of,
        chart_svg: chart_of.map(|p| kp_review::chart_svg(stats, p)),
    }
}

pub fn stats_page(v: &StatsView, participants: &[ParticipantId]) -> Page {
    let body = html! {
        form method="get" action="/statistics" class="period" {
            label for="year" { "Year" } input id="year" name="year" type="number" min="1990" max="9999" value=(v.year);
            label for="participant" { "Chart of" }
            select id="participant" name="participant" {
                option value="" { "(none)" }
                @for p in participants { option value=(p) selected[v.chart_of == Some(*p)] { (p) } }
            }
            button type="submit" { "Show" }
        }
        @if let (Some(p), Some(svg)) = (v.chart_of, &v.chart_svg) {
            h2 { "Exports against production plus imports: " a href=(participant_href(p)) { (p) } ", " (v.year) }
            figure id="chart" { (PreEscaped(svg)) figcaption { "Per quarter; exports above production plus imports is the pattern the KP looks into." } }
        }
        h2 { "World, " (v.year) }
        table id="world" {
            thead { tr { th scope="col" { "Quarter" } th scope="col" { "Certificates" } th scope="col" { "Carats" } th scope="col" { "USD" } } }
            tbody { @for w in &v.world { tr { th scope="row" { (w.quarter) } (amount_cells(&w.exports)) } } }
        }
        p { "World production: H1 " (decimal(v.world_production.first().map_or(0, |c| c.0))) " ct, H2 "
            (decimal(v.world_production.get(1).map_or(0, |c| c.0))) " ct." }
        h2 { "Participants (Annex III: quarterly exports and imports, semi-annual production)" }
        table id="participants" {
            caption { "Carats per quarter; voided certificates excluded" }
            thead { tr { th scope="col" { "Participant" }
                @for q in 1..=4 { th scope="col" { "Exports Q" (q) } } @for q in 1..=4 { th scope="col" { "Imports Q" (q) } }
                th scope="col" { "Production H1" } th scope="col" { "Production H2" } } }
            tbody { @for r in &v.participants { tr {
                th scope="row" { a href=(participant_href(r.participant)) { (r.participant) } " "
                    a href=(format!("/statistics?year={}&participant={}", v.year, r.participant)) { "chart" } }
                @for a in &r.exports { td class="num" { (decimal(a.carats.0)) } }
                @for a in &r.imports { td class="num" { (decimal(a.carats.0)) } }
                @for c in &r.production { td class="num" { (decimal(c.0)) } }
            } } }
        }
    };
    let mut header = vec!["participant".to_owned()];
    for dir in ["exports", "imports"] {
        for q in 1..=4 {
            header.push(format!("{dir}_q{q}_certificates"));
            header.push(format!("{dir}_q{q}_carats"));
            header.push(format!("{dir}_q{q}_value_usd"));
        }
    }
    header.extend(["production_h1_carats".to_owned(), "production_h2_carats".to_owned()]);
    let mut csv = csv_line(&header);
    for r in &v.participants {
        let mut f = vec![r.participant.to_string()];
        for a in r.exports.iter().chain(&r.imports) {
            f.extend([a.certificates.to_string(), decimal(a.carats.0), decimal(a.value.0)]);
        }
        f.extend(r.production.iter().map(|c| decimal(c.0)));
        csv.push_str(&csv_line(&f));
    }
    let mut world = csv_line(&["quarter", "certificates", "carats", "value_usd"]);
    for w in &v.world {
        world.push_str(&csv_line(&[
            w.quarter.to_string(),
            w.exports.certificates.to_string(),
            decimal(w.exports.carats.0),
            decimal(w.exports.value.0),
        ]));
    }
    Page {
        title: format!("Statistics {}", v.year),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables: vec![("world", world)],
    }
}

// ---------------------------------------------------------------------------------------------
// Anomalies

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyRow {
    pub kind: AnomalyKind,
    pub participant: ParticipantId,
    pub counterpart: Option<ParticipantId>,
    pub certificate: Option<CertificateNumber>,
    pub period: String,
    /// `None`: withheld from this caller (it cites the certificate's figures).
    pub explanation: Option<String>,
    pub event_ids: Vec<EventId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomaliesView {
    pub as_of: Date,
    pub kind: Option<AnomalyKind>,
    pub participant: Option<ParticipantId>,
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub counts: Vec<(AnomalyKind, usize)>,
    pub anomalies: Vec<AnomalyRow>,
    pub paging: Paging,
}

/// The findings as `caller` may see them, filtered by kind and participant (the period was the
/// review's own parameter).
#[allow(clippy::too_many_arguments)]
pub fn anomalies_view(
    review: &Review,
    all: &[Anomaly],
    caller: &Caller,
    kind: Option<AnomalyKind>,
    participant: Option<ParticipantId>,
    from: Option<Date>,
    to: Option<Date>,
    page: usize,
) -> Result<AnomaliesView, PageError> {
    let today = review.as_of();
    let chosen: Vec<&Anomaly> = all
        .iter()
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .filter(|a| participant.is_none_or(|p| a.participant == p || a.counterpart == Some(p)))
        .collect();
    let counts = AnomalyKind::ALL.iter().map(|k| (*k, chosen.iter().filter(|a| a.kind == *k).count())).collect();
    let (shown, paging) = paginate(&chosen, page)?;
    // Who may read a finding's explanation is looked up for the page's rows only.
    let anomalies = shown
        .into_iter()
        .map(|a| {
            let sees = match &a.certificate {
                None => true,
                Some(n) => review.certificate(n, today).is_some_and(|c| {
                    let exporter = review.exporter_of(n).unwrap_or(c.counterpart);
                    caller.sees(&certificate_concerns(exporter, c.counterpart, c.issued_on))
                }),
            };
            AnomalyRow {
                kind: a.kind,
                participant: a.participant,
                counterpart: a.counterpart,
                certificate: a.certificate.clone(),
                period: a.period.to_string(),
                explanation: sees.then(|| a.explanation.clone()),
                event_ids: a.event_ids.clone(),
            }
        })
        .collect();
    Ok(AnomaliesView { as_of: today, kind, participant, from, to, counts, anomalies, paging })
}

pub fn anomalies_page(v: &AnomaliesView, participants: &[ParticipantId]) -> Page {
    let mut base = "/anomalies?".to_owned();
    if let Some(k) = v.kind {
        base.push_str(&format!("kind={k}&"));
    }
    if let Some(p) = v.participant {
        base.push_str(&format!("participant={p}&"));
    }
    if let Some(d) = v.from {
        base.push_str(&format!("from={d}&"));
    }
    if let Some(d) = v.to {
        base.push_str(&format!("to={d}&"));
    }
    let base = base.trim_end_matches(['&', '?']).to_owned();
    let body = html! {
        form method="get" action="/anomalies" class="period" {
            label for="kind" { "Kind" }
            select id="kind" name="kind" { option value="" { "(all)" }
                @for k in AnomalyKind::ALL { option value=(k) selected[v.kind == Some(k)] { (k) } } }
            label for="participant" { "Participant" }
            select id="participant" name="participant" { option value="" { "(all)" }
                @for p in participants { option value=(p) selected[v.participant == Some(*p)] { (p) } } }
            label for="from" { "Issued from" } input id="from" name="from" type="date" value=[v.from];
            label for="to" { "to" } input id="to" name="to" type="date" value=[v.to];
            button type="submit" { "Filter" }
        }
        p { "As of " (v.as_of) " (the last block's consensus time): "
            @for (i, (k, n)) in v.counts.iter().enumerate() { @if i > 0 { ", " } (n) " " (k) } "." }
        table id="anomalies" {
            caption { (v.paging.total) " findings" }
            thead { tr { th scope="col" { "Kind" } th scope="col" { "Participant" } th scope="col" { "Counterpart" } th scope="col" { "Certificate" }
                th scope="col" { "Period" } th scope="col" { "Why" } th scope="col" { "Evidence" } } }
            tbody { @for a in &v.anomalies { tr class="anomaly" data-kind=(a.kind) {
                td { (a.kind) }
                td { a href=(participant_href(a.participant)) { (a.participant) } }
                td { @if let Some(c) = a.counterpart { a href=(participant_href(c)) { (c) } } }
                td { @if let Some(n) = &a.certificate { a href=(certificate_href(n)) { (n) } } }
                td { (a.period) }
                td { @if let Some(e) = &a.explanation { (e) } @else { span class="redacted" { "withheld (cites the certificate's figures)" } } }
                td { @for (i, id) in a.event_ids.iter().enumerate() { @if i > 0 { " " } a href=(event_href(id)) { code { (id.short()) } } } }
            } } }
        }
        (pager(&v.paging, &base))
    };
    let mut csv =
        csv_line(&["kind", "participant", "counterpart", "certificate", "period", "explanation", "event_ids"]);
    for a in &v.anomalies {
        csv.push_str(&csv_line(&[
            a.kind.to_string(),
            a.participant.to_string(),
            a.counterpart.map(|c| c.to_string()).unwrap_or_default(),
            a.certificate.as_ref().map(ToString::to_string).unwrap_or_default(),
            a.period.clone(),
            a.explanation.clone().unwrap_or_default(),
            a.event_ids.iter().map(EventId::to_hex).collect::<Vec<_>>().join(" "),
        ]));
    }
    Page {
        title: "Anomalies".into(),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Network

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockSummary {
    pub height: u64,
    pub hash: String,
    pub time: String,
    pub time_ms: u64,
    pub proposer: String,
    pub events: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkView {
    pub chain_id: String,
    pub genesis_hash: String,
    pub height: u64,
    pub head_hash: String,
    pub head_time: String,
    pub round: u32,
    pub node_of: Option<String>,
    /// Voters the current round is waiting for (under unanimity, any one halts the chain).
    pub waiting_for: Vec<String>,
    /// Seconds since the head block was made.
    pub seconds_since_head: u64,
    /// Blocks per hour over the recent blocks shown.
    pub blocks_per_hour: Option<u64>,
    pub committed_events: u64,
    pub pending_events: u64,
    pub voters: Vec<String>,
    pub recent: Vec<BlockSummary>,
    pub participants: Vec<ParticipantHistory>,
    /// Height the explorer's review model has read to.
    pub indexed_height: u64,
}

pub fn network_page(v: &NetworkView) -> Page {
    let body = html! {
        @if !v.waiting_for.is_empty() {
            section class="alert" role="alert" id="waiting" {
                h2 { "Waiting for " (v.waiting_for.join(", ")) }
                p { "Every active participant signs every block: the round under way (round " (v.round) ") waits for "
                    (v.waiting_for.len()) " voter(s); the last block was made " (v.seconds_since_head) " s ago." }
            }
        }
        dl class="facts" {
            dt { "Chain" } dd id="chain" { code { (v.chain_id) } }
            dt { "Genesis hash" } dd { code { (v.genesis_hash) } }
            dt { "Height" } dd id="height" { a href=(format!("/block/{}", v.height)) { (v.height) } }
            dt { "Head" } dd { code { (v.head_hash) } " at " (v.head_time) " (" (v.seconds_since_head) " s ago)" }
            dt { "Block rate" } dd { @if let Some(r) = v.blocks_per_hour { (r) " blocks per hour" } @else { "—" } }
            dt { "Events" } dd { (v.committed_events) " committed, " (v.pending_events) " pending on this node" }
            dt { "This node" } dd { (v.node_of.as_deref().unwrap_or("an observer's")) }
            dt { "Voters" } dd { (v.voters.len()) ": " (v.voters.join(" ")) }
            dt { "Explorer index" } dd { "read to height " (v.indexed_height) }
        }
        h2 { "Latest blocks" }
        table id="recent" {
            thead { tr { th scope="col" { "Height" } th scope="col" { "Time" } th scope="col" { "Proposer" } th scope="col" { "Events" } } }
            tbody { @for b in &v.recent { tr { td { a href=(format!("/block/{}", b.height)) { (b.height) } } td { (b.time) } td { (b.proposer) } td class="num" { (b.events) } } } }
        }
        h2 { "Participants" }
        table id="participants" {
            caption { (v.participants.len()) " participants and their status over time" }
            thead { tr { th scope="col" { "Participant" } th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "History" } } }
            tbody { @for p in &v.participants { tr {
                th scope="row" { a href=(participant_href(p.participant)) { (p.participant) } }
                td { (p.name.as_deref().unwrap_or("")) }
                td { (p.status.as_deref().unwrap_or("")) }
                td { (p.genesis_status.as_deref().unwrap_or("admitted")) " at genesis"
                    @for g in &p.governance { "; " a href=(event_href(&g.event.id)) { (g.action) } " → " (g.status) " (" (g.event.time) ")" } }
            } } }
        }
    };
    let mut csv = csv_line(&["participant", "name", "status", "genesis_status", "changes"]);
    for p in &v.participants {
        csv.push_str(&csv_line(&[
            p.participant.to_string(),
            p.name.clone().unwrap_or_default(),
            p.status.clone().unwrap_or_default(),
            p.genesis_status.clone().unwrap_or_default(),
            p.governance
                .iter()
                .map(|g| format!("{} {} {}", g.event.time, g.action, g.status))
                .collect::<Vec<_>>()
                .join(";"),
        ]));
    }
    let recent = blocks_csv(&v.recent);
    Page {
        title: "Network".into(),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables: vec![("blocks", recent)],
    }
}

// ---------------------------------------------------------------------------------------------
// Blocks and events

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockEvent {
    pub index: u32,
    pub event_id: String,
    pub kind: String,
    pub certificate: Option<CertificateNumber>,
    /// Whether the caller sees the event in full (its page then shows the fields).
    pub full: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockView {
    pub height: u64,
    pub hash: String,
    pub prev_hash: String,
    pub time: String,
    pub round: u32,
    pub proposer: String,
    pub events_root: String,
    pub state_root: String,
    pub events: Vec<BlockEvent>,
    pub paging: Paging,
    /// The voters whose precommits committed the block.
    pub signers: Vec<String>,
    /// A withheld voter whose prevote stands in for its precommit.
    pub withheld: Option<String>,
    pub head: u64,
}

pub fn block_page(v: &BlockView) -> Page {
    let body = html! {
        nav class="pager" aria-label="Blocks" {
            @if v.height > 1 { a rel="prev" href=(format!("/block/{}", v.height - 1)) { "← block " (v.height - 1) } " " }
            @if v.height < v.head { a rel="next" href=(format!("/block/{}", v.height + 1)) { "block " (v.height + 1) " →" } }
        }
        dl class="facts" {
            dt { "Hash" } dd { code { (v.hash) } }
            dt { "Parent" } dd { code { (v.prev_hash) } }
            dt { "Time" } dd { (v.time) }
            dt { "Round" } dd { (v.round) }
            dt { "Proposer" } dd { (v.proposer) }
            dt { "Events root" } dd { code { (v.events_root) } }
            dt { "State root" } dd { code { (v.state_root) } }
        }
        h2 { "Commit certificate" }
        p id="signers" { "Signed by " (v.signers.len()) " voters: " (v.signers.join(" "))
            @if let Some(w) = &v.withheld { "; " (w) "'s precommit was withheld, its prevote stands in" } }
        h2 { "Events" }
        table id="events" {
            caption { (v.paging.total) " events" }
            thead { tr { th scope="col" { "#" } th scope="col" { "Kind" } th scope="col" { "Certificate" } th scope="col" { "Event" } } }
            tbody { @for e in &v.events { tr {
                td class="num" { (e.index) } td { (e.kind) }
                td { @if let Some(n) = &e.certificate { a href=(certificate_href(n)) { (n) } } }
                td { a href=(format!("/event/{}", e.event_id)) { code { (e.event_id.get(..16).unwrap_or(&e.event_id)) "…" } } }
            } } }
        }
        (pager(&v.paging, &format!("/block/{}", v.height)))
    };
    let mut csv = csv_line(&["index", "kind", "certificate", "event_id"]);
    for e in &v.events {
        csv.push_str(&csv_line(&[
            e.index.to_string(),
            e.kind.clone(),
            e.certificate.as_ref().map(ToString::to_string).unwrap_or_default(),
            e.event_id.clone(),
        ]));
    }
    Page {
        title: format!("Block {}", v.height),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables: Vec::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlocksView {
    pub head: u64,
    pub blocks: Vec<BlockSummary>,
    /// The height to continue from (older blocks), if any.
    pub older: Option<u64>,
}

/// Block summaries as CSV (the network page's latest blocks, the blocks page).
fn blocks_csv(blocks: &[BlockSummary]) -> String {
    let mut csv = csv_line(&["height", "time", "proposer", "events", "hash"]);
    for b in blocks {
        csv.push_str(&csv_line(&[
            b.height.to_string(),
            b.time.clone(),
            b.proposer.clone(),
            b.events.to_string(),
            b.hash.clone(),
        ]));
    }
    csv
}

pub fn blocks_page(v: &BlocksView) -> Page {
    let body = html! {
        table id="blocks" {
            caption { "Blocks, newest first (head " (v.head) ")" }
            thead { tr { th scope="col" { "Height" } th scope="col" { "Time" } th scope="col" { "Proposer" } th scope="col" { "Events" } th scope="col" { "Hash" } } }
            tbody { @for b in &v.blocks { tr {
                td { a href=(format!("/block/{}", b.height)) { (b.height) } } td { (b.time) } td { (b.proposer) }
                td class="num" { (b.events) } td { code { (b.hash.get(..16).unwrap_or(&b.hash)) "…" } }
            } } }
        }
        @if let Some(o) = v.older { nav class="pager" aria-label="Blocks" { a rel="next" href=(format!("/blocks?before={o}")) { "older blocks →" } } }
    };
    let csv = blocks_csv(&v.blocks);
    Page {
        title: "Blocks".into(),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: Some(csv),
        tables: Vec::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventView {
    pub event_id: String,
    pub kind: String,
    pub height: u64,
    pub index: u32,
    pub time: String,
    pub certificate: Option<CertificateNumber>,
    pub signer: String,
    /// The decoded payload, for a caller who sees the event in full.
    pub content: Option<String>,
}

pub fn event_page(v: &EventView) -> Page {
    let body = html! {
        dl class="facts" {
            dt { "Kind" } dd id="kind" { (v.kind) }
            dt { "Block" } dd { a href=(format!("/block/{}", v.height)) { (v.height) } ", event " (v.index) " (" (v.time) ")" }
            @if let Some(n) = &v.certificate { dt { "Certificate" } dd { a href=(certificate_href(n)) { (n) } } }
            dt { "Signed by" } dd { (v.signer) }
            dt { "Id" } dd { code { (v.event_id) } }
        }
        @if let Some(c) = &v.content { h2 { "Content" } pre { (c) } }
        @else { p class="redacted" { "The event's signed bytes are withheld from this identity: its kind, certificate and signer are shown, not its fields." } }
    };
    Page {
        title: format!("Event {}", v.event_id.get(..16).unwrap_or(&v.event_id)),
        body,
        json: serde_json::to_value(v).unwrap_or_default(),
        csv: None,
        tables: Vec::new(),
    }
}

/// The explorer's style sheet, embedded in the binary.
pub const CSS: &str = r#"
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0b5cad; --alert: #8a1c1c; font-family: system-ui, sans-serif; color: var(--fg); }
body { margin: 0 auto; max-width: 80rem; padding: 0 1rem 2rem; line-height: 1.4; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; justify-content: space-between; border-bottom: 1px solid var(--line); padding: .5rem 0; }
nav ul { list-style: none; display: flex; gap: 1rem; margin: 0; padding: 0; }
a { color: var(--accent); } a:focus, button:focus, input:focus, select:focus { outline: 3px solid #f0b400; outline-offset: 1px; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.redacted { color: var(--muted); font-style: italic; }
.alert { border: 2px solid var(--alert); padding: .5rem 1rem; margin: 1rem 0; } .alert h2 { color: var(--alert); margin: 0; }
.error { color: var(--alert); font-weight: bold; }
#verdict.verified { color: #116329; font-weight: bold; font-size: 1.3rem; } #verdict.failed { color: var(--alert); font-weight: bold; font-size: 1.3rem; }
form.period { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .5rem 0; }
figure svg { max-width: 100%; height: auto; }
footer { border-top: 1px solid var(--line); margin-top: 2rem; color: var(--muted); }
"#;
