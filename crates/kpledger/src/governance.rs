//! `kpledger governance propose | approve | status`: a governance act (admit, suspend,
//! restrict, readmit, withdraw, authority key added or revoked) is drafted and approved by its
//! proposer's authority, then approved by the authority of each participant whose approval the
//! rules need. Each approval is signed here (the key never leaves this machine) over the act's
//! exact bytes and handed to a node; the nodes collect the approvals and pass them on to every
//! voter's node. The approval that completes the act also submits it: the governance event
//! carrying every approval, signed by that approver, which the nodes commit in a block of its own.
//!
//! Written procedure (`propose --written-procedure --deadline`, `approve`, `object`,
//! `conclude`): every step is an event on the ledger (docs/rules.md, "Written procedure").
//! `history` replays the node's committed governance events over its genesis here, with the
//! rules engine, so that every act's approvals, objections and outcome come from the ledger.

use crate::keyfile;
use crate::node::{ExpectedGenesis, block_on, chain_id, connect};
use anyhow::{Context, Result, anyhow, bail};
use kp_domain::{
    AuthorityKey, ChainId, GovernanceAct, GovernanceAction, Label, Participant, ParticipantId, PublicKey, Role, Text,
};
use kp_node::pb;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the act does, from the command line.
#[derive(Debug, Default)]
pub struct ActSpec {
    pub action: String,
    pub participant: Option<String>,
    pub zones: Vec<String>,
    pub participant_file: Option<std::path::PathBuf>,
    pub new_key: Option<String>,
    pub role: Option<String>,
    pub revoke_key: Option<String>,
}

fn participant(spec: &ActSpec) -> Result<ParticipantId> {
    let code = spec.participant.as_deref().ok_or_else(|| anyhow!("--participant is required for {}", spec.action))?;
    ParticipantId::new(code).map_err(|e| anyhow!("--participant {code:?}: {e}"))
}

fn key_hex(flag: &str, hex: &str) -> Result<PublicKey> {
    PublicKey::from_hex(hex).map_err(|e| anyhow!("{flag} {hex:?} is not a public key (64 hex digits): {e}"))
}

/// The governance action described by `spec`.
pub fn action(spec: &ActSpec) -> Result<GovernanceAction> {
    Ok(match spec.action.as_str() {
        "suspend" => GovernanceAction::Suspend { participant: participant(spec)? },
        "readmit" => GovernanceAction::Readmit { participant: participant(spec)? },
        "withdraw" => GovernanceAction::Withdraw { participant: participant(spec)? },
        "restrict" => {
            if spec.zones.is_empty() {
                bail!("restrict needs at least one --zone (the zones it may still export from)");
            }
            let zones = spec
                .zones
                .iter()
                .map(|z| Label::new(z).map_err(|e| anyhow!("--zone {z:?}: {e}")))
                .collect::<Result<_>>()?;
            GovernanceAction::Restrict { participant: participant(spec)?, zones }
        }
        "admit" => {
            let file = spec.participant_file.as_ref().ok_or_else(|| anyhow!("admit needs --participant-file FILE"))?;
            let json = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let p: Participant = serde_json::from_str(&json)
                .with_context(|| format!("{} is not a participant (JSON)", file.display()))?;
            GovernanceAction::Admit(p)
        }
        "authority-key-added" => {
            let key = key_hex("--new-key", spec.new_key.as_deref().ok_or_else(|| anyhow!("--new-key is required"))?)?;
            let role = match spec.role.as_deref() {
                Some("exporting") => Role::Exporting,
                Some("importing") => Role::Importing,
                other => bail!("--role must be exporting or importing, not {other:?}"),
            };
            GovernanceAction::AuthorityKeyAdded { participant: participant(spec)?, key: AuthorityKey { key, role } }
        }
        "authority-key-revoked" => GovernanceAction::AuthorityKeyRevoked {
            participant: participant(spec)?,
            key: key_hex(
                "--revoke-key",
                spec.revoke_key.as_deref().ok_or_else(|| anyhow!("--revoke-key is required"))?,
            )?,
        },
        other => bail!(
            "unknown action {other:?}: admit, suspend, restrict, readmit, withdraw, authority-key-added or authority-key-revoked"
        ),
    })
}

