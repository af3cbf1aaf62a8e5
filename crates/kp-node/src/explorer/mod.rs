//! The web explorer: a read-only site for review-visit teams and statisticians, served by the
//! node on an address of its own (`explorer = "127.0.0.1:PORT"`; off unless set, loopback only).
//!
//! Pages (each with a JSON twin, `?format=json`, and its main table as CSV, `?format=csv`):
//! `/` the network (who the round waits for first), `/blocks` and `/block/{height}`,
//! `/event/{id}`, `/certificate/{number}` (custody timeline, `/verify` checks its proof bundle
//! against the genesis, `/proof` downloads it), `/participant/{code}` (a period's report),
//! `/statistics`, `/anomalies`, `/search?q=`.
//!
//! **What a page shows is decided by one caller identity** ([`crate::access::Caller`], the
//! API's): `explorer_role` in the configuration (`kp-ledger:observer`, `kp-ledger:reviewer:CD`...),
//! by default the node's own participant's authority, or an observer on an observer's node.
//! The same `Caller::sees` rules as the API's redact certificates' figures, production reports
//! and events; aggregates per participant and quarter (what the KP publishes) are shown to every
//! caller with `read-ledger`.
//!
//! **Cost per request does not grow with the ledger**: pages read the store by key (a block, an
//! event, a certificate's custody index) or the review model (`kp_review::Review`), which a task
//! keeps up to date as blocks commit. Reports, statistics and anomalies over the whole model are
//! computed at most once per committed height and query, and at most once per [`MEMO_FRESH`] while
//! blocks keep committing (the page then says at which height), and kept ([`MEMO_ENTRIES`]); every list is
//! paginated ([`views::PAGE_SIZE`]).
//!
//! Bad input (an unknown certificate, a malformed id, a height past the head, a page past the
//! last, an unknown parameter) gets a 400 or 404 page that says what is wrong. The site has no
//! JavaScript, no external resource, a strict content security policy, and answers only requests
//! whose `Host` is an IP address or `localhost` (a DNS-rebinding page cannot read it).

pub mod views;

use crate::access::{Caller, Right, Role};
use crate::core::Core;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use kp_domain::{CertificateNumber, Date, EventId, Genesis, ParticipantId};
use kp_review::{AnomalyKind, AnomalyParams, Review};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use views::{Page, PageError};

/// Results of whole-model computations kept (per query and committed height).
pub const MEMO_ENTRIES: usize = 32;
/// Explorer requests in progress at once; more wait.
pub const MAX_PAGES_IN_PROGRESS: usize = 8;
/// How long a kept result of an earlier height is served instead of computing it again.
pub const MEMO_FRESH: std::time::Duration = std::time::Duration::from_secs(10);
/// Blocks read from the store per step of the index task (one lock of the core each).
const INDEX_BATCH: usize = 64;
/// Bytes of blocks read per step of the index task.
const INDEX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Blocks on the network page, for the block rate.
const RECENT_BLOCKS: u64 = 10;
/// Most years one participant page spans.
const MAX_YEARS: i32 = 10;

/// The review model and how far it has read.
#[derive(Debug)]
struct Index {
    review: Review,
    height: u64,
    /// Reached the store's head once: until then, pages over the model answer 503.
    caught_up: bool,
    undecodable: u64,
}

type Memoized = Arc<dyn std::any::Any + Send + Sync>;

/// A whole-model result kept: its query, the height it was computed at, when, and the value.
struct Kept {
    key: String,
    height: u64,
    at: std::time::Instant,
    value: Memoized,
}

/// The explorer's state, shared by its handlers and its index task.
pub struct Explorer {
    core: Arc<Mutex<Core>>,
    genesis: Genesis,
    caller: Caller,
    index: RwLock<Index>,
    memo: Mutex<VecDeque<Kept>>,
}

impl std::fmt::Debug for Explorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explorer").field("caller", &self.caller).finish_non_exhaustive()
    }
}

/// The caller identity the explorer shows pages to: the configured role, or the node's own
/// participant's authority (an observer on an observer's node).
pub fn default_caller(role: Option<Role>, me: Option<ParticipantId>) -> Caller {
    let role = role.unwrap_or(match me {
        Some(p) => Role::Authority(p),
        None => Role::Observer,
    });
    Caller { role, name: "explorer".into(), refused: None }
}

