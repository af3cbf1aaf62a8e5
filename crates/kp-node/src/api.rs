//! The gRPC API (kp.v1.Node) over the node's core.

use crate::access::{Caller, Concerns, Role};
use crate::core::{Core, RejectKind, Submission};
use crate::pb;
use kp_domain::{CertificateNumber, Date, EventId, EventPayload, ParticipantId, Timestamp};
use kp_store::TradeRole;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Most block subscriptions served at once.
pub const MAX_SUBSCRIPTIONS: usize = 256;
/// Most index pages one ListCertificates call reads while filtering by state.
const MAX_INDEX_PAGES: usize = 50;

/// Most events in one SubmitBatch call.
pub const MAX_SUBMIT_BATCH: usize = 256;
/// Most governance events in one `GetGovernanceEvents` answer: at 64 KiB each at most, well
/// within a client's default 4 MiB message limit.
pub const MAX_GOVERNANCE_EVENTS: usize = 48;
/// Most bytes in one API request (a SubmitBatch's events together; one event is at most
/// `kp_domain::MAX_EVENT_BYTES`).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Most API requests in progress at once, over every connection; more wait their turn. With
/// [`MAX_REQUEST_BYTES`] this bounds the memory that clients' requests hold (128 MiB).
pub const MAX_REQUESTS: usize = 128;

/// A client's submission (one event, or a batch in order) and where its answers go.
#[derive(Debug)]
pub struct WaitingSubmission {
    pub envelopes: Vec<Vec<u8>>,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<Submission>, String>>,
    /// Its place among the events waiting to be kept, given back once it is answered.
    pub room: tokio::sync::OwnedSemaphorePermit,
}

/// What the API and the runtime share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub core: Arc<Mutex<Core>>,
    /// The chain's id and signature rule (submissions are opened with them before the core is
    /// locked).
    pub chain_id: kp_domain::ChainId,
    pub rule: kp_domain::SignatureRule,
    /// Submissions waiting to be checked and kept, in groups (one synced write per group).
    /// Bounded by `waiting_room`: each holds at least one of its places.
    pub submissions: tokio::sync::mpsc::UnboundedSender<WaitingSubmission>,
    /// Events waiting to be kept, counted (a batch takes one place per event): beyond this many,
    /// a client is told to retry.
    pub waiting_room: Arc<tokio::sync::Semaphore>,
    /// Wakes the runtime's loop when a submission may let a waiting leader propose.
    pub wake: Arc<tokio::sync::Notify>,
    /// Effects of API calls for the network task (events and approvals to pass on; API calls
    /// never step the consensus engine).
    pub outbox: tokio::sync::mpsc::Sender<Vec<crate::core::Effect>>,
    /// Heights of committed blocks, as they are committed.
    pub commits: broadcast::Sender<u64>,
    /// Block subscriptions open at once are capped (each holds a task and a buffer).
    pub subscriptions: Arc<tokio::sync::Semaphore>,
    /// Block subscriptions open per caller identity.
    pub subscribers: Arc<crate::access::PerIdentity>,
    /// Becomes true when the node stops: streams end.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Core>, Status> {
        self.core.lock().map_err(|_| Status::internal("the node's core failed earlier; restart the node"))
    }

    /// Hands 1 to [`MAX_SUBMIT_BATCH`] events to the group-commit task, in order, and waits for
    /// their answers (one per event).
    async fn submit(&self, envelopes: Vec<Vec<u8>>) -> Result<Vec<Submission>, Status> {
        let n = envelopes.len();
        if n == 0 {
            return Err(Status::invalid_argument("a batch holds at least one event"));
        }
        if n > MAX_SUBMIT_BATCH {
            return Err(Status::invalid_argument(format!("{n} events in one batch; at most {MAX_SUBMIT_BATCH}")));
        }
        let room = Arc::clone(&self.waiting_room)
            .try_acquire_many_owned(u32::try_from(n).unwrap_or(u32::MAX))
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::NoPermits => {
                    Status::resource_exhausted("the node has too many submissions waiting; try again shortly")
                }
                tokio::sync::TryAcquireError::Closed => Status::unavailable("the node is stopping"),
            })?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submissions
            .send(WaitingSubmission { envelopes, reply, room })
            .map_err(|_| Status::unavailable("the node is stopping"))?;
        let answers = answer
            .await
            .map_err(|_| Status::unavailable("the node stopped before keeping the events"))?
            .map_err(Status::internal)?;
        if answers.len() != n {
            return Err(Status::internal(format!("the node answered {} of {n} submissions", answers.len())));
        }
        Ok(answers)
    }
}