#[derive(Debug, Serialize)]
pub struct ActReport {
    pub reference: String,
    pub action: String,
    pub subject: String,
    pub act_digest: String,
    pub approved_by: Vec<String>,
    pub missing: Vec<String>,
    /// Why the act cannot apply whoever approves it.
    pub refused: Option<String>,
    /// The governance event this command submitted (it completed the approvals).
    pub submitted_event: Option<String>,
    pub committed_height: Option<u64>,
}

fn report(s: &pb::GovernanceStatus, submitted_event: Option<String>) -> ActReport {
    ActReport {
        reference: s.reference.clone(),
        action: s.action.clone(),
        subject: s.subject.clone(),
        act_digest: s.act_digest.clone(),
        approved_by: s.approvals.iter().map(|a| a.participant.clone()).collect(),
        missing: s.missing.clone(),
        refused: (!s.refused.is_empty()).then(|| s.refused.clone()),
        submitted_event,
        committed_height: s.committed_height,
    }
}

type Client = pb::node_client::NodeClient<tonic::transport::Channel>;

async fn fetch(client: &mut Client, reference: &str) -> Result<pb::GovernanceStatus> {
    let r = client
        .get_governance(pb::GetGovernanceRequest { reference: reference.to_owned() })
        .await
        .map_err(|e| anyhow!("{}", e.message()))?
        .into_inner();
    r.acts.into_iter().next().ok_or_else(|| anyhow!("the node holds no act {reference:?}"))
}