impl Explorer {
    pub fn new(core: Arc<Mutex<Core>>, genesis: Genesis, caller: Caller) -> Arc<Explorer> {
        let review = Review::new(&genesis);
        Arc::new(Explorer {
            core,
            genesis,
            caller,
            index: RwLock::new(Index { review, height: 0, caught_up: false, undecodable: 0 }),
            memo: Mutex::new(VecDeque::new()),
        })
    }

    fn core(&self) -> Result<std::sync::MutexGuard<'_, Core>, PageError> {
        self.core.lock().map_err(|_| PageError::internal("the node's core failed earlier; restart the node"))
    }

    fn index(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>, PageError> {
        self.index.read().map_err(|_| PageError::internal("the explorer's index failed earlier; restart the node"))
    }

    /// The review model, once it has read the ledger up to the head it found.
    fn review(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>, PageError> {
        let idx = self.index()?;
        if !idx.caught_up {
            let head = self.core()?.store().head().height;
            return Err(PageError::unavailable(format!(
                "the explorer is still reading the ledger (block {} of {head}); try again shortly",
                idx.height
            )));
        }
        Ok(idx)
    }

    /// Reads the next blocks into the review model; `true` while the store has more.
    pub fn index_step(&self) -> Result<bool, String> {
        let from = self.index.read().map_err(|_| "index poisoned".to_owned())?.height + 1;
        let (blocks, head) = {
            let core = self.core.lock().map_err(|_| "the node's core failed".to_owned())?;
            let store = core.store();
            (store.blocks(from, INDEX_BATCH, INDEX_BATCH_BYTES).map_err(|e| e.to_string())?, store.head().height)
        };
        // Decoded before the model is locked for writing: pages go on being served meanwhile.
        let mut decoded = Vec::with_capacity(blocks.len());
        let mut undecodable = 0u64;
        for b in &blocks {
            let h = b.block.header();
            let events: Vec<_> = b
                .block
                .events()
                .iter()
                .filter_map(|e| kp_proto::decode_event(e).map_err(|_| undecodable += 1).ok())
                .collect();
            decoded.push((h.height, h.time, events));
        }
        let mut idx = self.index.write().map_err(|_| "index poisoned".to_owned())?;
        idx.undecodable += undecodable;
        for (height, time, events) in decoded {
            if height != idx.height + 1 {
                return Err(format!("the store gave block {height} after {}", idx.height));
            }
            idx.review.note_block(time);
            for e in &events {
                idx.review.add(kp_review::Committed { height, time, id: e.id(), payload: e.payload() });
            }
            idx.height = height;
        }
        if idx.height >= head {
            idx.caught_up = true;
        }
        Ok(idx.height < head)
    }

    /// A whole-model computation, at most once per query and committed height, and at most
    /// once per [`MEMO_FRESH`] for one query while blocks keep committing (a result of an
    /// earlier height that young is served, and says so). Returns the value and its height.
    fn memo<T: Send + Sync + 'static>(&self, key: String, height: u64, f: impl FnOnce() -> T) -> (Arc<T>, u64) {
        if let Ok(memo) = self.memo.lock()
            && let Some(k) = memo.iter().find(|k| k.key == key && (k.height == height || k.at.elapsed() < MEMO_FRESH))
            && let Ok(v) = Arc::clone(&k.value).downcast::<T>()
        {
            return (v, k.height);
        }
        let value = Arc::new(f());
        if let Ok(mut memo) = self.memo.lock() {
            memo.retain(|k| k.key != key);
            if memo.len() >= MEMO_ENTRIES {
                memo.pop_front();
            }
            memo.push_back(Kept { key, height, at: std::time::Instant::now(), value: Arc::clone(&value) as Memoized });
        }
        (value, height)
    }

    fn check(&self, right: Right) -> Result<(), PageError> {
        self.caller.check(right, "the explorer").map_err(|s| PageError::forbidden(s.message().to_owned()))
    }
}

