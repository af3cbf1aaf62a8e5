//! How far this node's clock is from the voters' consensus time.
//!
//! Block time comes from the clock readings the voters sign in each commit certificate
//! (`kp_consensus::block::consensus_time`), so no check of consensus reads this node's clock and
//! a node whose clock is off votes as the others do. Its operator must still be told: the node
//! compares its clock with those readings at every commit and, past a threshold, warns in its
//! log — when it starts to be off, then every [`WARN_EVERY_MS`] while it stays off, and when it
//! is back — and reports the offset (metric `kp_clock_offset_seconds`, `kpledger status`).

use kp_consensus::block::Certificate;
use kp_domain::{ParticipantId, Timestamp};

/// How often a node whose clock stays off says so again.
pub const WARN_EVERY_MS: u64 = 60_000;
/// The offset past which a node warns, unless its configuration says otherwise.
pub const DEFAULT_WARNING_MS: u64 = 2_000;

/// This node's clock against consensus time, as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOffset {
    /// This clock minus consensus time, in milliseconds: positive when this clock is ahead.
    pub offset_ms: i64,
    /// When it was measured (this node's clock).
    pub at: Timestamp,
    /// Since when the offset has been past the threshold, if it is.
    pub off_since: Option<Timestamp>,
}

/// What the node should say about its clock after a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockNotice {
    /// Past the threshold: `first` when it just went past.
    Off { offset_ms: i64, since: Timestamp, first: bool },
    /// Back within the threshold after being off.
    Back { offset_ms: i64 },
}

/// The median of `times` (the lower one of an even count), as consensus time takes it.
fn median(mut times: Vec<i128>) -> Option<i128> {
    times.sort_unstable();
    times.get(times.len().checked_sub(1)? / 2).copied()
}

/// Each signer's reading minus the median of all readings of `c`, in milliseconds.
pub fn signer_offsets(c: &Certificate) -> Vec<(ParticipantId, i64)> {
    let all: Vec<i128> = c.times().map(|t| i128::from(t.0)).collect();
    let Some(m) = median(all) else { return Vec::new() };
    c.signatures
        .iter()
        .chain(&c.withheld)
        .map(|s| (s.voter, i64::try_from(i128::from(s.time.0) - m).unwrap_or(i64::MAX)))
        .collect()
}

#[derive(Debug, Clone)]
pub struct ClockWatch {
    threshold_ms: u64,
    last: Option<ClockOffset>,
    last_warned: Option<Timestamp>,
}

impl ClockWatch {
    pub fn new(threshold_ms: u64) -> ClockWatch {
        ClockWatch { threshold_ms: threshold_ms.max(1), last: None, last_warned: None }
    }

    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms
    }

    pub fn set_threshold_ms(&mut self, ms: u64) {
        self.threshold_ms = ms.max(1);
    }

    pub fn last(&self) -> Option<ClockOffset> {
        self.last
    }

    /// This node's offset from a commit certificate: its own signed reading against the median
    /// of the others' when it signed (no network delay in between), otherwise its clock `now`
    /// against the median of all (an observer: off by the commit's delay, a fraction of a
    /// second). `None` without readings to compare with.
    pub fn offset_from(c: &Certificate, me: Option<ParticipantId>, now: Timestamp) -> Option<i64> {
        let mine = c.signatures.iter().chain(&c.withheld).find(|s| Some(s.voter) == me).map(|s| s.time);
        let others: Vec<i128> = c
            .signatures
            .iter()
            .chain(&c.withheld)
            .filter(|s| mine.is_none() || Some(s.voter) != me)
            .map(|s| i128::from(s.time.0))
            .collect();
        let m = median(others)?;
        let reading = i128::from(mine.unwrap_or(now).0);
        Some(i64::try_from(reading - m).unwrap_or(if reading > m { i64::MAX } else { i64::MIN }))
    }

    /// Records a measurement made at `now`; says what to tell the operator, if anything.
    pub fn record(&mut self, offset_ms: i64, now: Timestamp) -> Option<ClockNotice> {
        let off = offset_ms.unsigned_abs() > self.threshold_ms;
        let was = self.last.and_then(|l| l.off_since);
        let off_since = off.then(|| was.unwrap_or(now));
        self.last = Some(ClockOffset { offset_ms, at: now, off_since });
        match (off_since, was) {
            (Some(since), None) => {
                self.last_warned = Some(now);
                Some(ClockNotice::Off { offset_ms, since, first: true })
            }
            (Some(since), Some(_)) => {
                let due = self.last_warned.is_none_or(|t| now.0 >= t.0.saturating_add(WARN_EVERY_MS) || now < t);
                due.then(|| {
                    self.last_warned = Some(now);
                    ClockNotice::Off { offset_ms, since, first: false }
                })
            }
            (None, Some(_)) => Some(ClockNotice::Back { offset_ms }),
            (None, None) => None,
        }
    }

    /// At start, before any commit is seen: a clock behind the last committed block's time by
    /// more than the threshold is certainly off (block times are consensus times).
    pub fn at_start(&mut self, head_time: Timestamp, now: Timestamp) -> Option<ClockNotice> {
        let behind = head_time.0.saturating_sub(now.0);
        if behind <= self.threshold_ms {
            return None;
        }
        self.record(-i64::try_from(behind).unwrap_or(i64::MAX), now)
    }
}