/// Signs an approval of `act_bytes` with the key in `key_file`, hands it to the node, and — if
/// it completes the act — submits the governance event; with `wait`, waits for the commit.
async fn approve_bytes(
    client: &mut Client,
    chain_id: &ChainId,
    key_file: &Path,
    act_bytes: Vec<u8>,
    wait: Option<Duration>,
) -> Result<ActReport> {
    let key = keyfile::read(key_file)?;
    let approval = kp_proto::Approval::sign(&key, chain_id, &act_bytes);
    let status = client
        .approve(pb::ApproveRequest {
            act: act_bytes.clone(),
            key: approval.key.0.to_vec(),
            signature: approval.signature.0.to_vec(),
        })
        .await
        .map_err(|e| anyhow!("the node refused the approval: {}", e.message()))?
        .into_inner()
        .status
        .ok_or_else(|| anyhow!("the node answered without a status"))?;
    if !status.refused.is_empty() {
        bail!("act {} cannot apply: {}", status.reference, status.refused);
    }
    let mut submitted = None;
    if status.missing.is_empty() && status.committed_height.is_none() {
        let approvals: Vec<kp_proto::Approval> = status
            .approvals
            .iter()
            .map(|a| {
                Ok(kp_proto::Approval {
                    key: PublicKey::from_slice(&a.key).map_err(|e| anyhow!("approval key from the node: {e}"))?,
                    signature: kp_crypto::Signature::from_slice(&a.signature)
                        .map_err(|e| anyhow!("approval signature from the node: {e}"))?,
                })
            })
            .collect::<Result<_>>()?;
        let payload = kp_proto::encode_governance_payload(act_bytes, &approvals);
        let envelope = kp_proto::sign_event(&key, chain_id, payload);
        let answer = client
            .submit(pb::SubmitRequest { envelope })
            .await
            .map_err(|e| anyhow!("the node refused the governance event: {}", e.message()))?
            .into_inner();
        if let Some(pb::submit_response::Outcome::Rejected(r)) = answer.outcome {
            bail!("the governance event {} was rejected: {}", answer.event_id, r.reason);
        }
        submitted = Some(answer.event_id);
    }
    let mut current = status;
    if let Some(wait) = wait {
        let deadline = Instant::now() + wait;
        while current.committed_height.is_none() {
            if Instant::now() >= deadline {
                bail!(
                    "act {} not committed within {wait:?}; still missing approvals of: {}",
                    current.reference,
                    if current.missing.is_empty() { "nobody".to_owned() } else { current.missing.join(" ") }
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            current = fetch(client, &current.reference).await?;
        }
    }
    Ok(report(&current, submitted))
}

/// Drafts an act and approves it with the proposer's key, for the network of `expected`.
pub fn propose(
    node: &str,
    key_file: &Path,
    expected: &ExpectedGenesis,
    spec: &ActSpec,
    reference: &str,
    rationale: &str,
    wait: Option<Duration>,
) -> Result<ActReport> {
    let act = build_act(spec, reference, rationale)?;
    let act_bytes = kp_proto::encode_act(&act);
    block_on(async {
        let mut client = crate::node::connect_signing(node, key_file).await?;
        let chain_id = chain_id(&mut client, expected).await?;
        approve_bytes(&mut client, &chain_id, key_file, act_bytes, wait).await
    })
}

/// Approves the act the node holds under `reference`, for the network of `expected`.
pub fn approve(
    node: &str,
    key_file: &Path,
    expected: &ExpectedGenesis,
    reference: &str,
    wait: Option<Duration>,
) -> Result<ActReport> {
    block_on(async {
        let mut client = crate::node::connect_signing(node, key_file).await?;
        let chain_id = chain_id(&mut client, expected).await?;
        let status = fetch(&mut client, reference).await?;
        if let Some(h) = status.committed_height {
            bail!("act {reference} was already applied at height {h}");
        }
        // The act's bytes come from the node: check they are an act before signing them.
        kp_proto::decode_act(&status.act)
            .map_err(|e| anyhow!("the node's copy of act {reference} is not an act: {e}"))?;
        approve_bytes(&mut client, &chain_id, key_file, status.act, wait).await
    })
}

/// The acts a node collects approvals for (one, or all).
pub fn status(node: &str, reference: Option<&str>) -> Result<Vec<ActReport>> {
    block_on(async {
        let mut client = connect(node).await?;
        let r = client
            .get_governance(pb::GetGovernanceRequest { reference: reference.unwrap_or_default().to_owned() })
            .await
            .map_err(|e| anyhow!("{}", e.message()))?
            .into_inner();
        Ok(r.acts.iter().map(|s| report(s, None)).collect())
    })
}

/// `--deadline`: an RFC 3339 instant (`2027-03-31T17:00:00Z`), or a time from now in days,
/// hours, minutes or seconds (`14d`, `6h`, `30m`, `45s`).
pub fn parse_deadline(s: &str, now: kp_domain::Timestamp) -> Result<kp_domain::Timestamp> {
    let units = [('d', kp_domain::MS_PER_DAY), ('h', 3_600_000), ('m', 60_000), ('s', 1_000)];
    for (suffix, ms_per) in units {
        if let Some(n) = s.strip_suffix(suffix).filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            return n
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(ms_per))
                .and_then(|ms| now.0.checked_add(ms))
                .map(kp_domain::Timestamp)
                .ok_or_else(|| anyhow!("--deadline {s:?} is too far"));
        }
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| anyhow!("--deadline {s:?}: {e} (expected like 14d, 45s or 2027-03-31T17:00:00Z)"))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map(kp_domain::Timestamp).map_err(|_| anyhow!("--deadline {s:?} is before 1970"))
}

/// The act described on the command line.
pub fn build_act(spec: &ActSpec, reference: &str, rationale: &str) -> Result<GovernanceAct> {
    let act = GovernanceAct {
        reference: Label::new(reference).map_err(|e| anyhow!("--reference: {e}"))?,
        action: action(spec)?,
        rationale: Text::new(rationale).map_err(|e| anyhow!("--rationale: {e}"))?,
    };
    act.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(act)
}

