//! The sample custody flow: Botswana issues and seals a shipment to the European Union, which
//! confirms receipt; one event is refused with its reason. Every event is signed with the
//! network's key files, passed through the same edge a node uses (size, canonical encoding,
//! signature over the exact bytes) and applied by the rules engine.

use crate::testnet::Testnet;
use anyhow::{Context, Result, ensure};
use kp_domain::*;
use kp_rules::Ledger;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub chain_id: String,
    pub genesis_hash: String,
    pub participants: usize,
    pub certificate: String,
    pub history: Vec<HistoryLine>,
    pub rejected: RejectedEvent,
    pub state_root: String,
}

#[derive(Debug, Serialize)]
pub struct HistoryLine {
    pub step: usize,
    pub block_time: String,
    pub event: String,
    pub event_id: String,
    pub signer: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct RejectedEvent {
    pub attempt: String,
    pub code: String,
    pub reason: String,
}

struct Flow<'a> {
    net: &'a Testnet,
    ledger: Ledger,
    block_time: Timestamp,
}

impl Flow<'_> {
    fn envelope(&self, who: ParticipantId, role: Role, payload: &EventPayload) -> Result<Vec<u8>> {
        let key = self.net.authority_key(who, role)?;
        Ok(kp_proto::sign_event(&key, &self.net.genesis.chain_id, kp_proto::encode_payload(payload)?))
    }

    /// Opens the signed bytes as a node would and applies them in the next block.
    fn submit(&mut self, envelope: &[u8]) -> Result<Result<(), kp_rules::Rejection>> {
        let event = kp_proto::open_event(&self.net.genesis.chain_id, self.net.genesis.params.signature_rule, envelope)?;
        self.block_time = self.block_time.saturating_add_ms(1_000);
        Ok(self.ledger.apply(&event, self.block_time).map(|_| ()))
    }
}

pub fn run(dir: &Path, now: Timestamp) -> Result<DemoReport> {
    let net = Testnet::load(dir)?;
    let ledger = Ledger::from_genesis(&net.genesis)?;
    let bw = ParticipantId::new("BW")?;
    let eu = ParticipantId::new("EU")?;
    let ids = net.participant_ids();
    ensure!(
        ids.contains_key(&bw) && ids.contains_key(&eu),
        "the sample flow needs Botswana (BW) and the European Union (EU) in the network: run `kpledger testnet init` with --participants 2 or more"
    );
    let third = ids.keys().copied().find(|p| *p != bw && *p != eu);
    let start = Timestamp(now.0.max(net.genesis.genesis_time.0));
    let mut flow = Flow { net: &net, ledger, block_time: start };

    let today = start.date();
    let number = CertificateNumber::new(&format!("BW-{}-000001", today.year()))?;
    let text = |s: &str| Text::new(s).map_err(anyhow::Error::from);
    let certificate = Certificate {
        number: number.clone(),
        exporter: bw,
        importer: eu,
        origin: Origin::Country(CountryCode::new("BW")?),
        origin_zone: Some(Label::new("Jwaneng")?),
        issued_on: today,
        expires_on: today.add_days(30),
        issuing_authority: text("Ministry of Minerals and Energy, Diamond Hub")?,
        exporter_party: Trader { name: text("Okavango Diamond Company")?, identification: text("BW-LIC-0042")? },
        importer_party: Trader { name: text("Antwerp Rough Trading BV")?, identification: text("BE-0456.789.123")? },
        carats: Carats(1_250_075),
        value: UsdCents(187_511_250),
        parcels: 12,
        lines: vec![
            HsLine { hs_code: HsCode::Industrial, carats: Carats(250_000), value: UsdCents(2_500_000) },
            HsLine { hs_code: HsCode::NonIndustrial, carats: Carats(1_000_075), value: UsdCents(185_011_250) },
        ],
    };
    let issue = flow.envelope(bw, Role::Exporting, &EventPayload::CertificateIssued(certificate.clone()))?;
    flow.submit(&issue)?.context("issuing the certificate")?;

    let seal = ShipmentSealed {
        certificate: number.clone(),
        seal_ids: vec![Label::new("BW-SEAL-7781")?, Label::new("BW-SEAL-7782")?],
        sealed_at: flow.block_time,
        port_of_exit: Label::new("Sir Seretse Khama International Airport")?,
    };
    let seal = flow.envelope(bw, Role::Exporting, &EventPayload::ShipmentSealed(seal))?;
    flow.submit(&seal)?.context("sealing the shipment")?;

    let receipt = ReceiptConfirmed {
        certificate: number.clone(),
        received_at: flow.block_time.saturating_add_ms(1_000),
        parcels_found: certificate.parcels,
        carats_found: certificate.carats,
        seals_intact: true,
        remarks: text("Antwerp Diamond Office: seals intact, weights agree")?,
    };
    // The refused event: another participant's importing authority tries to confirm a
    // shipment addressed to the EU (or, in a two-participant network, the EU confirms twice).
    let payload = EventPayload::ReceiptConfirmed(receipt);
    let (attempt, rejected_envelope) = match third {
        Some(other) => (
            format!("{other}'s importing authority confirms receipt of {number}, which is addressed to EU"),
            Some(flow.envelope(other, Role::Importing, &payload)?),
        ),
        None => (format!("EU confirms receipt of {number} a second time"), None),
    };
    if let Some(envelope) = &rejected_envelope {
        let refused = flow.submit(envelope)?.err().context("the rules engine accepted an event it must refuse")?;
        flow.block_time = flow.block_time.saturating_add_ms(1_000);
        let receipt = flow.envelope(eu, Role::Importing, &payload)?;
        flow.submit(&receipt)?.context("confirming receipt")?;
        return finish(flow, &net, number, attempt, refused);
    }
    let receipt = flow.envelope(eu, Role::Importing, &payload)?;
    flow.submit(&receipt)?.context("confirming receipt")?;
    let refused = flow.submit(&receipt)?.err().context("the rules engine accepted a replayed receipt")?;
    finish(flow, &net, number, attempt, refused)
}

