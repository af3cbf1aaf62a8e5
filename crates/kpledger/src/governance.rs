//! `kpledger governance propose | approve | status`: a governance act (admit, suspend,
//! restrict, readmit, withdraw, authority key added or revoked) is drafted and approved by its
//! proposer's authority, then approved by the authority of each participant whose approval the
//! rules need. Each approval is signed here (the key never leaves this machine) over the act's
//! exact bytes and handed to a node; the nodes collect the approvals and pass them on to every
//! voter's node. The approval that completes the act also submits it: the governance event
//! carrying every approval, signed by that approver, which the nodes commit in a block of its own.

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
    let act = GovernanceAct {
        reference: Label::new(reference).map_err(|e| anyhow!("--reference: {e}"))?,
        action: action(spec)?,
        rationale: Text::new(rationale).map_err(|e| anyhow!("--rationale: {e}"))?,
    };
    act.validate().map_err(|e| anyhow!("{e}"))?;
    let act_bytes = kp_proto::encode_act(&act);
    block_on(async {
        let mut client = connect(node).await?;
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
        let mut client = connect(node).await?;
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