/// Keeps the review model up to date: reads the ledger, then each block as it commits.
/// Ends when the node stops.
pub async fn index_task(
    explorer: Arc<Explorer>,
    mut commits: tokio::sync::broadcast::Receiver<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        loop {
            let x = Arc::clone(&explorer);
            match tokio::task::spawn_blocking(move || x.index_step()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => break,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "explorer: reading the ledger failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "explorer: the index task failed");
                    return;
                }
            }
        }
        tokio::select! {
            r = commits.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The explorer's routes.
pub fn router(explorer: Arc<Explorer>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(network))
        .route("/blocks", get(blocks))
        .route("/block/{height}", get(block))
        .route("/event/{id}", get(event))
        .route("/certificate/{number}", get(certificate))
        .route("/certificate/{number}/verify", get(verify))
        .route("/certificate/{number}/proof", get(proof))
        .route("/participant/{code}", get(participant))
        .route("/statistics", get(statistics))
        .route("/anomalies", get(anomalies))
        .route("/search", get(search))
        .route("/static/explorer.css", get(css))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(guard))
        // Pages are built on blocking threads and some cost a whole-model computation: at most
        // this many at once, the others wait their turn (the node's consensus shares the CPU).
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(MAX_PAGES_IN_PROGRESS))
        .with_state(explorer)
}

/// Serves the explorer on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    explorer: Arc<Explorer>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(explorer))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// Refuses a request whose `Host` is a name other than `localhost` (DNS rebinding), and adds the
/// security headers to every answer.
async fn guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !host_allowed(host) {
        let e = PageError {
            status: 421,
            title: "Wrong host",
            message: format!("this explorer answers requests to an IP address or localhost, not to {host:?}"),
        };
        return error_response(&e, Format::Html, "explorer");
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn host_allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
    Csv,
}

/// A request's query, checked: known parameters only, and the format.
struct Params {
    map: BTreeMap<String, String>,
    format: Format,
    /// Which of the page's tables a CSV export is (its main one by default).
    table: Option<String>,
}

type QueryResult = Result<Query<BTreeMap<String, String>>, axum::extract::rejection::QueryRejection>;

impl Params {
    fn parse(query: QueryResult, allowed: &[&str]) -> Result<Params, (PageError, Format)> {
        let Query(mut map) =
            query.map_err(|e| (PageError::bad_request(format!("the query string: {e}")), Format::Html))?;
        let format = match map.remove("format").as_deref() {
            None | Some("html") => Format::Html,
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(other) => {
                return Err((PageError::bad_request(format!("format {other:?}: html, json or csv")), Format::Html));
            }
        };
        let table = map.remove("table").filter(|t| !t.is_empty());
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let known = if allowed.is_empty() { "none but format".to_owned() } else { allowed.join(", ") };
            return Err((PageError::bad_request(format!("unknown parameter {k:?} (this page takes {known})")), format));
        }
        Ok(Params { map, format, table })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn page(&self) -> Result<usize, PageError> {
        match self.get("page") {
            None => Ok(1),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| PageError::bad_request(format!("page {s:?}: a whole number from 1"))),
        }
    }

    fn date(&self, key: &str) -> Result<Option<Date>, PageError> {
        self.get(key)
            .map(|s| Date::parse(s).map_err(|e| PageError::bad_request(format!("{key} {s:?}: {e} (YYYY-MM-DD)"))))
            .transpose()
    }

    fn year(&self) -> Result<Option<i32>, PageError> {
        self.get("year")
            .map(|s| {
                s.parse::<i32>()
                    .ok()
                    .filter(|y| (1990..=9999).contains(y))
                    .ok_or_else(|| PageError::bad_request(format!("year {s:?}: a year from 1990 to 9999")))
            })
            .transpose()
    }

    fn participant(&self, review: &Review) -> Result<Option<ParticipantId>, PageError> {
        self.get("participant").map(|s| parse_participant(s, review)).transpose()
    }
}

fn parse_participant(s: &str, review: &Review) -> Result<ParticipantId, PageError> {
    let p = ParticipantId::new(s).map_err(|e| PageError::bad_request(format!("participant {s:?}: {e}")))?;
    if !review.knows_participant(p) {
        return Err(PageError::not_found(format!("no participant {p} on this ledger")));
    }
    Ok(p)
}

fn parse_number(s: &str) -> Result<CertificateNumber, PageError> {
    CertificateNumber::new(s).map_err(|e| PageError::bad_request(format!("certificate number {s:?}: {e}")))
}