/// "+1m 0.0s ahead of" / "3.2s behind" — an offset as an operator reads it.
pub fn describe(offset_ms: i64) -> String {
    let ms = offset_ms.unsigned_abs();
    let direction = if offset_ms >= 0 { "ahead of" } else { "behind" };
    let (h, m, s, tenths) = (ms / 3_600_000, (ms / 60_000) % 60, (ms / 1_000) % 60, (ms % 1_000) / 100);
    let amount = match (h, m) {
        (0, 0) => format!("{s}.{tenths}s"),
        (0, m) => format!("{m}m {s}.{tenths}s"),
        (h, m) => format!("{h}h {m}m {s}.{tenths}s"),
    };
    format!("{amount} {direction}")
}

/// Milliseconds as signed seconds, for a metric.
pub fn seconds(ms: i64) -> f64 {
    let s = std::time::Duration::from_millis(ms.unsigned_abs()).as_secs_f64();
    if ms < 0 { s.copysign(-1.0) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kp_consensus::block::{Certificate, VoteBody, VoteKind, VoteSignature};
    use kp_crypto::Signature;
    use kp_domain::Hash32;

    fn pid(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }

    fn cert(times: &[(&str, u64)]) -> Certificate {
        let body = VoteBody { kind: VoteKind::Precommit, height: 3, round: 0, block_hash: Hash32([1; 32]) };
        let signatures = times
            .iter()
            .map(|(v, t)| VoteSignature { voter: pid(v), time: Timestamp(*t), signature: Signature([0; 64]) })
            .collect();
        Certificate { body, signatures, withheld: None }
    }

    #[test]
    fn a_signer_is_measured_against_the_others_and_an_observer_against_all() {
        let c = cert(&[("AA", 100_000), ("BB", 100_020), ("CC", 160_000), ("DD", 99_990)]);
        // CC is a minute ahead of the others' median (100,000).
        assert_eq!(ClockWatch::offset_from(&c, Some(pid("CC")), Timestamp(0)), Some(60_000));
        assert_eq!(ClockWatch::offset_from(&c, Some(pid("AA")), Timestamp(0)), Some(-20));
        // An observer compares its clock with the median of all (lower median: 100,000).
        assert_eq!(ClockWatch::offset_from(&c, None, Timestamp(100_500)), Some(500));
        let peers = signer_offsets(&c);
        assert_eq!(peers.iter().find(|(p, _)| *p == pid("CC")).unwrap().1, 60_000);
        assert_eq!(ClockWatch::offset_from(&cert(&[]), None, Timestamp(5)), None);
    }

    #[test]
    fn an_operator_is_told_when_the_clock_goes_off_again_every_minute_and_when_it_is_back() {
        let mut w = ClockWatch::new(2_000);
        assert_eq!(w.record(500, Timestamp(1_000)), None);
        let t = |s: u64| Timestamp(s * 1_000);
        assert_eq!(
            w.record(-3_600_000, t(10)),
            Some(ClockNotice::Off { offset_ms: -3_600_000, since: t(10), first: true })
        );
        assert_eq!(w.record(-3_600_000, t(30)), None, "not again within a minute");
        assert_eq!(
            w.record(-3_600_000, t(71)),
            Some(ClockNotice::Off { offset_ms: -3_600_000, since: t(10), first: false })
        );
        assert_eq!(w.last().unwrap().off_since, Some(t(10)));
        assert_eq!(w.record(100, t(80)), Some(ClockNotice::Back { offset_ms: 100 }));
        assert_eq!(w.last().unwrap().off_since, None);
        // At start: behind the last block by more than the threshold.
        let mut w = ClockWatch::new(2_000);
        assert_eq!(w.at_start(t(100), t(99)), None);
        assert!(matches!(w.at_start(t(100), t(40)), Some(ClockNotice::Off { offset_ms: -60_000, .. })));
        assert_eq!(describe(-3_600_000), "1h 0m 0.0s behind");
        assert_eq!(describe(61_500), "1m 1.5s ahead of");
        assert_eq!(describe(0), "0.0s ahead of");
    }
}
