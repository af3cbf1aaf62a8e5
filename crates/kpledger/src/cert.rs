//! `kpledger cert issue | seal | receive | void`: an authority's custody events, signed on the
//! client with the authority's key file (the key never leaves this process) and submitted to a
//! node. With `--wait`, the command returns once the event is committed, with its height.

use crate::keyfile;
use crate::node::ExpectedGenesis;
use anyhow::{Context, Result, anyhow, bail};
use kp_domain::{
    Carats, CertificateNumber, CertificateVoided, EventPayload, Label, ReceiptConfirmed, ShipmentSealed, Text,
    Timestamp,
};
use kp_node::pb;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `--wait` waits for the commit by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// What a submission came to.
#[derive(Debug, Serialize)]
pub struct Submitted {
    pub event_id: String,
    /// `accepted` (new in the pool), `duplicate` (already pending or committed) or `committed`
    /// (with `--wait`).
    pub outcome: String,
    pub height: Option<u64>,
    pub block_time: Option<String>,
}

/// A quantity with at most two decimals ("12500.75") in hundredths.
pub fn parse_hundredths(field: &str, s: &str) -> Result<u64> {
    let bad = || anyhow!("{field}: {s:?} is not a quantity like 12500.75 (at most two decimals)");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().map_err(|_| bad())? };
    whole.checked_mul(100).and_then(|w| w.checked_add(frac)).ok_or_else(bad)
}

fn number(s: &str) -> Result<CertificateNumber> {
    CertificateNumber::new(s).map_err(|e| anyhow!("{s:?} is not a certificate number: {e}"))
}

fn label(field: &str, s: &str) -> Result<Label> {
    Label::new(s).map_err(|e| anyhow!("{field}: {e}"))
}

fn text(field: &str, s: &str) -> Result<Text> {
    Text::new(s).map_err(|e| anyhow!("{field}: {e}"))
}

/// The certificate of a `cert issue`, from a JSON file (see node-config/example-certificate.json).
pub fn issue_payload(file: &Path) -> Result<EventPayload> {
    let json = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let certificate: kp_domain::Certificate =
        serde_json::from_str(&json).with_context(|| format!("{} is not a certificate (JSON)", file.display()))?;
    certificate.validate().map_err(|e| anyhow!("{}: {e}", file.display()))?;
    Ok(EventPayload::CertificateIssued(certificate))
}

pub fn seal_payload(certificate: &str, seals: &[String], port_of_exit: &str, now: Timestamp) -> Result<EventPayload> {
    let seal = ShipmentSealed {
        certificate: number(certificate)?,
        seal_ids: seals.iter().map(|s| label("--seal", s)).collect::<Result<_>>()?,
        sealed_at: now,
        port_of_exit: label("--port-of-exit", port_of_exit)?,
    };
    seal.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(EventPayload::ShipmentSealed(seal))
}

pub fn receive_payload(
    certificate: &str,
    parcels: u32,
    carats: &str,
    seals_intact: bool,
    remarks: &str,
    now: Timestamp,
) -> Result<EventPayload> {
    let receipt = ReceiptConfirmed {
        certificate: number(certificate)?,
        received_at: now,
        parcels_found: parcels,
        carats_found: Carats(parse_hundredths("--carats", carats)?),
        seals_intact,
        remarks: text("--remarks", remarks)?,
    };
    receipt.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(EventPayload::ReceiptConfirmed(receipt))
}

pub fn void_payload(certificate: &str, reason: &str) -> Result<EventPayload> {
    Ok(EventPayload::CertificateVoided(CertificateVoided {
        certificate: number(certificate)?,
        reason: text("--reason", reason)?,
    }))
}

/// A node's refusal of a submitted event (what [`submit`] fails with when the node refuses).
#[derive(Debug, Clone, thiserror::Error)]
#[error("event {event_id} rejected ({kind}{}): {reason}", if code.is_empty() { String::new() } else { format!(", {code}") })]
pub struct Refused {
    pub event_id: String,
    /// MALFORMED, BAD_SIGNATURE, RULES or POOL_FULL.
    pub kind: String,
    /// For RULES: the rule's stable code (docs/rules.md).
    pub code: String,
    pub reason: String,
}

/// Signs `payload` with the key in `key_file` for the node's chain — once the node's genesis is
/// `expected` — and submits it; with `wait`, waits up to `wait` for the commit.
pub fn submit(
    node: &str,
    key_file: &Path,
    expected: &ExpectedGenesis,
    payload: &EventPayload,
    wait: Option<Duration>,
) -> Result<Submitted> {
    let key = keyfile::read(key_file)?;
    crate::node::block_on(async {
        let mut client = crate::node::connect_signing(node, key_file).await?;
        let chain_id = crate::node::chain_id(&mut client, expected).await?;
        let envelope = kp_proto::sign_event(&key, &chain_id, kp_proto::encode_payload(payload)?);
        let answer = client
            .submit(pb::SubmitRequest { envelope })
            .await
            .map_err(|e| anyhow!("the node refused the request: {}", e.message()))?
            .into_inner();
        use pb::submit_response::Outcome;
        let mut result =
            Submitted { event_id: answer.event_id.clone(), outcome: String::new(), height: None, block_time: None };
        match answer.outcome {
            Some(Outcome::Accepted(_)) => result.outcome = "accepted".into(),
            Some(Outcome::Duplicate(d)) => {
                result.outcome = "duplicate".into();
                result.height = d.height;
            }
            Some(Outcome::Rejected(r)) => {
                let kind = pb::rejection::Kind::try_from(r.kind).map_or("unknown", |k| k.as_str_name());
                return Err(Refused {
                    event_id: answer.event_id,
                    kind: kind.to_owned(),
                    code: r.code,
                    reason: r.reason,
                }
                .into());
            }
            None => bail!("the node answered without an outcome"),
        }
        let Some(wait) = wait else { return Ok(result) };
        let deadline = Instant::now() + wait;
        loop {
            match client.get_event(pb::GetEventRequest { event_id: answer.event_id.clone() }).await {
                Ok(e) => {
                    if let Some(at) = e.into_inner().position {
                        result.outcome = "committed".into();
                        result.height = Some(at.height);
                        result.block_time = Some(Timestamp(at.block_time_ms).to_string());
                        return Ok(result);
                    }
                }
                Err(s) if s.code() == tonic::Code::FailedPrecondition => bail!("{}", s.message()),
                Err(s) => bail!("asking for event {}: {}", answer.event_id, s.message()),
            }
            if Instant::now() >= deadline {
                bail!("event {} accepted but not committed within {wait:?} (still pending)", answer.event_id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantities_have_at_most_two_decimals() {
        assert_eq!(parse_hundredths("c", "12500.75").unwrap(), 1_250_075);
        assert_eq!(parse_hundredths("c", "3.5").unwrap(), 350);
        assert_eq!(parse_hundredths("c", "7").unwrap(), 700);
        for bad in ["", ".5", "1.234", "1,5", "-1", "1e3", "18446744073709551615"] {
            assert!(parse_hundredths("c", bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod example {
    #![allow(clippy::unwrap_used)]

    /// The example the CLI help points to is a valid certificate (carats in hundredths, value
    /// in US cents).
    #[test]
    fn the_example_certificate_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node-config/example-certificate.json");
        match super::issue_payload(&path).unwrap() {
            kp_domain::EventPayload::CertificateIssued(c) => {
                assert_eq!(c.carats, kp_domain::Carats(1_250_075));
                assert_eq!(c.lines.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