/// The payload opening a written procedure on `act`, closing at `deadline`.
pub fn written_procedure_payload(act: GovernanceAct, deadline: kp_domain::Timestamp) -> kp_domain::EventPayload {
    let act_digest = kp_crypto::sha256(&kp_proto::encode_act(&act));
    kp_domain::EventPayload::WrittenProcedure(kp_domain::WrittenProcedure { act, act_digest, deadline })
}

/// The payload of a response to the written procedure `reference`.
pub fn response_payload(reference: &str, objection: Option<&str>) -> Result<kp_domain::EventPayload> {
    if objection.is_some_and(|r| r.trim().is_empty()) {
        bail!("--reason must say why you object");
    }
    Ok(kp_domain::EventPayload::ProcedureResponse(kp_domain::ProcedureResponse {
        reference: Label::new(reference).map_err(|e| anyhow!("reference {reference:?}: {e}"))?,
        objection: objection.is_some(),
        reason: Text::new(objection.unwrap_or("")).map_err(|e| anyhow!("--reason: {e}"))?,
    }))
}

/// The governance state of the node's ledger, replayed here from its genesis and its committed
/// governance events (which depend on nothing else), with what each event did.
#[derive(Debug)]
pub struct Replayed {
    pub ledger: kp_rules::Ledger,
    pub events: Vec<ReplayedEvent>,
    /// The node's last block time.
    pub head_time: kp_domain::Timestamp,
}

#[derive(Debug)]
pub struct ReplayedEvent {
    pub height: u64,
    pub event: kp_domain::Event,
    /// The signer's participant, and the participants whose keys approved (ordinary acts),
    /// as the state before the event had them.
    pub signer: Option<ParticipantId>,
    pub approvers: Vec<ParticipantId>,
}

async fn replay(client: &mut Client) -> Result<Replayed> {
    let g = client
        .get_genesis(pb::GetGenesisRequest {})
        .await
        .map_err(|e| anyhow!("asking the node for its genesis: {}", e.message()))?
        .into_inner();
    let genesis = kp_proto::decode_genesis(&g.genesis).context("the node's genesis does not decode")?;
    let mut ledger = kp_rules::Ledger::from_genesis(&genesis).map_err(|e| anyhow!("the node's genesis: {e}"))?;
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = client
            .get_governance_events(pb::GetGovernanceEventsRequest { from_height: from, limit: 0 })
            .await
            .map_err(|e| anyhow!("asking the node for its governance events: {}", e.message()))?
            .into_inner();
        for e in page.events {
            let event = kp_proto::open_event(&genesis.chain_id, genesis.params.signature_rule, &e.envelope)
                .with_context(|| format!("the node's governance event at height {}", e.height))?;
            let owner = |k: &PublicKey| ledger.key_owner(k).map(|o| o.participant);
            let signer = owner(&event.signer);
            let approvers = match &event.payload {
                kp_domain::EventPayload::Governance(g) => g.approvers.iter().filter_map(owner).collect(),
                _ => Vec::new(),
            };
            ledger
                .apply(&event, kp_domain::Timestamp(e.block_time_ms))
                .map_err(|r| anyhow!("the node's governance event at height {} does not replay: {r}", e.height))?;
            events.push(ReplayedEvent { height: e.height, event, signer, approvers });
        }
        match page.next_height {
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
    let status = client
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|e| anyhow!("asking the node for its status: {}", e.message()))?
        .into_inner();
    Ok(Replayed { ledger, events, head_time: kp_domain::Timestamp(status.head_time_ms) })
}

/// [`Replayed`] of the node at `node`.
pub fn replay_node(node: &str) -> Result<Replayed> {
    block_on(async {
        let mut client = connect(node).await?;
        replay(&mut client).await
    })
}

/// Opens a written procedure on the act of `spec`, signed with the key in `key_file`.
#[allow(clippy::too_many_arguments)]
pub fn propose_written(
    node: &str,
    key_file: &Path,
    expected: &ExpectedGenesis,
    spec: &ActSpec,
    reference: &str,
    rationale: &str,
    deadline: kp_domain::Timestamp,
    wait: Option<Duration>,
) -> Result<crate::cert::Submitted> {
    let act = build_act(spec, reference, rationale)?;
    crate::cert::submit(node, key_file, expected, &written_procedure_payload(act, deadline), wait)
}

