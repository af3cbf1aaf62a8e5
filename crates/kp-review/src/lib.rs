//! Review-visit reports, KP statistics and anomaly detection over the committed ledger.
//!
//! # Model
//!
//! A [`Review`] is built from the genesis ([`Review::new`]) and then fed every committed event
//! in commit order ([`Review::add`] with a [`Committed`]: block height, block time, event id,
//! payload). It is a pure library: no I/O, no clock (the review's day is an argument), no
//! threads, and every output is ordered (B-tree maps, sorted lists), so the same events give
//! the same bytes on every machine. It keeps:
//!
//! - per certificate: the current content (the issue, then each amendment replacing it), the
//!   seal, the receipt and the void, each with the event's id, height and block time;
//! - per participant and half-year: the latest production report (a later revision replaces
//!   the earlier);
//! - per participant: the genesis status and every status change by a governance act
//!   (admit, suspend, restrict, readmit, withdraw), with the act's event.
//!
//! The events were admitted by the rules engine, but nothing here relies on it: an event that
//! cannot be placed (a seal of an unknown certificate, a second issue of a number, a second
//! seal or receipt...) is ignored and counted ([`Review::ignored`]); nothing panics.
//!
//! Memory: a recorded event costs 56 bytes (id, height, block time, kind); a certificate 208
//! bytes of record (the Annex I figures in fixed fields, three HS slots, indexes of its
//! events) plus its number and the map's slack, about 400 bytes in all. Trader names and other
//! free text are not kept. A year of world trade (57,000 certificates, 170,000 events) takes
//! about 33 MB; a million events (some 330,000 certificates) about 190 MB.
//!
//! Quantities are integers ([`kp_domain::Carats`] in hundredths, [`kp_domain::UsdCents`]);
//! floating point is used only for the undervaluation statistics.
//!
//! # Outputs
//!
//! - [`Review::participant_report`]: a review visit's custody history of one participant.
//! - [`Review::anomalies`]: the findings defined below.
//! - [`Review::stats`]: Annex III style statistics of a year.
//! - [`chart_svg`]: exports against production plus imports, per quarter, as SVG.
//!
//! Every output derives `serde::Serialize`, implements `Display`, and the tabular ones have a
//! `to_csv` ([`anomalies_to_csv`] for a list of findings). Every finding carries the ids of the
//! events that prove it.
//!
//! # Anomalies: exact definitions
//!
//! The period `[from, to]` of [`AnomalyParams`] selects certificates by their (current) issue
//! date, and half-years that overlap it; `None` bounds are open. `today` is the review's day.
//! "Content events" are a certificate's issue and amendments. A finding about a certificate
//! has its issue quarter as period, the exporter as participant and the importer as
//! counterpart unless said otherwise.
//!
//! - **`never_confirmed`**: not voided, no receipt, and `expires_on < today`. Evidence: the
//!   content events and the seal if any (an absence has no event).
//! - **`late_confirmation`**: a receipt whose block time is more than `late_receipt_days`
//!   × 24 h after the block time of the seal (of the issue, for a receipt without a seal,
//!   which the rules do not admit). The seal is the reference because it is when the shipment
//!   leaves the exporter: the time between issue and seal is the exporter's, the transit and
//!   the confirmation are the importer's. Block times are used on both sides because they are
//!   the ledger's own and cannot be backdated by either authority. Participant: the
//!   **importer** (it owes the confirmation); counterpart: the exporter. Evidence: content
//!   events, seal, receipt.
//! - **`receipt_mismatch`**: one per receipt whose parcels or carats found differ from the
//!   certificate's current revision, or whose seals were found broken; the explanation lists
//!   every difference. Evidence: content events, seal, receipt.
//! - **`exports_exceed_supply`** (the Republic of the Congo pattern): per participant P and
//!   half-year H overlapping the period, with E = carats of the certificates P issued with an
//!   issue date in H, not voided; R = carats of P's latest production report for H (0 if
//!   none); I = carats of the certificates naming P as importer with an issue date in H, not
//!   voided (received or not). Flagged when `E × 100 > (R + I) × (100 + tolerance)`, in
//!   integers. A trader hub without production is clean as long as its imports cover its
//!   exports. Counterpart and certificate: none. Evidence: the production report's event (if
//!   any), then the event holding the current content of the [`MAX_EXPORT_EVIDENCE`] largest
//!   export certificates, largest first (ties by number).
//! - **`undervaluation`**: for every HS line of every certificate not voided, x = value / carats
//!   in USD per carat. Lines are grouped by HS code and quarter of issue (all certificates,
//!   whatever the period: the norm does not depend on the period asked); in a group of at
//!   least `min_samples` lines, with m its median and s = 1.4826 × the median absolute
//!   deviation, a line in the period is flagged when `x < m / 2` and `(m − x) / s >
//!   undervaluation_threshold` (a zero spread counts as unbounded). One finding per line;
//!   period: the quarter. Evidence: content events. Note: on widely spread (log-normal)
//!   prices the spread can exceed m / threshold, and then nothing in the group can be flagged;
//!   the definition suits groups whose prices are fairly homogeneous.
//! - **`trade_while_suspended`**: for each party of a certificate, the custody events of the
//!   certificate (issue, seal, receipt) committed while that party's status, as set by a
//!   governance act committed before them, forbade them: suspended or withdrawn (either side),
//!   or restricted when the party is the exporter and the certificate does not meet the
//!   restriction (an origin of its own and a listed zone). The rules engine refuses new
//!   certificates in those cases, so what remains is a certificate issued before the act and
//!   sealed or received after it. One finding per (certificate, party); participant: the
//!   party, counterpart: the other. A status from the genesis is not an act and is not
//!   reported. Evidence: the issue, the offending custody events and the governance events,
//!   in commit order.
//!
//! Findings are ordered by kind, participant, period and certificate.

mod anomaly;
mod chart;
mod flow;
mod model;
mod period;
mod report;
mod stats;

pub use anomaly::{Anomaly, AnomalyKind, AnomalyParams, Figures, MAX_EXPORT_EVIDENCE, anomalies_to_csv};
pub use chart::{chart_svg, escape_xml};
pub use flow::{Amount, Cell, CounterpartAmount, Flow, HsAmount, csv_line};
pub use model::{Committed, EventRef, IgnoredEvent, MAX_IGNORED_KEPT, Review};
pub use period::{Half, Period, Quarter};
pub use report::{
    CertificateEntry, CertificateState, GovernanceEntry, Incident, OverdueEntry, ParticipantHistory, ParticipantReport,
    TradeRole,
};
pub use stats::{ParticipantStats, ProductionHalf, QuarterStats, Stats, WorldQuarter};

/// A parameter given to the review that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("{field}: {problem}")]
    InvalidParameter { field: &'static str, problem: String },
}