/// One ListCertificates page to read from a snapshot of the committed state.
struct CertificateQuery {
    participant: ParticipantId,
    role: TradeRole,
    from: Timestamp,
    to: Timestamp,
    after: Option<(Timestamp, CertificateNumber)>,
    size: usize,
    wanted: Option<&'static str>,
    /// A reviewer's period: certificates issued outside it are left out.
    period: (Option<Date>, Option<Date>),
}

impl CertificateQuery {
    fn page(&self, reader: kp_store::StateReader<'_>) -> Result<pb::ListCertificatesResponse, Status> {
        let mut certificates = Vec::new();
        let mut cursor = self.after.clone();
        // Filtering by state skips entries: index pages are read until this page is full or the
        // index ends, at most MAX_INDEX_PAGES of them; a page token follows whenever the index
        // may hold more after the cursor.
        let mut more = true;
        for _ in 0..MAX_INDEX_PAGES {
            let page = reader
                .certificates_of(
                    self.participant,
                    self.role,
                    self.from,
                    self.to,
                    cursor.as_ref().map(|(t, n)| (*t, n)),
                    self.size,
                )
                .map_err(store_error)?;
            more = page.len() == self.size;
            for (t, n) in page {
                cursor = Some((t, n.clone()));
                let rec = reader.certificate(&n).map_err(store_error)?.ok_or_else(|| {
                    Status::internal(format!("the review index names {n}, which the ledger does not hold"))
                })?;
                let state = state_name(rec.state);
                if self.wanted.is_some_and(|w| w != state) {
                    continue;
                }
                let c = &rec.certificate;
                let (from, to) = self.period;
                if from.is_some_and(|f| c.issued_on < f) || to.is_some_and(|t| c.issued_on > t) {
                    continue;
                }
                certificates.push(pb::CertificateSummary {
                    certificate: n.to_string(),
                    exporter: c.exporter.as_str().to_owned(),
                    importer: c.importer.as_str().to_owned(),
                    state: state.to_owned(),
                    issued_at_ms: t.0,
                    carats_hundredths: c.carats.0,
                    value_usd_cents: c.value.0,
                });
                if certificates.len() == self.size {
                    more = true;
                    break;
                }
            }
            if certificates.len() == self.size || !more {
                break;
            }
        }
        let next_page_token = match (&cursor, more) {
            (Some((t, n)), true) => format!("{}:{n}", t.0),
            _ => String::new(),
        };
        Ok(pb::ListCertificatesResponse { certificates, next_page_token })
    }
}

fn submit_response(outcome: Submission) -> pb::SubmitResponse {
    use pb::submit_response::Outcome;
    let (id, outcome) = match outcome {
        Submission::Added(id) => (id, Outcome::Accepted(pb::Accepted {})),
        Submission::Duplicate(id, height) => (id, Outcome::Duplicate(pb::Duplicate { height })),
        Submission::Rejected(id, kind, reason) => {
            let (kind, code) = match kind {
                RejectKind::Malformed => (pb::rejection::Kind::Malformed, ""),
                RejectKind::BadSignature => (pb::rejection::Kind::BadSignature, ""),
                RejectKind::Rules(code) => (pb::rejection::Kind::Rules, code),
                RejectKind::PoolFull => (pb::rejection::Kind::PoolFull, ""),
            };
            (id, Outcome::Rejected(pb::Rejection { kind: kind.into(), reason, code: code.to_owned() }))
        }
    };
    pb::SubmitResponse { event_id: id.to_string(), outcome: Some(outcome) }
}

#[derive(Debug, Clone)]
pub struct Api {
    pub shared: Shared,
}

fn store_error(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("store: {e}"))
}

fn parse_event_id(s: &str) -> Result<EventId, Status> {
    let bytes = hex::decode(s).map_err(|_| Status::invalid_argument(format!("event id {s:?} is not hex")))?;
    let arr: [u8; 32] =
        bytes.try_into().map_err(|_| Status::invalid_argument("an event id is 32 bytes (64 hex digits)"))?;
    Ok(EventId(arr))
}