/// Whether `reference` names a written procedure on the node's ledger.
pub fn is_procedure(node: &str, reference: &str) -> Result<bool> {
    let label = Label::new(reference).map_err(|e| anyhow!("reference {reference:?}: {e}"))?;
    block_on(async {
        let mut client = connect(node).await?;
        Ok(replay(&mut client).await?.ledger.procedure(&label).is_some())
    })
}

/// Concludes the written procedure `reference` (its deadline passed), stating the outcome the
/// rules give it.
pub fn conclude(
    node: &str,
    key_file: &Path,
    expected: &ExpectedGenesis,
    reference: &str,
    wait: Option<Duration>,
) -> Result<(bool, crate::cert::Submitted)> {
    let label = Label::new(reference).map_err(|e| anyhow!("reference {reference:?}: {e}"))?;
    let replayed = block_on(async {
        let mut client = connect(node).await?;
        replay(&mut client).await
    })?;
    let Some(record) = replayed.ledger.procedure(&label) else {
        bail!("the ledger holds no written procedure {reference}");
    };
    if record.outcome != kp_rules::ProcedureOutcome::Open {
        bail!("the written procedure {reference} is closed already ({})", record.outcome.name());
    }
    let now = kp_node::now().max(replayed.head_time);
    if now < record.deadline {
        bail!("the written procedure {reference} closes at {}; it is {now} now", record.deadline);
    }
    let Some(adopted) = replayed.ledger.procedure_conclusion(&label, record.deadline) else {
        bail!("the written procedure {reference} cannot be concluded");
    };
    let payload = kp_domain::EventPayload::ProcedureConclusion(kp_domain::ProcedureConclusion {
        act: record.act.clone(),
        act_digest: record.act_digest,
        adopted,
    });
    Ok((adopted, crate::cert::submit(node, key_file, expected, &payload, wait)?))
}

/// One act in the governance history.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    pub reference: String,
    pub action: String,
    pub subject: String,
    /// "ordinary" (approvals collected, then the act) or "written procedure".
    pub procedure: &'static str,
    pub proposer: Option<String>,
    pub approvals: Vec<String>,
    pub objections: Vec<Objection>,
    /// Still needed (an ordinary act awaiting approval on this node).
    pub missing: Vec<String>,
    /// applied, adopted, objected, lapsed, open, due, awaiting approval, cannot apply.
    pub outcome: String,
    pub detail: Option<String>,
    pub opened_height: Option<u64>,
    pub decided_height: Option<u64>,
    pub deadline: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Objection {
    pub participant: String,
    pub reason: String,
}

