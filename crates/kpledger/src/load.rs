//! `kpledger load`: a synthetic custody workload on a test network. Certificates between the
//! network's participants, of realistic magnitudes (a few hundred to tens of thousands of
//! carats, tens to hundreds of dollars a carat), each issued and sealed through the exporter's
//! node and, once the seal is committed, confirmed through the importer's node — every event
//! signed with the testnet's authority keys. Submissions are paced at a target rate and sent in
//! batches (SubmitBatch), one per node every few milliseconds, as an authority's system sending
//! its backlog would; commits are watched on one node's block stream; the report gives events
//! committed, events/s and commit latency (submission to commit seen).

// Rates and percentiles for the report are floating point; nothing here touches the ledger.
#![allow(clippy::float_arithmetic, clippy::cast_possible_truncation)]

use crate::testnet::Testnet;
use anyhow::{Result, anyhow, ensure};
use kp_domain::*;
use kp_node::pb;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Batches in flight at once. Enough that the client does not bound the network: a batch's
/// answer waits for a synced write on its node (group commit), so at 59 nodes, with a batch or
/// two per node and tick, over a hundred are under way (Little's law: rate × round trip).
const IN_FLIGHT: usize = 256;
/// How often the events due are sent, one batch per node.
const TICK: Duration = Duration::from_millis(10);
/// A receipt refused because its node does not show the seal committed yet (the node the
/// commit was seen on may be a moment ahead) is sent again after this long, this many times.
const RETRY_AFTER: Duration = Duration::from_millis(20);
const RETRIES: u32 = 500;

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub seed: u64,
    pub certificates: usize,
    pub target_rate: f64,
    pub events_submitted: usize,
    pub events_committed: usize,
    /// Submissions refused (by the rules, or the pool being full), with the first reasons.
    pub events_refused: usize,
    pub refusals: Vec<String>,
    /// Receipts never sent because their seal was refused (they could not be admitted).
    pub receipts_not_sent: usize,
    pub seconds: f64,
    /// Committed events per second, from the first submission to the last commit.
    pub events_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub blocks: u64,
    /// Whether every submitted event was committed before the deadline.
    pub complete: bool,
}

struct Keys {
    exporting: kp_crypto::SecretKey,
    importing: kp_crypto::SecretKey,
    api: String,
    validity_days: u16,
}

