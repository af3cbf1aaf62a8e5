//! Why the rules engine refused an event. Every variant names the field or party at fault.

use kp_domain::{
    CertificateNumber, Date, EventKind, FieldError, HalfYear, Label, ParticipantId, PublicKey, Role, Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("block time {got} is before the previous block time {last}")]
    BlockTimeWentBack { last: Timestamp, got: Timestamp },
    #[error("invalid field {0}")]
    Malformed(#[from] FieldError),
    #[error("signer: key {key} is not an authority key of any participant")]
    UnknownSigner { key: String },
    #[error("signer: key {key} of {participant} was revoked")]
    RevokedSigner { key: String, participant: ParticipantId },
    #[error(
        "signer: {kind} must be signed by the {required_role} authority of {required}, not by the {role} authority of {participant}"
    )]
    WrongAuthority {
        kind: EventKind,
        required: ParticipantId,
        required_role: Role,
        participant: ParticipantId,
        role: Role,
    },
    #[error("{field}: {id} is not a KP participant")]
    UnknownParticipant { field: &'static str, id: ParticipantId },
    #[error("{field}: participant {id} is {status} and may not trade")]
    NotTrading { field: &'static str, id: ParticipantId, status: &'static str },
    #[error("origin_zone: {exporter} is restricted to exports from {allowed:?}; {reason}")]
    RestrictedZone { exporter: ParticipantId, allowed: Vec<String>, reason: String },
    #[error("number: certificate {number} has already been issued")]
    DuplicateCertificate { number: CertificateNumber },
    #[error("expires_on: a validity of {days} days exceeds the {max} days {participant} allows")]
    ValidityTooLong { participant: ParticipantId, days: i64, max: u16 },
    #[error("issued_on: {issued_on} is after the block date {block_date}")]
    IssueDateInFuture { issued_on: Date, block_date: Date },
    #[error("issued_on: {issued_on} is more than {max_days} days before the block date {block_date}")]
    IssueDateTooOld { issued_on: Date, block_date: Date, max_days: u16 },
    #[error("expires_on: certificate {number} expired on {expires_on}, before the block date {block_date}")]
    Expired { number: CertificateNumber, expires_on: Date, block_date: Date },
    #[error("certificate: {number} has not been issued")]
    UnknownCertificate { number: CertificateNumber },
    #[error("certificate: {number} has already been sealed")]
    AlreadySealed { number: CertificateNumber },
    #[error("certificate: {number} has not been sealed yet; receipt comes after sealing")]
    NotSealed { number: CertificateNumber },
    #[error("certificate: receipt of {number} has already been confirmed")]
    AlreadyReceived { number: CertificateNumber },
    #[error("certificate: {number} has been voided")]
    Voided { number: CertificateNumber },
    #[error("certificate: {number} was sealed; correct it by voiding it and issuing a new certificate")]
    AmendAfterSeal { number: CertificateNumber },
    #[error("certificate: {number} has been amended {max} times, the most allowed")]
    TooManyAmendments { number: CertificateNumber, max: u32 },
    #[error("{field}: {time} is before {what} ({earliest})")]
    TooEarly { field: &'static str, time: Timestamp, what: &'static str, earliest: Timestamp },
    #[error("{field}: {time} is more than {ahead_ms} ms after the block time {block_time}")]
    InFuture { field: &'static str, time: Timestamp, block_time: Timestamp, ahead_ms: u64 },
    #[error("participant: {participant} is withdrawn and reports nothing")]
    WithdrawnReporter { participant: ParticipantId },
    #[error("revision: production report {participant} {period} expects revision {expected}, got {got}")]
    WrongRevision { participant: ParticipantId, period: HalfYear, expected: u32, got: u32 },
    #[error("period: {period} has not started on the block date {block_date}")]
    PeriodNotStarted { period: HalfYear, block_date: Date },
    #[error("signer: a governance act is submitted by an authority of a voting participant; {participant} is {status}")]
    ProposerNotVoting { participant: ParticipantId, status: &'static str },
    #[error("act.reference: an act with reference {reference} is already in the ledger")]
    DuplicateAct { reference: Label },
    #[error("approvals[{index}]: key {key} is not a current authority key of any participant")]
    UnknownApprover { index: usize, key: String },
    #[error("approvals[{index}]: key {key} approves twice")]
    DuplicateApproval { index: usize, key: String },
    #[error("approvals: {action} of {subject} lacks the approval of {missing:?}")]
    MissingApprovals { action: &'static str, subject: ParticipantId, missing: Vec<ParticipantId> },
    #[error("act.action: {action} does not apply to {participant}, which is {status}")]
    InvalidTransition { action: &'static str, participant: ParticipantId, status: &'static str },
    #[error("act.action.admit.id: {id} is already known to the ledger (use readmit)")]
    ParticipantExists { id: ParticipantId },
    #[error("{field}: key {key} is already in use or was revoked")]
    KeyInUse { field: &'static str, key: String },
    #[error("act.action.authority_key_revoked.key: {key} is not a current authority key of {participant}")]
    KeyNotOwned { participant: ParticipantId, key: String },
    #[error("act.action.authority_key_added: {participant} already holds {max} authority keys")]
    TooManyKeys { participant: ParticipantId, max: usize },
    #[error("act.action: {action} of {participant} would leave no voting participant")]
    NoVoterLeft { action: &'static str, participant: ParticipantId },
    #[error(
        "act.action: {action} is not decided by written procedure (only admission, suspension, restriction, readmission and withdrawal are)"
    )]
    NotByWrittenProcedure { action: &'static str },
    #[error("deadline: {deadline} is not after the block time {block_time}")]
    DeadlinePassed { deadline: Timestamp, block_time: Timestamp },
    #[error("deadline: {deadline} is more than {max_days} days after the block time {block_time}")]
    DeadlineTooFar { deadline: Timestamp, block_time: Timestamp, max_days: u64 },
    #[error("act: {max} written procedures are open already; one must close before another opens")]
    TooManyProcedures { max: usize },
    #[error("reference: no written procedure has reference {reference}")]
    UnknownProcedure { reference: Label },
    #[error("reference: the written procedure {reference} is closed ({outcome})")]
    ProcedureClosed { reference: Label, outcome: &'static str },
    #[error(
        "reference: the written procedure {reference} closed at its deadline {deadline}; the block time is {block_time}"
    )]
    ProcedureDeadlinePassed { reference: Label, deadline: Timestamp, block_time: Timestamp },
    #[error(
        "signer: {participant} does not decide {action} of {subject} (the party concerned takes no part, and only voting participants decide)"
    )]
    NotEntitled { participant: ParticipantId, action: &'static str, subject: ParticipantId },
    #[error("signer: {participant} has already responded to the written procedure {reference}")]
    AlreadyResponded { participant: ParticipantId, reference: Label },
    #[error("act: the written procedure {reference} was opened on another act")]
    ProcedureActDiffers { reference: Label },
    #[error("act.reference: the written procedure {reference} closes at {deadline}; the block time is {block_time}")]
    DeadlineNotReached { reference: Label, deadline: Timestamp, block_time: Timestamp },
    #[error("adopted: the conclusion of {reference} states {stated}; the procedure is {actual}")]
    WrongConclusion { reference: Label, stated: &'static str, actual: String },
}

impl Rejection {
    /// Whether the event is refused only because it is dated after the block's time (which
    /// trails the clocks after a halt, and at block 1): a later block may take it.
    pub fn is_early(&self) -> bool {
        matches!(self, Rejection::InFuture { .. } | Rejection::IssueDateInFuture { .. })
    }

    /// A stable, machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::BlockTimeWentBack { .. } => "block_time_went_back",
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownSigner { .. } => "unknown_signer",
            Rejection::RevokedSigner { .. } => "revoked_signer",
            Rejection::WrongAuthority { .. } => "wrong_authority",
            Rejection::UnknownParticipant { .. } => "unknown_participant",
            Rejection::NotTrading { .. } => "participant_not_trading",
            Rejection::RestrictedZone { .. } => "restricted_zone",
            Rejection::DuplicateCertificate { .. } => "duplicate_certificate",
            Rejection::ValidityTooLong { .. } => "validity_too_long",
            Rejection::IssueDateInFuture { .. } => "issue_date_in_future",
            Rejection::IssueDateTooOld { .. } => "issue_date_too_old",
            Rejection::Expired { .. } => "certificate_expired",
            Rejection::UnknownCertificate { .. } => "unknown_certificate",
            Rejection::AlreadySealed { .. } => "already_sealed",
            Rejection::NotSealed { .. } => "not_sealed",
            Rejection::AlreadyReceived { .. } => "already_received",
            Rejection::Voided { .. } => "certificate_voided",
            Rejection::AmendAfterSeal { .. } => "amend_after_seal",
            Rejection::TooManyAmendments { .. } => "too_many_amendments",
            Rejection::TooEarly { .. } => "time_too_early",
            Rejection::InFuture { .. } => "time_in_future",
            Rejection::WithdrawnReporter { .. } => "withdrawn_reporter",
            Rejection::WrongRevision { .. } => "wrong_revision",
            Rejection::PeriodNotStarted { .. } => "period_not_started",
            Rejection::ProposerNotVoting { .. } => "proposer_not_voting",
            Rejection::DuplicateAct { .. } => "duplicate_act",
            Rejection::UnknownApprover { .. } => "unknown_approver",
            Rejection::DuplicateApproval { .. } => "duplicate_approval",
            Rejection::MissingApprovals { .. } => "missing_approvals",
            Rejection::InvalidTransition { .. } => "invalid_transition",
            Rejection::ParticipantExists { .. } => "participant_exists",
            Rejection::KeyInUse { .. } => "key_in_use",
            Rejection::KeyNotOwned { .. } => "key_not_owned",
            Rejection::TooManyKeys { .. } => "too_many_keys",
            Rejection::NoVoterLeft { .. } => "no_voter_left",
            Rejection::NotByWrittenProcedure { .. } => "not_by_written_procedure",
            Rejection::DeadlinePassed { .. } => "deadline_passed",
            Rejection::DeadlineTooFar { .. } => "deadline_too_far",
            Rejection::TooManyProcedures { .. } => "too_many_procedures",
            Rejection::UnknownProcedure { .. } => "unknown_procedure",
            Rejection::ProcedureClosed { .. } => "procedure_closed",
            Rejection::ProcedureDeadlinePassed { .. } => "procedure_deadline_passed",
            Rejection::NotEntitled { .. } => "not_entitled",
            Rejection::AlreadyResponded { .. } => "already_responded",
            Rejection::ProcedureActDiffers { .. } => "procedure_act_differs",
            Rejection::DeadlineNotReached { .. } => "deadline_not_reached",
            Rejection::WrongConclusion { .. } => "wrong_conclusion",
        }
    }
}

pub(crate) fn key_str(k: &PublicKey) -> String {
    k.short()
}