/// Every act the ledger holds (and those awaiting approval on this node), in ledger order, with
/// its approvals, objections and outcome; with `participant`, only the acts about it or in
/// which it took part.
pub fn history(node: &str, participant: Option<&str>) -> Result<Vec<HistoryEntry>> {
    let filter =
        participant.map(|c| ParticipantId::new(c).map_err(|e| anyhow!("--participant {c:?}: {e}"))).transpose()?;
    let (replayed, drafts) = block_on(async {
        let mut client = connect(node).await?;
        let replayed = replay(&mut client).await?;
        let drafts = client
            .get_governance(pb::GetGovernanceRequest { reference: String::new() })
            .await
            .map_err(|e| anyhow!("{}", e.message()))?
            .into_inner()
            .acts;
        Ok((replayed, drafts))
    })?;
    let mut entries = Vec::new();
    let name = |p: &ParticipantId| p.as_str().to_owned();
    for r in &replayed.events {
        match &r.event.payload {
            kp_domain::EventPayload::Governance(g) => entries.push(HistoryEntry {
                reference: g.act.reference.to_string(),
                action: g.act.action.name().to_owned(),
                subject: g.act.action.subject().to_string(),
                procedure: "ordinary",
                proposer: r.signer.as_ref().map(name),
                approvals: r.approvers.iter().map(name).collect(),
                objections: Vec::new(),
                missing: Vec::new(),
                outcome: "applied".into(),
                detail: None,
                opened_height: Some(r.height),
                decided_height: Some(r.height),
                deadline: None,
            }),
            kp_domain::EventPayload::WrittenProcedure(w) => {
                let Some(p) = replayed.ledger.procedure(&w.act.reference) else { continue };
                let decided = replayed.events.iter().find_map(|e| match &e.event.payload {
                    kp_domain::EventPayload::ProcedureConclusion(c) if c.act.reference == w.act.reference => {
                        Some(e.height)
                    }
                    kp_domain::EventPayload::ProcedureResponse(x) if x.reference == w.act.reference && x.objection => {
                        Some(e.height)
                    }
                    _ => None,
                });
                let (outcome, detail) = match p.outcome {
                    kp_rules::ProcedureOutcome::Open if replayed.head_time >= p.deadline => {
                        let would = replayed.ledger.procedure_conclusion(&w.act.reference, p.deadline);
                        (
                            "due".to_owned(),
                            Some(format!(
                                "deadline passed; a conclusion would state {}",
                                match would {
                                    Some(true) => "adopted",
                                    _ => "lapsed",
                                }
                            )),
                        )
                    }
                    o => (o.name().to_owned(), p.lapse.clone()),
                };
                entries.push(HistoryEntry {
                    reference: w.act.reference.to_string(),
                    action: w.act.action.name().to_owned(),
                    subject: w.act.action.subject().to_string(),
                    procedure: "written procedure",
                    proposer: Some(name(&p.proposer)),
                    approvals: p.approvals.iter().map(name).collect(),
                    objections: p
                        .objection
                        .iter()
                        .map(|(who, why)| Objection { participant: name(who), reason: why.to_string() })
                        .collect(),
                    missing: Vec::new(),
                    outcome,
                    detail,
                    opened_height: Some(r.height),
                    decided_height: decided,
                    deadline: Some(p.deadline.to_string()),
                });
            }
            _ => {}
        }
    }
    for d in drafts.iter().filter(|d| d.committed_height.is_none()) {
        let refused = (!d.refused.is_empty()).then(|| d.refused.clone());
        entries.push(HistoryEntry {
            reference: d.reference.clone(),
            action: d.action.clone(),
            subject: d.subject.clone(),
            procedure: "ordinary",
            proposer: d.approvals.first().map(|a| a.participant.clone()),
            approvals: d.approvals.iter().map(|a| a.participant.clone()).collect(),
            objections: Vec::new(),
            missing: d.missing.clone(),
            outcome: if refused.is_some() { "cannot apply".into() } else { "awaiting approval".into() },
            detail: refused,
            opened_height: None,
            decided_height: None,
            deadline: None,
        });
    }
    if let Some(p) = filter {
        let code = p.as_str();
        entries.retain(|e| {
            e.subject == code
                || e.proposer.as_deref() == Some(code)
                || e.approvals.iter().any(|a| a == code)
                || e.missing.iter().any(|a| a == code)
                || e.objections.iter().any(|o| o.participant == code)
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn deadlines_are_instants_or_times_from_now() {
        let now = kp_domain::Timestamp(1_000_000);
        assert_eq!(parse_deadline("45s", now).unwrap().0, 1_045_000);
        assert_eq!(parse_deadline("2m", now).unwrap().0, 1_120_000);
        assert_eq!(parse_deadline("1d", now).unwrap().0, 1_000_000 + kp_domain::MS_PER_DAY);
        assert_eq!(parse_deadline("1970-01-01T00:00:01Z", now).unwrap().0, 1_000);
        for bad in ["", "d", "-1d", "1.5d", "99999999999999999999d", "tomorrow", "1969-12-31T23:59:59Z"] {
            assert!(parse_deadline(bad, now).is_err(), "{bad}");
        }
    }
}