fn certificate(
    rng: &mut rand::rngs::StdRng,
    number: String,
    exporter: ParticipantId,
    importer: ParticipantId,
    today: Date,
    validity_days: u16,
) -> Result<Certificate> {
    let carats = rng.random_range(10_000..5_000_000u64); // 100 to 50,000 ct, in hundredths
    let per_carat_cents = rng.random_range(3_000..40_000u64); // $30 to $400 a carat
    let value = carats / 100 * per_carat_cents + 1;
    let hs = if rng.random_bool(0.8) { HsCode::NonIndustrial } else { HsCode::Industrial };
    let origin = CountryCode::new(exporter.as_str()).map_or(Origin::Mixed, Origin::Country);
    Ok(Certificate {
        number: CertificateNumber::new(&number)?,
        exporter,
        importer,
        origin,
        origin_zone: None,
        issued_on: today,
        expires_on: today.add_days(i32::from(validity_days.clamp(2, 30))),
        issuing_authority: Text::new(&format!("{exporter} Diamond Office"))?,
        exporter_party: Trader { name: Text::new("Synthetic Exporter Ltd")?, identification: Text::new("LOAD-1")? },
        importer_party: Trader { name: Text::new("Synthetic Importer BV")?, identification: Text::new("LOAD-2")? },
        carats: Carats(carats),
        value: UsdCents(value),
        parcels: rng.random_range(1..40),
        lines: vec![HsLine { hs_code: hs, carats: Carats(carats), value: UsdCents(value) }],
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A receipt and the index of the node it goes to.
type Receipt = (usize, Vec<u8>);

/// An event to send to one node, in its batch.
struct Outgoing {
    id: EventId,
    envelope: Vec<u8>,
    /// For an issue: its certificate's number (a number issued before means an earlier run).
    issues: Option<String>,
    /// The receipt to send once this event (a seal) commits.
    then: Option<Receipt>,
    /// For a receipt: the seal it follows, and how many times it was sent before.
    after: Option<(EventId, u32)>,
}

/// A certificate's issue and seal: (the exporter's node, the certificate number, issue, seal, the
/// receipt to submit once the seal commits).
type FirstWave = (usize, String, Vec<u8>, Vec<u8>, Receipt);

/// A receipt whose seal was seen committed: (its node, the receipt, the seal, tries so far).
type Ready = (Receipt, EventId, u32);

impl Outgoing {
    fn new(envelope: Vec<u8>, then: Option<Receipt>, after: Option<(EventId, u32)>) -> Outgoing {
        Outgoing { id: kp_crypto::event_id(&envelope), envelope, issues: None, then, after }
    }
    fn issue(envelope: Vec<u8>, number: String) -> Outgoing {
        Outgoing { issues: Some(number), ..Outgoing::new(envelope, None, None) }
    }
}

/// Shared between the submitters and the block watcher.
#[derive(Default)]
struct Tracker {
    /// Event id → (submitted at, the receipt to send once this seal commits).
    waiting: HashMap<EventId, (Instant, Option<Receipt>)>,
    latencies: Vec<f64>,
    committed: usize,
    refused: usize,
    refusals: Vec<String>,
    /// Receipts whose seal was refused: never sent, and not waited for.
    receipts_not_sent: usize,
    last_commit: Option<Instant>,
    blocks: u64,
    /// A certificate of this run found issued already (by an earlier run with the same seed).
    existing: Option<String>,
}

impl Tracker {
    fn refuse(&mut self, id: &EventId, why: String) {
        if let Some((_, then)) = self.waiting.remove(id) {
            self.refused += 1;
            if then.is_some() {
                self.receipts_not_sent += 1;
            }
            if self.refusals.len() < 5 {
                self.refusals.push(why);
            }
        }
    }
}

type Client = kp_node::pb::node_client::NodeClient<tonic::transport::Channel>;

/// Sends one node's batch and sorts the answers: refusals are counted, except a receipt whose
/// node does not show its seal committed yet, which is sent again shortly.
async fn send_batch(
    mut client: Client,
    node: usize,
    batch: Vec<Outgoing>,
    tracker: Arc<Mutex<Tracker>>,
    again: tokio::sync::mpsc::UnboundedSender<Ready>,
) {
    // Only a receipt may be sent again: its bytes are kept, the others go with the request.
    let mut sent = Vec::with_capacity(batch.len());
    let mut issues = Vec::with_capacity(batch.len());
    let mut envelopes = Vec::with_capacity(batch.len());
    for o in batch {
        sent.push((o.id, o.after.map(|(seal, tries)| (seal, tries, o.envelope.clone()))));
        issues.push(o.issues);
        envelopes.push(o.envelope);
    }
    let results = match client.submit_batch(pb::SubmitBatchRequest { envelopes }).await {
        Ok(a) => a.into_inner().results,
        Err(s) => {
            let Ok(mut t) = tracker.lock() else { return };
            for (id, _) in &sent {
                t.refuse(id, s.message().to_owned());
            }
            return;
        }
    };
    for (((id, receipt), issues), result) in sent.into_iter().zip(issues).zip(results) {
        // An issue the node holds already (the same bytes: an earlier run with this seed the
        // same day), or refused because its number is taken (another day's run): this run's
        // certificates exist, and waiting for them would only run into the timeout.
        if let Some(number) = issues {
            let taken = match &result.outcome {
                Some(pb::submit_response::Outcome::Duplicate(_)) => true,
                Some(pb::submit_response::Outcome::Rejected(r)) if r.kind() == pb::rejection::Kind::Rules => {
                    issued_by_another(&mut client, &number, &id).await
                }
                _ => false,
            };
            if taken {
                if let Ok(mut t) = tracker.lock() {
                    t.existing.get_or_insert(number);
                }
                continue;
            }
        }
        let Some(pb::submit_response::Outcome::Rejected(r)) = result.outcome else { continue };
        if let Some((seal, tries, envelope)) = receipt
            && r.kind() == pb::rejection::Kind::Rules
            && tries < RETRIES
        {
            let shown = client.get_event(pb::GetEventRequest { event_id: seal.to_hex() }).await;
            if !shown.is_ok_and(|e| e.into_inner().position.is_some()) {
                let again = again.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY_AFTER).await;
                    let _ = again.send(((node, envelope), seal, tries + 1));
                });
                continue;
            }
        }
        if let Ok(mut t) = tracker.lock() {
            t.refuse(&id, r.reason);
        }
    }
}

/// Whether the node's ledger holds certificate `number` issued by another event than `ours`.
async fn issued_by_another(client: &mut Client, number: &str, ours: &EventId) -> bool {
    match client.get_custody(pb::GetCustodyRequest { certificate: number.to_owned() }).await {
        Ok(c) => c.into_inner().steps.first().is_some_and(|s| s.event_id != ours.to_hex()),
        Err(_) => false,
    }
}