fn parse_event_id(s: &str) -> Result<EventId, PageError> {
    let bytes = hex::decode(s).map_err(|_| PageError::bad_request(format!("event id {s:?} is not hex")))?;
    let id: [u8; 32] =
        bytes.try_into().map_err(|_| PageError::bad_request("an event id is 32 bytes (64 hex digits)"))?;
    Ok(EventId(id))
}

fn parse_height(s: &str) -> Result<u64, PageError> {
    s.parse::<u64>().map_err(|_| PageError::bad_request(format!("height {s:?}: a whole number")))
}

/// The quarter `2026-Q3`'s first and last days.
fn parse_quarter(s: &str) -> Result<(Date, Date), PageError> {
    let bad = || PageError::bad_request(format!("quarter {s:?}: like 2026-Q3"));
    let (y, q) = s.split_once("-Q").ok_or_else(bad)?;
    let year = y.parse::<i32>().ok().filter(|y| (1990..=9999).contains(y)).ok_or_else(bad)?;
    let q = q.parse::<u8>().ok().filter(|q| (1..=4).contains(q)).ok_or_else(bad)?;
    let first = Date::from_ymd(year, (q - 1) * 3 + 1, 1).map_err(|_| bad())?;
    let next = if q == 4 { Date::from_ymd(year + 1, 1, 1) } else { Date::from_ymd(year, q * 3 + 1, 1) };
    Ok((first, next.map_err(|_| bad())?.add_days(-1)))
}

fn error_response(e: &PageError, format: Format, viewer: &str) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match format {
        Format::Json | Format::Csv => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": e.message }).to_string(),
        )
            .into_response(),
        Format::Html => {
            let body = views::layout(e.title, viewer, "/", false, &[], &views::error_body(e));
            (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body.into_string()).into_response()
        }
    }
}

/// Renders a page (built on a blocking thread: it may lock the core or read the store) in the
/// format asked for.
async fn respond(
    x: Arc<Explorer>,
    uri: &Uri,
    params: Result<Params, (PageError, Format)>,
    build: impl FnOnce(&Explorer, &Params) -> Result<Page, PageError> + Send + 'static,
) -> Response {
    let viewer = x.caller.role.label();
    let params = match params {
        Ok(p) => p,
        Err((e, format)) => return error_response(&e, format, &viewer),
    };
    let format = params.format;
    let table = params.table.clone();
    let built = tokio::task::spawn_blocking(move || build(&x, &params))
        .await
        .unwrap_or_else(|e| Err(PageError::internal(format!("the page failed: {e}"))));
    let page = match built {
        Ok(p) => p,
        Err(e) => return error_response(&e, format, &viewer),
    };
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    match format {
        Format::Html => {
            let tables: Vec<&str> = page.tables.iter().map(|(n, _)| *n).collect();
            let html = views::layout(&page.title, &viewer, path_and_query, page.csv.is_some(), &tables, &page.body);
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html.into_string()).into_response()
        }
        Format::Json => ([(header::CONTENT_TYPE, "application/json")], page.json.to_string()).into_response(),
        Format::Csv => {
            let csv = match &table {
                None => page.csv,
                Some(t) => page.tables.into_iter().find(|(n, _)| n == t).map(|(_, c)| c),
            };
            match (csv, table) {
                (Some(csv), _) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response(),
                (None, None) => {
                    error_response(&PageError::not_found("this page has no table to export"), Format::Json, &viewer)
                }
                (None, Some(t)) => error_response(
                    &PageError::not_found(format!("this page has no table {t:?} to export")),
                    Format::Json,
                    &viewer,
                ),
            }
        }
    }
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], views::CSS).into_response()
}

async fn not_found(State(x): State<Arc<Explorer>>, uri: Uri) -> Response {
    let e = PageError::not_found(format!("no page at {}", uri.path()));
    error_response(&e, Format::Html, &x.caller.role.label())
}

/// Block `height`'s summary from its header exactly as stored (hashed as stored).
fn summary<B: kp_store::Backend>(
    store: &kp_store::Store<B>,
    height: u64,
) -> Result<Option<views::BlockSummary>, PageError> {
    let Some(raw) = store.raw_commit(height).map_err(store_error)? else { return Ok(None) };
    let h = kp_consensus::block::BlockHeader::decode(&raw.header)
        .map_err(|e| PageError::internal(format!("block {height}'s stored header: {e}")))?;
    Ok(Some(views::BlockSummary {
        height: h.height,
        hash: kp_consensus::block::block_hash(&raw.header).to_string(),
        time: h.time.to_string(),
        time_ms: h.time.0,
        proposer: h.proposer.to_string(),
        events: h.event_count,
    }))
}