fn finish(
    mut flow: Flow<'_>,
    net: &Testnet,
    number: CertificateNumber,
    attempt: String,
    refused: kp_rules::Rejection,
) -> Result<DemoReport> {
    let record = flow.ledger.certificate(&number).context("the certificate is not in the ledger")?.clone();
    let history = record
        .history
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let signer = flow
                .ledger
                .key_owner(&step.signer)
                .map_or_else(|| step.signer.short(), |o| format!("{} {} authority", o.participant, o.role));
            let detail = match step.kind {
                EventKind::CertificateIssued => format!(
                    "{} -> {}, {}, {}, {} parcels, expires {}",
                    record.certificate.exporter,
                    record.certificate.importer,
                    record.certificate.carats,
                    record.certificate.value,
                    record.certificate.parcels,
                    record.certificate.expires_on
                ),
                EventKind::ShipmentSealed => record
                    .sealed
                    .as_ref()
                    .map_or_else(String::new, |s| format!("{} seals at {}", s.seal_ids.len(), s.port_of_exit)),
                EventKind::ReceiptConfirmed => record.receipt.as_ref().map_or_else(String::new, |r| {
                    format!(
                        "{} parcels, {} found, seals {}",
                        r.parcels_found,
                        r.carats_found,
                        if r.seals_intact { "intact" } else { "broken" }
                    )
                }),
                other => other.to_string(),
            };
            HistoryLine {
                step: i + 1,
                block_time: step.block_time.to_string(),
                event: step.kind.to_string(),
                event_id: step.event.to_hex(),
                signer,
                detail,
            }
        })
        .collect();
    Ok(DemoReport {
        chain_id: net.genesis.chain_id.to_string(),
        genesis_hash: kp_proto::genesis_hash(&net.genesis).to_hex(),
        participants: net.genesis.participants.len(),
        certificate: number.to_string(),
        history,
        rejected: RejectedEvent { attempt, code: refused.code().to_owned(), reason: refused.to_string() },
        state_root: flow.ledger.state_root().to_hex(),
    })
}