fn parse_number(s: &str) -> Result<CertificateNumber, Status> {
    CertificateNumber::new(s).map_err(|e| Status::invalid_argument(format!("certificate number {s:?}: {e}")))
}

fn state_name(s: kp_rules::CertificateState) -> &'static str {
    match s {
        kp_rules::CertificateState::Issued => "issued",
        kp_rules::CertificateState::Sealed => "sealed",
        kp_rules::CertificateState::Received => "received",
        kp_rules::CertificateState::Voided => "voided",
    }
}

/// The caller the access layer identified (anonymous if a request reached a handler without).
fn caller_of<T>(request: &Request<T>) -> Arc<Caller> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(Caller::anonymous("unidentified".into(), None)))
}

/// Whether a caller sees every event in full whatever it concerns (no lookups needed).
fn sees_all(caller: &Caller) -> bool {
    match &caller.role {
        Role::Local => true,
        Role::Reviewer(g) => g.participants.is_none() && g.from.is_none() && g.to.is_none(),
        _ => false,
    }
}

/// The facts of the certificate `number` that decide who sees it, from the committed state.
pub(crate) fn certificate_concerns(core: &Core, number: &CertificateNumber) -> Result<Concerns, Status> {
    Ok(match core.store().certificate(number).map_err(store_error)? {
        Some(r) => Concerns::Certificate {
            exporter: r.certificate.exporter,
            importer: r.certificate.importer,
            issued_on: r.certificate.issued_on,
        },
        None => Concerns::Unknown,
    })
}

/// What an event concerns, and its kind and certificate for a redacted view.
fn event_concerns(core: &Core, envelope: &[u8]) -> Result<(Concerns, String, String), Status> {
    let Ok(event) = kp_proto::decode_event(envelope) else {
        return Ok((Concerns::Unknown, String::new(), String::new()));
    };
    let payload = event.payload();
    let kind = payload.kind().field_name().to_owned();
    let concerns = match payload {
        EventPayload::ProductionReported(r) => Concerns::Production {
            participant: r.participant,
            start: Date::from_ymd(i32::from(r.period.year), if r.period.half == 1 { 1 } else { 7 }, 1)
                .map_err(|e| Status::internal(format!("a stored production report's period: {e}")))?,
        },
        _ if payload.kind().is_governance() => Concerns::Public,
        p => match p.certificate() {
            Some(number) => certificate_concerns(core, number)?,
            None => Concerns::Public,
        },
    };
    let certificate = payload.certificate().map(ToString::to_string).unwrap_or_default();
    Ok((concerns, kind, certificate))
}

/// Whether `caller` sees the committed event `envelope` in full (the explorer's rule too).
pub(crate) fn sees_event(core: &Core, caller: &Caller, envelope: &[u8]) -> Result<bool, Status> {
    Ok(sees_all(caller) || caller.sees(&event_concerns(core, envelope)?.0))
}

/// `envelope` as `caller` may see it: the bytes, or (not entitled) empty and a redacted view.
fn shown(core: &Core, caller: &Caller, envelope: &[u8], index: u32) -> Result<Option<pb::RedactedEvent>, Status> {
    if sees_all(caller) {
        return Ok(None);
    }
    let (concerns, kind, certificate) = event_concerns(core, envelope)?;
    if caller.sees(&concerns) {
        return Ok(None);
    }
    let (exporter, importer) = match &concerns {
        Concerns::Certificate { exporter, importer, .. } => (exporter.to_string(), importer.to_string()),
        Concerns::Production { participant, .. } => (participant.to_string(), String::new()),
        Concerns::Public | Concerns::Unknown => (String::new(), String::new()),
    };
    Ok(Some(pb::RedactedEvent {
        index,
        event_id: kp_crypto::event_id(envelope).to_string(),
        leaf_hash: kp_crypto::leaf_hash(envelope).0.to_vec(),
        kind,
        certificate,
        exporter,
        importer,
    }))
}