fn store_error(e: impl std::fmt::Display) -> PageError {
    PageError::internal(format!("store: {e}"))
}

async fn network(State(x): State<Arc<Explorer>>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &[]), |x, _| {
        x.check(Right::Status)?;
        let mut v = {
            let core = x.core()?;
            let store = core.store();
            let head = store.head();
            let mut recent = Vec::new();
            for h in (head.height.saturating_sub(RECENT_BLOCKS) + 1..=head.height).rev() {
                recent.extend(summary(store, h)?);
            }
            let blocks_per_hour = match (recent.first(), recent.last()) {
                (Some(newest), Some(oldest)) if newest.time_ms > oldest.time_ms => {
                    Some((newest.height - oldest.height) * 3_600_000 / (newest.time_ms - oldest.time_ms))
                }
                _ => None,
            };
            views::NetworkView {
                chain_id: core.chain_id().as_str().to_owned(),
                genesis_hash: store.genesis_hash().to_string(),
                height: head.height,
                head_hash: head.hash.to_string(),
                head_time: head.time.to_string(),
                round: core.round(),
                node_of: core.me().map(|m| m.to_string()),
                waiting_for: core.missing().iter().map(ToString::to_string).collect(),
                seconds_since_head: crate::runtime::now().0.saturating_sub(head.time.0) / 1000,
                blocks_per_hour,
                committed_events: head.events,
                pending_events: u64::try_from(store.pending_len()).unwrap_or(u64::MAX),
                voters: core.voters().iter().map(|(p, _)| p.to_string()).collect(),
                recent,
                participants: Vec::new(),
                indexed_height: 0,
            }
        };
        let idx = x.index()?;
        v.participants = idx.review.participant_histories();
        v.indexed_height = idx.height;
        Ok(views::network_page(&v))
    })
    .await
}

async fn blocks(State(x): State<Arc<Explorer>>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &["before"]), |x, p| {
        x.check(Right::ReadLedger)?;
        let core = x.core()?;
        let store = core.store();
        let head = store.head().height;
        let before = match p.get("before") {
            None => head.saturating_add(1),
            Some(s) => {
                let h = parse_height(s)?;
                if h > head.saturating_add(1) {
                    return Err(PageError::not_found(format!("height {h} is past the head, {head}")));
                }
                h
            }
        };
        let mut out = Vec::new();
        let page = u64::try_from(views::PAGE_SIZE).unwrap_or(50);
        for h in (before.saturating_sub(page).max(1)..before).rev() {
            out.extend(summary(store, h)?);
        }
        let older = out.last().map(|b| b.height).filter(|h| *h > 1);
        Ok(views::blocks_page(&views::BlocksView { head, blocks: out, older }))
    })
    .await
}

async fn block(State(x): State<Arc<Explorer>>, Path(height): Path<String>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &["page"]), move |x, p| {
        x.check(Right::ReadLedger)?;
        let height = parse_height(&height)?;
        let page = p.page()?;
        let core = x.core()?;
        let head = core.store().head().height;
        let stored = match core.store().block(height).map_err(store_error)? {
            Some(b) if height >= 1 => b,
            _ => return Err(PageError::not_found(format!("no block at height {height} (the head is {head})"))),
        };
        let h = stored.block.header();
        let indexes: Vec<usize> = (0..stored.block.events().len()).collect();
        let (shown, paging) = views::paginate(&indexes, page)?;
        let mut events = Vec::with_capacity(shown.len());
        for i in shown {
            let Some(envelope) = stored.block.events().get(i) else { continue };
            let (kind, certificate) = match kp_proto::decode_event(envelope) {
                Ok(e) => (e.payload().kind().field_name().to_owned(), e.payload().certificate().cloned()),
                Err(_) => ("undecodable".to_owned(), None),
            };
            let full = crate::api::sees_event(&core, &x.caller, envelope)
                .map_err(|s| PageError::internal(s.message().to_owned()))?;
            events.push(views::BlockEvent {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                event_id: kp_crypto::event_id(envelope).to_string(),
                kind,
                certificate,
                full,
            });
        }
        let v = views::BlockView {
            height,
            hash: stored.block.hash().to_string(),
            prev_hash: h.prev_hash.to_string(),
            time: h.time.to_string(),
            round: h.round,
            proposer: h.proposer.to_string(),
            events_root: h.events_root.to_string(),
            state_root: h.state_root.to_string(),
            events,
            paging,
            signers: stored.certificate.signatures.iter().map(|s| s.voter.to_string()).collect(),
            withheld: stored.certificate.withheld.as_ref().map(|s| s.voter.to_string()),
            head,
        };
        Ok(views::block_page(&v))
    })
    .await
}