/// The error of a run whose certificates exist on the network already.
fn already_run(number: &str, seed: u64) -> anyhow::Error {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut suggestion = now & 0xF_FFFF;
    if suggestion == seed & 0xF_FFFF || suggestion == 0 {
        suggestion = (suggestion + 1) & 0xF_FFFF;
    }
    anyhow!(
        "certificate {number} of this workload is already on this network: an earlier `kpledger load` ran with \
         --seed {seed} (the default is 1), and a seed fixes the run's certificate numbers. Pass --seed N with a \
         value not used on this network before (its low 20 bits name the certificates), for example --seed {suggestion}"
    )
}

/// Runs the workload: `certificates` certificates (3 events each) at about `rate` events/s.
/// Refuses to start, or stops at the first answer that shows it, when the run's certificates
/// exist already (an earlier run with the same seed).
pub fn run(dir: &Path, certificates: usize, rate: f64, seed: u64, deadline: Duration) -> Result<LoadReport> {
    ensure!(certificates > 0, "--certificates must be at least 1");
    ensure!(rate > 0.0 && rate.is_finite(), "--rate must be a positive number of events per second");
    let net = Testnet::load(dir)?;
    ensure!(net.genesis.participants.len() >= 2, "the workload needs at least two participants");
    let mut keys: Vec<(ParticipantId, Keys)> = Vec::new();
    for p in &net.genesis.participants {
        let config = kp_node::NodeConfig::load(&dir.join(p.id.as_str()).join("node.toml"))?;
        keys.push((
            p.id,
            Keys {
                exporting: net.authority_key(p.id, Role::Exporting)?,
                importing: net.authority_key(p.id, Role::Importing)?,
                api: config.api.to_string(),
                validity_days: p.max_certificate_validity_days,
            },
        ));
    }
    let chain_id = net.genesis.chain_id.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let today = kp_node::now().date();
    let run_tag = format!("L{:05X}", seed & 0xF_FFFF);

    // Issue + seal of each certificate, in order; the receipts follow their seals' commits.
    let mut first_wave: VecDeque<FirstWave> = VecDeque::new();
    for i in 0..certificates {
        let e = rng.random_range(0..keys.len());
        let mut m = rng.random_range(0..keys.len() - 1);
        if m >= e {
            m += 1;
        }
        let (exporter, ek) = (&keys[e].0, &keys[e].1);
        let (importer, ik) = (&keys[m].0, &keys[m].1);
        let number = format!("{exporter}-{}-{run_tag}-{i:07}", today.year());
        let label = number.clone();
        let c = certificate(&mut rng, number.clone(), *exporter, *importer, today, ek.validity_days)?;
        let carats = c.carats;
        let parcels = c.parcels;
        let sign = |key: &kp_crypto::SecretKey, payload: &EventPayload| -> Result<Vec<u8>> {
            Ok(kp_proto::sign_event(key, &chain_id, kp_proto::encode_payload(payload)?))
        };
        let issue = sign(&ek.exporting, &EventPayload::CertificateIssued(c))?;
        let number = CertificateNumber::new(&number)?;
        let seal = sign(
            &ek.exporting,
            &EventPayload::ShipmentSealed(ShipmentSealed {
                certificate: number.clone(),
                seal_ids: vec![Label::new(&format!("SEAL-{i}"))?],
                sealed_at: kp_node::now(),
                port_of_exit: Label::new("Main airport")?,
            }),
        )?;
        let receipt = sign(
            &ik.importing,
            &EventPayload::ReceiptConfirmed(ReceiptConfirmed {
                certificate: number,
                received_at: kp_node::now(),
                parcels_found: parcels,
                carats_found: carats,
                seals_intact: true,
                remarks: Text::new("synthetic load")?,
            }),
        )?;
        first_wave.push_back((e, label, issue, seal, (m, receipt)));
    }
    let total = certificates * 3;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let mut clients = Vec::with_capacity(keys.len());
        // Each participant's events go to its own node, as its authority.
        for (p, k) in &keys {
            clients.push(crate::node::connect_with(&k.api, &crate::node::testnet_auth(dir, Some(p.as_str()))).await?);
        }
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        // Receipts whose seals are committed, and receipts to send again.
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Ready>();

        // An earlier run with this seed issued the same numbers: say so before sending anything.
        if let Some((_, number, ..)) = first_wave.front() {
            let c = clients[0]
                .get_custody(pb::GetCustodyRequest { certificate: number.clone() })
                .await
                .map_err(|e| anyhow!("{}", e.message()))?
                .into_inner();
            if !c.steps.is_empty() {
                return Err(already_run(number, seed));
            }
        }

        // Watch commits on the first participant's node.
        let mut watcher =
            crate::node::connect_with(&keys[0].1.api, &crate::node::testnet_auth(dir, Some("reviewer"))).await?;
        let from = watcher.get_status(pb::GetStatusRequest {}).await.map_err(|e| anyhow!("{}", e.message()))?;
        let mut stream = watcher
            .subscribe_blocks(pb::SubscribeBlocksRequest { from_height: from.into_inner().height + 1 })
            .await
            .map_err(|e| anyhow!("{}", e.message()))?
            .into_inner();
        let t = Arc::clone(&tracker);
        let committed_tx = ready_tx.clone();
        let watch = tokio::spawn(async move {
            while let Ok(Some(block)) = stream.message().await {
                let now = Instant::now();
                let mut t = t.lock().map_err(|_| anyhow!("tracker poisoned"))?;
                t.blocks += 1;
                for e in &block.events {
                    let id = kp_crypto::event_id(e);
                    if let Some((at, next)) = t.waiting.remove(&id) {
                        t.latencies.push(now.duration_since(at).as_secs_f64() * 1000.0);
                        t.committed += 1;
                        t.last_commit = Some(now);
                        if let Some(next) = next {
                            let _ = committed_tx.send((next, id, 0));
                        }
                    }
                }
            }
            anyhow::Ok(())
        });

        let started = Instant::now();
        let end = started + deadline;
        let mut submitted = 0usize;
        let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        // Pacing: events may be sent as credit accrues at `rate`, with a burst of at most two
        // ticks' worth (and at least one certificate's two events).
        let burst = (rate * TICK.as_secs_f64() * 2.0).max(2.0);
        let mut credit = 0.0f64;
        let mut last = started;
        let mut batches: Vec<Vec<Outgoing>> = (0..clients.len()).map(|_| Vec::new()).collect();
        loop {
            let done = {
                let t = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
                if let Some(number) = &t.existing {
                    watch.abort();
                    return Err(already_run(number, seed));
                }
                t.committed + t.refused + t.receipts_not_sent >= total
            };
            if done || Instant::now() >= end {
                break;
            }
            let now = Instant::now();
            credit = (credit + now.duration_since(last).as_secs_f64() * rate).min(burst);
            last = now;
            // Receipts first (they complete certificates), then new certificates.
            while credit >= 1.0 {
                if let Ok(((node, envelope), seal, tries)) = ready_rx.try_recv() {
                    batches[node].push(Outgoing::new(envelope, None, Some((seal, tries))));
                    if tries == 0 {
                        submitted += 1;
                        credit -= 1.0;
                    }
                } else if credit >= 2.0
                    && let Some((node, number, issue, seal, receipt)) = first_wave.pop_front()
                {
                    batches[node].push(Outgoing::issue(issue, number));
                    batches[node].push(Outgoing::new(seal, Some(receipt), None));
                    submitted += 2;
                    credit -= 2.0;
                } else {
                    break;
                }
            }
            for (node, batch) in batches.iter_mut().enumerate() {
                while !batch.is_empty() {
                    // Batches of one node may be answered in any order: an issue and its seal
                    // stay in one.
                    let mut cut = batch.len().min(kp_node::api::MAX_SUBMIT_BATCH);
                    if cut < batch.len() && batch[cut - 1].issues.is_some() {
                        cut -= 1;
                    }
                    let rest = batch.split_off(cut);
                    let mut send = std::mem::replace(batch, rest);
                    {
                        let mut t = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
                        let now = Instant::now();
                        for o in &mut send {
                            // A receipt sent again keeps its first submission time.
                            t.waiting.entry(o.id).or_insert((now, o.then.take()));
                        }
                    }
                    let permit = Arc::clone(&permits).acquire_owned().await?;
                    let (client, t, again) = (clients[node].clone(), Arc::clone(&tracker), ready_tx.clone());
                    tokio::spawn(async move {
                        send_batch(client, node, send, t, again).await;
                        drop(permit);
                    });
                }
            }
            tokio::time::sleep(TICK).await;
        }
        watch.abort();
        let t = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
        let mut lat = t.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let seconds = t.last_commit.map_or(0.0, |l| l.duration_since(started).as_secs_f64());
        Ok(LoadReport {
            seed,
            certificates,
            target_rate: rate,
            events_submitted: submitted,
            events_committed: t.committed,
            events_refused: t.refused,
            refusals: t.refusals.clone(),
            receipts_not_sent: t.receipts_not_sent,
            seconds,
            events_per_second: if seconds > 0.0 { t.committed as f64 / seconds } else { 0.0 },
            latency_ms_p50: percentile(&lat, 0.50),
            latency_ms_p99: percentile(&lat, 0.99),
            latency_ms_max: lat.last().copied().unwrap_or(0.0),
            blocks: t.blocks,
            complete: t.committed == total,
        })
    })
}