fn block_response(core: &Core, height: u64, caller: &Caller) -> Result<Option<pb::GetBlockResponse>, Status> {
    let Some(stored) = core.store().block(height).map_err(store_error)? else { return Ok(None) };
    let h = stored.block.header();
    let mut events = Vec::with_capacity(stored.block.events().len());
    let mut redacted = Vec::new();
    for (i, e) in stored.block.events().iter().enumerate() {
        match shown(core, caller, e, u32::try_from(i).unwrap_or(u32::MAX))? {
            None => events.push(e.clone()),
            Some(r) => {
                events.push(Vec::new());
                redacted.push(r);
            }
        }
    }
    Ok(Some(pb::GetBlockResponse {
        height,
        header: stored.block.header_bytes().to_vec(),
        hash: stored.block.hash().to_string(),
        time_ms: h.time.0,
        events,
        redacted,
        certificate: kp_consensus::wire::encode_certificate(&stored.certificate),
        // Every voter that signed: the precommits, and a withheld voter's prevote.
        signers: stored
            .certificate
            .signatures
            .iter()
            .chain(&stored.certificate.withheld)
            .map(|s| s.voter.as_str().to_owned())
            .collect(),
    }))
}

/// Refuses events in `envelopes` signed by another participant's key than the caller's own.
fn check_signers(core: &Core, caller: &Caller, envelopes: &[Vec<u8>]) -> Result<(), Status> {
    if matches!(caller.role, Role::Local) {
        return Ok(());
    }
    for (i, e) in envelopes.iter().enumerate() {
        // What does not decode, or is signed by an unknown key, is refused by the edge itself.
        let Ok(event) = kp_proto::decode_event(e) else { continue };
        let Some(owner) = core.key_owner(&event.signer()) else { continue };
        if !caller.may_sign_for(owner.participant) {
            return Err(Status::permission_denied(format!(
                "{} ({}) may submit only events its own participant's authorities signed; event {i} is signed by \
                 a key of {}",
                caller.name,
                caller.role.label(),
                owner.participant
            )));
        }
    }
    Ok(())
}