/// `BW exporting` for an authority key the ledger knows, the key's hex otherwise.
fn signer_name(core: &Core, key: &kp_domain::PublicKey) -> String {
    match core.key_owner(key) {
        Some(o) => format!("{} {}{}", o.participant, o.role, if o.revoked { " (key since revoked)" } else { "" }),
        None => hex::encode(key.0),
    }
}

async fn event(State(x): State<Arc<Explorer>>, Path(id): Path<String>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &[]), move |x, _| {
        x.check(Right::ReadLedger)?;
        let id = parse_event_id(&id)?;
        let core = x.core()?;
        let Some((at, envelope)) = core.store().event(&id).map_err(store_error)? else {
            return Err(PageError::not_found(format!("no committed event {id} on this ledger")));
        };
        let time =
            core.store().header(at.height).map_err(store_error)?.map_or_else(String::new, |h| h.time.to_string());
        let full = crate::api::sees_event(&core, &x.caller, &envelope)
            .map_err(|s| PageError::internal(s.message().to_owned()))?;
        let (kind, certificate, signer, content) = match kp_proto::decode_event(&envelope) {
            Ok(e) => (
                e.payload().kind().field_name().to_owned(),
                e.payload().certificate().cloned(),
                signer_name(&core, &e.signer()),
                full.then(|| format!("{:#?}", e.payload())),
            ),
            Err(_) => ("undecodable".to_owned(), None, String::new(), None),
        };
        Ok(views::event_page(&views::EventView {
            event_id: id.to_string(),
            kind,
            height: at.height,
            index: at.index,
            time,
            certificate,
            signer,
            content,
        }))
    })
    .await
}

async fn certificate(State(x): State<Arc<Explorer>>, Path(number): Path<String>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &[]), move |x, _| {
        x.check(Right::ReadLedger)?;
        let number = parse_number(&number)?;
        let steps = {
            let core = x.core()?;
            core.store()
                .custody(&number)
                .map_err(store_error)?
                .into_iter()
                .map(|c| {
                    let (kind, signer) = kp_proto::decode_event(&c.envelope)
                        .map(|e| (e.payload().kind().field_name().to_owned(), signer_name(&core, &e.signer())))
                        .unwrap_or_else(|_| ("undecodable".into(), String::new()));
                    views::StepRow {
                        kind,
                        height: c.at.height,
                        index: c.at.index,
                        time: c.block_time.to_string(),
                        event_id: kp_crypto::event_id(&c.envelope).to_string(),
                        signer,
                    }
                })
                .collect()
        };
        let idx = x.review()?;
        let v = views::certificate_view(&idx.review, &x.caller, &number, steps)?;
        Ok(views::certificate_page(&v))
    })
    .await
}

/// Builds the certificate's bundle from the store (under the core's lock).
fn bundle_of(x: &Explorer, number: &CertificateNumber) -> Result<Vec<u8>, PageError> {
    let core = x.core()?;
    match kp_audit::proof::build(core.store(), number) {
        Ok(b) => Ok(b),
        Err(e @ kp_audit::proof::BuildError::NotFound(_)) => Err(PageError::not_found(e.to_string())),
        Err(e @ kp_audit::proof::BuildError::TooLarge(_)) => Err(PageError::internal(e.to_string())),
        Err(e) => Err(store_error(e)),
    }
}

