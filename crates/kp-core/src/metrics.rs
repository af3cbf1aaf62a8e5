//! The node's Prometheus metrics (served at `/metrics` on the configured address).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ParticipantLabel {
    pub participant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub round: Gauge,
    pub pending_events: Gauge,
    pub peers: Gauge,
    pub sync_lag: Gauge,
    /// Seconds from an event's submission to this node until its block is committed.
    pub commit_latency: Histogram,
    /// Rounds a voter held up (named missing when the round ended).
    pub missed_votes: Family<ParticipantLabel, Counter>,
    /// 1 for each voter the current round is waiting for.
    pub missing_now: Family<ParticipantLabel, Gauge>,
    /// Submissions and consensus messages refused, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Times the whole pending pool was applied afresh as a tentative block (after the engine
    /// executed or committed a block, or a catch-up): its cost grows with the pool.
    pub pool_reapplied: Counter,
    /// This node's clock minus the voters' consensus time (positive: ahead), at the last commit.
    pub clock_offset: Gauge<f64, AtomicU64>,
    /// Each voter's signed clock reading minus the median of the last commit's readings.
    pub peer_clock_offset: Family<ParticipantLabel, Gauge<f64, AtomicU64>>,
    /// Messages written to peers' message streams, the writes that carried them (queued
    /// messages are batched into one write), messages dropped because a peer's send queue was
    /// full or its stream could not be written, and messages read from peers.
    pub net_messages_sent: Counter,
    pub net_writes: Counter,
    pub net_messages_dropped: Counter,
    pub net_messages_received: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kp");
        let m = Metrics {
            registry: Registry::default(),
            height: Gauge::default(),
            round: Gauge::default(),
            pending_events: Gauge::default(),
            peers: Gauge::default(),
            sync_lag: Gauge::default(),
            commit_latency: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            missed_votes: Family::default(),
            missing_now: Family::default(),
            rejected: Family::default(),
            pool_reapplied: Counter::default(),
            clock_offset: Gauge::default(),
            peer_clock_offset: Family::default(),
            net_messages_sent: Counter::default(),
            net_writes: Counter::default(),
            net_messages_dropped: Counter::default(),
            net_messages_received: Counter::default(),
        };
        registry.register("height", "Height of the last committed block", m.height.clone());
        registry.register("round", "Consensus round at the current height", m.round.clone());
        registry.register("pending_events", "Submitted events waiting to be committed", m.pending_events.clone());
        registry.register("peers", "Connected peer nodes", m.peers.clone());
        registry.register("sync_lag", "Blocks this node is known to be behind the network", m.sync_lag.clone());
        registry.register(
            "commit_latency_seconds",
            "Time from an event's submission to this node until its block is committed",
            m.commit_latency.clone(),
        );
        registry.register("missed_votes", "Rounds each voter held up", m.missed_votes.clone());
        registry.register("missing_voters", "Voters the current round is waiting for (1 each)", m.missing_now.clone());
        registry.register("rejected", "Submissions and consensus messages refused, by reason", m.rejected.clone());
        registry.register(
            "clock_offset_seconds",
            "This node's clock minus the voters' consensus time at the last commit (positive: ahead)",
            m.clock_offset.clone(),
        );
        registry.register(
            "peer_clock_offset_seconds",
            "Each voter's signed clock reading minus the median of the last commit's readings",
            m.peer_clock_offset.clone(),
        );
        registry.register(
            "pool_reapplied",
            "Times the whole pending pool was applied afresh as a tentative block",
            m.pool_reapplied.clone(),
        );
        registry.register(
            "net_messages_sent",
            "Messages written to peers' message streams",
            m.net_messages_sent.clone(),
        );
        registry.register(
            "net_writes",
            "Writes to peers' message streams (each carries the messages queued)",
            m.net_writes.clone(),
        );
        registry.register(
            "net_messages_dropped",
            "Messages to peers dropped: send queue full or stream not writable",
            m.net_messages_dropped.clone(),
        );
        registry.register(
            "net_messages_received",
            "Messages read from peers' message streams",
            m.net_messages_received.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn reject(&self, reason: &str) {
        self.rejected.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// Records the voters the current round waits for (an empty list clears them).
    pub fn set_missing(&self, voters: &[kp_domain::ParticipantId]) {
        self.missing_now.clear();
        for v in voters {
            let label = ParticipantLabel { participant: v.as_str().to_owned() };
            self.missing_now.get_or_create(&label).set(1);
            self.missed_votes.get_or_create(&label).inc();
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