type BlockStream = Pin<Box<dyn Stream<Item = Result<pb::GetBlockResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::node_server::Node for Api {
    async fn submit(&self, request: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitResponse>, Status> {
        let caller = caller_of(&request);
        let envelope = request.into_inner().envelope;
        check_signers(&*self.shared.lock()?, &caller, std::slice::from_ref(&envelope))?;
        let answer = self.shared.submit(vec![envelope]).await?.pop();
        answer
            .map(|a| Response::new(submit_response(a)))
            .ok_or_else(|| Status::internal("the node answered no submission"))
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        let caller = caller_of(&request);
        let envelopes = request.into_inner().envelopes;
        if envelopes.len() <= MAX_SUBMIT_BATCH {
            check_signers(&*self.shared.lock()?, &caller, &envelopes)?;
        }
        let answers = self.shared.submit(envelopes).await?;
        Ok(Response::new(pb::SubmitBatchResponse { results: answers.into_iter().map(submit_response).collect() }))
    }

    async fn get_event(&self, request: Request<pb::GetEventRequest>) -> Result<Response<pb::GetEventResponse>, Status> {
        let caller = caller_of(&request);
        let id = parse_event_id(&request.into_inner().event_id)?;
        let core = self.shared.lock()?;
        if let Some((at, envelope)) = core.store().event(&id).map_err(store_error)? {
            let time = core.store().header(at.height).map_err(store_error)?.map_or(0, |h| h.time.0);
            let redacted = shown(&core, &caller, &envelope, at.index)?;
            return Ok(Response::new(pb::GetEventResponse {
                envelope: if redacted.is_some() { Vec::new() } else { envelope },
                position: Some(pb::Position { height: at.height, index: at.index, block_time_ms: time }),
                redacted,
            }));
        }
        if let Some(e) = core.pending(&id) {
            // A pending event's certificate may not be in the committed state yet: only a
            // caller who sees everything, or who may sign it, gets its bytes.
            let mine = kp_proto::decode_event(e)
                .ok()
                .and_then(|ev| core.key_owner(&ev.signer()))
                .is_some_and(|o| caller.may_sign_for(o.participant));
            let redacted = if mine { None } else { shown(&core, &caller, e, 0)? };
            let envelope = if redacted.is_some() { Vec::new() } else { e.to_vec() };
            return Ok(Response::new(pb::GetEventResponse { envelope, position: None, redacted }));
        }
        match core.refusal(&id) {
            Some(why) => Err(Status::failed_precondition(format!("event {id} was refused at proposal time: {why}"))),
            None => Err(Status::not_found(format!("no event {id} on this node"))),
        }
    }

    async fn get_custody(
        &self,
        request: Request<pb::GetCustodyRequest>,
    ) -> Result<Response<pb::GetCustodyResponse>, Status> {
        let caller = caller_of(&request);
        let number = parse_number(&request.into_inner().certificate)?;
        let core = self.shared.lock()?;
        let custody = core.store().custody(&number).map_err(store_error)?;
        let state = core.store().certificate(&number).map_err(store_error)?.map_or("", |r| state_name(r.state));
        let full = sees_all(&caller) || caller.sees(&certificate_concerns(&core, &number)?);
        let steps = custody
            .into_iter()
            .map(|c| {
                let (kind, signer) = kp_proto::decode_event(&c.envelope)
                    .map(|e| (e.payload().kind().field_name().to_owned(), hex::encode(e.signer().0)))
                    .unwrap_or_default();
                pb::CustodyStep {
                    event_id: kp_crypto::event_id(&c.envelope).to_string(),
                    kind,
                    position: Some(pb::Position {
                        height: c.at.height,
                        index: c.at.index,
                        block_time_ms: c.block_time.0,
                    }),
                    signer,
                    envelope: if full { c.envelope } else { Vec::new() },
                    redacted: !full,
                }
            })
            .collect();
        Ok(Response::new(pb::GetCustodyResponse { certificate: number.to_string(), state: state.to_owned(), steps }))
    }

    async fn list_certificates(
        &self,
        request: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        let caller = caller_of(&request);
        let r = request.into_inner();
        let participant = ParticipantId::new(&r.participant)
            .map_err(|e| Status::invalid_argument(format!("participant {:?}: {e}", r.participant)))?;
        if !caller.sees_participant(participant) {
            return Err(Status::permission_denied(format!(
                "{} ({}) lacks the right read-certificates for {participant}",
                caller.name,
                caller.role.label()
            )));
        }
        let role = match pb::list_certificates_request::Role::try_from(r.role) {
            Ok(pb::list_certificates_request::Role::Exporter) => TradeRole::Exporter,
            Ok(pb::list_certificates_request::Role::Importer) => TradeRole::Importer,
            _ => return Err(Status::invalid_argument("role must be EXPORTER or IMPORTER")),
        };
        let size = match r.page_size {
            0 => 100,
            n => usize::try_from(n).unwrap_or(usize::MAX).min(kp_store::MAX_PAGE),
        };
        let after = if r.page_token.is_empty() {
            None
        } else {
            let (t, n) = r
                .page_token
                .split_once(':')
                .ok_or_else(|| Status::invalid_argument("page_token is not one this API gave"))?;
            let t: u64 = t.parse().map_err(|_| Status::invalid_argument("page_token is not one this API gave"))?;
            Some((Timestamp(t), parse_number(n)?))
        };
        let wanted = match r.state.as_str() {
            "" => None,
            "issued" => Some("issued"),
            "sealed" => Some("sealed"),
            "received" => Some("received"),
            "voided" => Some("voided"),
            other => {
                return Err(Status::invalid_argument(format!(
                    "state {other:?} is none of issued, sealed, received, voided"
                )));
            }
        };
        let to = if r.to_ms == 0 { Timestamp(u64::MAX) } else { Timestamp(r.to_ms) };
        // The core's lock is held only to take a snapshot of the committed state: the page is
        // read from it on a blocking thread while consensus and submissions go on.
        let snapshot = self.shared.lock()?.store().snapshot().map_err(store_error)?;
        let query = CertificateQuery {
            participant,
            role,
            from: Timestamp(r.from_ms),
            to,
            after,
            size,
            wanted,
            period: caller.period(),
        };
        let page = tokio::task::spawn_blocking(move || query.page(snapshot.reader()))
            .await
            .map_err(|e| Status::internal(format!("the certificate query failed: {e}")))??;
        Ok(Response::new(page))
    }

    async fn get_block(&self, request: Request<pb::GetBlockRequest>) -> Result<Response<pb::GetBlockResponse>, Status> {
        let caller = caller_of(&request);
        let height = request.into_inner().height;
        let core = self.shared.lock()?;
        block_response(&core, height, &caller)?.map(Response::new).ok_or_else(|| {
            Status::not_found(format!("no block at height {height} (head {})", core.store().head().height))
        })
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let caller = caller_of(&request);
        let core = self.shared.lock()?;
        let head = core.store().head();
        let active_participants = core.voters().iter().map(|(p, _)| p.as_str().to_owned()).collect();
        Ok(Response::new(pb::GetStatusResponse {
            chain_id: core.chain_id().as_str().to_owned(),
            genesis_hash: core.store().genesis_hash().to_string(),
            height: head.height,
            head_hash: head.hash.to_string(),
            head_time_ms: head.time.0,
            round: core.round(),
            me: core.me().map(|m| m.as_str().to_owned()).unwrap_or_default(),
            active_participants,
            missing_voters: core.missing().iter().map(|p| p.as_str().to_owned()).collect(),
            peers: u32::try_from(core.metrics().peers.get()).unwrap_or(0),
            syncing: core.metrics().sync_lag.get() > 1,
            pending_events: u64::try_from(core.store().pending_len()).unwrap_or(u64::MAX),
            committed_events: head.events,
            clock_offset_ms: core.clock_offset().map(|c| c.offset_ms),
            clock_warning_ms: core.clock_warning_ms(),
            clock_off_since_ms: core.clock_offset().and_then(|c| c.off_since).map_or(0, |t| t.0),
            caller: caller.role.label(),
            caller_name: caller.name.clone(),
        }))
    }

    async fn approve(&self, request: Request<pb::ApproveRequest>) -> Result<Response<pb::ApproveResponse>, Status> {
        let caller = caller_of(&request);
        let r = request.into_inner();
        let approval = crate::core::ApprovalBytes { act: r.act, key: r.key, signature: r.signature };
        let outcome = {
            let mut core = self.shared.lock()?;
            if !matches!(caller.role, Role::Local)
                && let Ok(key) = <[u8; 32]>::try_from(approval.key.as_slice())
                && let Some(owner) = core.key_owner(&kp_domain::PublicKey(key))
                && !caller.may_sign_for(owner.participant)
            {
                return Err(Status::permission_denied(format!(
                    "{} ({}) may approve only with its own participant's keys; this key is {}'s",
                    caller.name,
                    caller.role.label(),
                    owner.participant
                )));
            }
            let (outcome, effects) = core.approve(approval, true).map_err(store_error)?;
            drop(core);
            crate::runtime::forward(&self.shared, effects);
            outcome
        };
        use crate::core::ApprovalError as E;
        match outcome {
            Ok(status) => Ok(Response::new(pb::ApproveResponse { status: Some(governance_status(status)) })),
            Err(e @ (E::Malformed(_) | E::BadSignature(_) | E::UnknownKey(_))) => {
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(e @ (E::Full | E::TooMany(_))) => Err(Status::resource_exhausted(e.to_string())),
        }
    }

    async fn get_genesis(&self, _: Request<pb::GetGenesisRequest>) -> Result<Response<pb::GetGenesisResponse>, Status> {
        let core = self.shared.lock()?;
        Ok(Response::new(pb::GetGenesisResponse {
            genesis: core.genesis_bytes().to_vec(),
            genesis_hash: core.store().genesis_hash().to_string(),
        }))
    }

    async fn get_proof(&self, request: Request<pb::GetProofRequest>) -> Result<Response<pb::GetProofResponse>, Status> {
        let caller = caller_of(&request);
        let number = parse_number(&request.into_inner().certificate)?;
        let core = self.shared.lock()?;
        let concerns = certificate_concerns(&core, &number)?;
        if concerns != Concerns::Unknown && !sees_all(&caller) && !caller.sees(&concerns) {
            return Err(Status::permission_denied(format!(
                "{} ({}) lacks the right read-certificates for {number} (a proof bundle carries its signed events)",
                caller.name,
                caller.role.label()
            )));
        }
        match kp_audit::proof::build(core.store(), &number) {
            Ok(bundle) => Ok(Response::new(pb::GetProofResponse { bundle })),
            Err(e @ kp_audit::proof::BuildError::NotFound(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ kp_audit::proof::BuildError::TooLarge(_)) => Err(Status::resource_exhausted(e.to_string())),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn get_governance(
        &self,
        request: Request<pb::GetGovernanceRequest>,
    ) -> Result<Response<pb::GetGovernanceResponse>, Status> {
        let reference = request.into_inner().reference;
        let core = self.shared.lock()?;
        let drafts = core.drafts((!reference.is_empty()).then_some(reference.as_str()));
        if drafts.is_empty() && !reference.is_empty() {
            return Err(Status::not_found(format!("this node collects no approvals for an act {reference:?}")));
        }
        Ok(Response::new(pb::GetGovernanceResponse { acts: drafts.into_iter().map(governance_status).collect() }))
    }

    async fn get_governance_events(
        &self,
        request: Request<pb::GetGovernanceEventsRequest>,
    ) -> Result<Response<pb::GetGovernanceEventsResponse>, Status> {
        let r = request.into_inner();
        let limit = match r.limit {
            0 => MAX_GOVERNANCE_EVENTS,
            n => usize::try_from(n).unwrap_or(MAX_GOVERNANCE_EVENTS).min(MAX_GOVERNANCE_EVENTS),
        };
        let core = self.shared.lock()?;
        let head = core.store().head().height;
        let heights = core.store().act_heights(head).map_err(store_error)?;
        let mut events = Vec::new();
        let mut next_height = None;
        for height in heights.into_iter().filter(|h| *h >= r.from_height) {
            if events.len() == limit {
                next_height = Some(height);
                break;
            }
            let Some(stored) = core.store().block(height).map_err(store_error)? else {
                return Err(Status::internal(format!("the store indexes block {height} as governance but has none")));
            };
            // A governance event has a block of its own.
            if let [envelope] = stored.block.events() {
                events.push(pb::GovernanceBlockEvent {
                    height,
                    block_time_ms: stored.block.header().time.0,
                    envelope: envelope.clone(),
                });
            }
        }
        Ok(Response::new(pb::GetGovernanceEventsResponse { events, next_height }))
    }

    type SubscribeBlocksStream = BlockStream;

    async fn subscribe_blocks(
        &self,
        request: Request<pb::SubscribeBlocksRequest>,
    ) -> Result<Response<Self::SubscribeBlocksStream>, Status> {
        let caller = caller_of(&request);
        let mut next = request.into_inner().from_height.max(1);
        let shared = self.shared.clone();
        let mine = shared
            .subscribers
            .try_take(&caller.identity(), crate::access::MAX_SUBSCRIPTIONS_PER_IDENTITY)
            .ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "{} has {} block subscriptions open already",
                    caller.name,
                    crate::access::MAX_SUBSCRIPTIONS_PER_IDENTITY
                ))
            })?;
        let permit = Arc::clone(&shared.subscriptions).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "this node serves at most {MAX_SUBSCRIPTIONS} block subscriptions at once"
            ))
        })?;
        let mut commits = shared.commits.subscribe();
        let mut stopping = shared.stopping.clone();
        // Bounded: a slow subscriber holds at most 16 blocks here, then waits.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let _permit = (permit, mine);
            loop {
                let block = {
                    let Ok(core) = shared.core.lock() else { return };
                    block_response(&core, next, &caller)
                };
                match block {
                    Ok(Some(b)) => {
                        if tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                        next += 1;
                    }
                    Ok(None) => tokio::select! {
                        r = commits.recv() => match r {
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        _ = stopping.wait_for(|s| *s) => return,
                    },
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

fn governance_status(s: crate::core::DraftStatus) -> pb::GovernanceStatus {
    let d = s.draft;
    pb::GovernanceStatus {
        reference: d.act.reference.to_string(),
        action: d.act.action.name().to_owned(),
        subject: d.act.action.subject().to_string(),
        rationale: d.act.rationale.to_string(),
        act: d.act_bytes,
        act_digest: d.digest.to_hex(),
        approvals: d
            .approvals
            .iter()
            .map(|(p, a)| pb::GovernanceApproval {
                participant: p.to_string(),
                key: a.key.0.to_vec(),
                signature: a.signature.0.to_vec(),
            })
            .collect(),
        missing: s.missing.iter().map(ToString::to_string).collect(),
        refused: s.refused.unwrap_or_default(),
        committed_height: d.committed,
    }
}