async fn verify(State(x): State<Arc<Explorer>>, Path(number): Path<String>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &[]), move |x, _| {
        x.check(Right::ReadLedger)?;
        let number = parse_number(&number)?;
        let bundle = bundle_of(x, &number)?;
        let outcome = kp_audit::proof::verify(&bundle, &x.genesis)
            .map_err(|d| format!("not verified at height {} [{}]: {}", d.height, d.kind, d.reason));
        Ok(views::verify_page(&number, &outcome))
    })
    .await
}

async fn proof(State(x): State<Arc<Explorer>>, Path(number): Path<String>, q: QueryResult) -> Response {
    let viewer = x.caller.role.label();
    if let Err((e, format)) = Params::parse(q, &[]) {
        return error_response(&e, format, &viewer);
    }
    let built = tokio::task::spawn_blocking(move || -> Result<(CertificateNumber, Vec<u8>), PageError> {
        x.check(Right::ReadCertificates)?;
        let number = parse_number(&number)?;
        let concerns = {
            let core = x.core()?;
            crate::api::certificate_concerns(&core, &number).map_err(|s| PageError::internal(s.message().to_owned()))?
        };
        if concerns == crate::access::Concerns::Unknown {
            return Err(PageError::not_found(format!("no certificate {number} on this ledger")));
        }
        if !x.caller.sees(&concerns) {
            return Err(PageError::forbidden(format!(
                "{} may not download the bundle of {number}: it carries the certificate's signed events in full",
                x.caller.role.label()
            )));
        }
        Ok((number.clone(), bundle_of(&x, &number)?))
    })
    .await
    .unwrap_or_else(|e| Err(PageError::internal(format!("the bundle failed: {e}"))));
    match built {
        Ok((number, bundle)) => {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            let name = format!("attachment; filename=\"{}.kpproof\"", number.as_str().replace('/', "_"));
            if let Ok(v) = HeaderValue::from_str(&name) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            (headers, bundle).into_response()
        }
        Err(e) => error_response(&e, Format::Html, &viewer),
    }
}

async fn participant(State(x): State<Arc<Explorer>>, Path(code): Path<String>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &["from", "to", "quarter", "year", "page"]), move |x, p| {
        x.check(Right::ReadLedger)?;
        let idx = x.review()?;
        let review = &idx.review;
        let who = parse_participant(&code, review)?;
        let as_of = review.as_of();
        let (from, to) = if let Some(q) = p.get("quarter") {
            parse_quarter(q)?
        } else if let Some(y) = p.year()? {
            (
                Date::from_ymd(y, 1, 1).map_err(|e| PageError::bad_request(e.to_string()))?,
                Date::from_ymd(y, 12, 31).map_err(|e| PageError::bad_request(e.to_string()))?,
            )
        } else {
            let from = match p.date("from")? {
                Some(d) => d,
                None => Date::from_ymd(as_of.year(), 1, 1).map_err(|e| PageError::internal(e.to_string()))?,
            };
            (from, p.date("to")?.unwrap_or(as_of))
        };
        if from > to {
            return Err(PageError::bad_request(format!("the period ends ({to}) before it starts ({from})")));
        }
        if to.year() - from.year() >= MAX_YEARS {
            return Err(PageError::bad_request(format!("a period of at most {MAX_YEARS} years")));
        }
        let page = p.page()?;
        let key = format!("participant:{who}:{from}:{to}");
        let (report, mut computed) = x.memo(key, idx.height, || review.participant_report(who, from, to, 60, as_of));
        let mut stats = Vec::new();
        for y in from.year()..=to.year() {
            let (s, h) = x.memo(format!("stats:{y}"), idx.height, || review.stats(y, None));
            computed = computed.min(h);
            stats.push((*s).clone());
        }
        let v = views::participant_view(review, &report, &stats, &x.caller, page)?;
        Ok(views::as_of_height(views::participant_page(&v), computed, idx.height))
    })
    .await
}

async fn statistics(State(x): State<Arc<Explorer>>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &["year", "participant"]), |x, p| {
        x.check(Right::ReadLedger)?;
        let idx = x.review()?;
        let review = &idx.review;
        let year = p.year()?.unwrap_or_else(|| review.as_of().year());
        let chart_of = p.participant(review)?;
        let (stats, computed) = x.memo(format!("stats:{year}"), idx.height, || review.stats(year, None));
        let v = views::stats_view(&stats, chart_of);
        let ids: Vec<ParticipantId> = stats.participants.iter().map(|s| s.participant).collect();
        Ok(views::as_of_height(views::stats_page(&v, &ids), computed, idx.height))
    })
    .await
}

async fn anomalies(State(x): State<Arc<Explorer>>, uri: Uri, q: QueryResult) -> Response {
    respond(x, &uri, Params::parse(q, &["kind", "participant", "from", "to", "page"]), |x, p| {
        x.check(Right::ReadLedger)?;
        let idx = x.review()?;
        let review = &idx.review;
        let kind = p
            .get("kind")
            .map(|k| {
                AnomalyKind::ALL.into_iter().find(|a| a.name() == k).ok_or_else(|| {
                    let names: Vec<&str> = AnomalyKind::ALL.iter().map(|a| a.name()).collect();
                    PageError::bad_request(format!("kind {k:?}: one of {}", names.join(", ")))
                })
            })
            .transpose()?;
        let participant = p.participant(review)?;
        let (from, to) = (p.date("from")?, p.date("to")?);
        let mut params = AnomalyParams::new(review.as_of());
        params.from = from;
        params.to = to;
        params.validate().map_err(|e| PageError::bad_request(e.to_string()))?;
        let (all, computed) = x.memo(format!("anomalies:{from:?}:{to:?}"), idx.height, || review.anomalies(&params));
        let v = views::anomalies_view(review, &all, &x.caller, kind, participant, from, to, p.page()?)?;
        let ids: Vec<ParticipantId> = review.participant_histories().iter().map(|h| h.participant).collect();
        Ok(views::as_of_height(views::anomalies_page(&v, &ids), computed, idx.height))
    })
    .await
}

/// A certificate number, an event id, a participant code or a height: redirected to its page.
async fn search(State(x): State<Arc<Explorer>>, q: QueryResult) -> Response {
    let viewer = x.caller.role.label();
    let params = match Params::parse(q, &["q"]) {
        Ok(p) => p,
        Err((e, format)) => return error_response(&e, format, &viewer),
    };
    let format = params.format;
    let found = tokio::task::spawn_blocking(move || -> Result<String, PageError> {
        let q = params.get("q").map(str::trim).unwrap_or("");
        if q.is_empty() {
            return Err(PageError::bad_request(
                "search for a certificate number, an event id, a participant code or a height",
            ));
        }
        if q.bytes().all(|b| b.is_ascii_digit()) {
            let h = parse_height(q)?;
            let head = x.core()?.store().head().height;
            if h == 0 || h > head {
                return Err(PageError::not_found(format!("no block at height {h} (the head is {head})")));
            }
            return Ok(format!("/block/{h}"));
        }
        if q.len() == 64 && q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(format!("/event/{}", q.to_ascii_lowercase()));
        }
        let idx = x.review()?;
        let upper = q.to_ascii_uppercase();
        if upper.len() == 2
            && let Ok(p) = ParticipantId::new(&upper)
            && idx.review.knows_participant(p)
        {
            return Ok(format!("/participant/{p}"));
        }
        if let Ok(n) = CertificateNumber::new(&upper)
            && idx.review.exporter_of(&n).is_some()
        {
            return Ok(views::certificate_href(&n));
        }
        Err(PageError::not_found(format!("nothing on this ledger matches {q:?}")))
    })
    .await
    .unwrap_or_else(|e| Err(PageError::internal(format!("the search failed: {e}"))));
    match found {
        Ok(location) => axum::response::Redirect::to(&location).into_response(),
        Err(e) => error_response(&e, format, &viewer),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hosts_that_may_ask() {
        for ok in ["127.0.0.2:27001", "localhost:1", "LOCALHOST", "[::1]:8080", "10.0.0.1"] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:27001", "", "127.0.0.1.evil.example", "[::1"] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn quarters_have_their_days() {
        let d = |s| Date::parse(s).unwrap();
        assert_eq!(parse_quarter("2026-Q1").unwrap(), (d("2026-01-01"), d("2026-03-31")));
        assert_eq!(parse_quarter("2026-Q4").unwrap(), (d("2026-10-01"), d("2026-12-31")));
        for bad in ["2026-Q5", "2026Q1", "-Q1", "99999-Q1", "2026-Q"] {
            assert_eq!(parse_quarter(bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
