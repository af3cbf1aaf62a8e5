//! Conversion between kp.v1 protobuf types and domain types. From proto: every field is
//! checked and a failure names its path from the payload root. To proto: total.

use crate::{EdgeError, pb};
use kp_domain::*;
use prost::Message;

type R<T> = Result<T, FieldError>;

fn at<T>(field: &str, r: R<T>) -> R<T> {
    r.map_err(|e| e.within(field))
}
fn text(field: &str, s: &str) -> R<Text> {
    at(field, Text::new(s))
}
fn label(field: &str, s: &str) -> R<Label> {
    at(field, Label::new(s))
}
fn pid(field: &str, s: &str) -> R<ParticipantId> {
    at(field, ParticipantId::new(s))
}
fn cert_no(field: &str, s: &str) -> R<CertificateNumber> {
    at(field, CertificateNumber::new(s))
}
fn key(field: &str, b: &[u8]) -> R<PublicKey> {
    at(field, PublicKey::from_slice(b))
}
fn required<T>(field: &str, v: Option<T>) -> R<T> {
    v.ok_or_else(|| FieldError::new(field, "is required"))
}
fn labels(field: &str, v: &[String], max: usize) -> R<Vec<Label>> {
    if v.len() > max {
        return Err(FieldError::new(field, format!("{} entries, at most {max}", v.len())));
    }
    v.iter().enumerate().map(|(i, s)| label(&format!("{field}[{i}]"), s)).collect()
}

fn lines_from(field: &str, v: &[pb::HsLine]) -> R<Vec<HsLine>> {
    if v.len() > HsCode::ALL.len() {
        return Err(FieldError::new(
            field,
            format!("{} lines, at most one per HS code ({})", v.len(), HsCode::ALL.len()),
        ));
    }
    v.iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(HsLine {
                hs_code: at(&format!("{field}[{i}].hs_code"), HsCode::from_number(l.hs_code))?,
                carats: Carats(l.carats),
                value: UsdCents(l.value_cents),
            })
        })
        .collect()
}
fn lines_to(v: &[HsLine]) -> Vec<pb::HsLine> {
    v.iter().map(|l| pb::HsLine { hs_code: l.hs_code.number(), carats: l.carats.0, value_cents: l.value.0 }).collect()
}

fn trader_from(field: &str, t: Option<pb::Trader>) -> R<Trader> {
    let t = required(field, t)?;
    Ok(Trader {
        name: text(&format!("{field}.name"), &t.name)?,
        identification: text(&format!("{field}.identification"), &t.identification)?,
    })
}
fn trader_to(t: &Trader) -> pb::Trader {
    pb::Trader { name: t.name.to_string(), identification: t.identification.to_string() }
}

fn certificate_from(c: pb::Certificate) -> R<Certificate> {
    let origin =
        if c.origin == "MIXED" { Origin::Mixed } else { Origin::Country(at("origin", CountryCode::new(&c.origin))?) };
    Ok(Certificate {
        number: cert_no("number", &c.number)?,
        exporter: pid("exporter", &c.exporter)?,
        importer: pid("importer", &c.importer)?,
        origin,
        origin_zone: if c.origin_zone.is_empty() { None } else { Some(label("origin_zone", &c.origin_zone)?) },
        issued_on: Date(c.issued_on),
        expires_on: Date(c.expires_on),
        issuing_authority: text("issuing_authority", &c.issuing_authority)?,
        exporter_party: trader_from("exporter_party", c.exporter_party)?,
        importer_party: trader_from("importer_party", c.importer_party)?,
        carats: Carats(c.carats),
        value: UsdCents(c.value_cents),
        parcels: c.parcels,
        lines: lines_from("lines", &c.lines)?,
    })
}
fn certificate_to(c: &Certificate) -> pb::Certificate {
    pb::Certificate {
        number: c.number.to_string(),
        exporter: c.exporter.to_string(),
        importer: c.importer.to_string(),
        origin: match &c.origin {
            Origin::Country(code) => code.to_string(),
            Origin::Mixed => "MIXED".to_owned(),
        },
        origin_zone: c.origin_zone.as_ref().map(ToString::to_string).unwrap_or_default(),
        issued_on: c.issued_on.0,
        expires_on: c.expires_on.0,
        issuing_authority: c.issuing_authority.to_string(),
        exporter_party: Some(trader_to(&c.exporter_party)),
        importer_party: Some(trader_to(&c.importer_party)),
        carats: c.carats.0,
        value_cents: c.value.0,
        parcels: c.parcels,
        lines: lines_to(&c.lines),
    }
}

/// Converts a payload's kind (not a governance one: see [`crate::decode_event`]).
pub fn payload_from_proto(kind: Option<pb::event_payload::Kind>) -> Result<EventPayload, EdgeError> {
    use pb::event_payload::Kind;
    let kind = kind.ok_or_else(|| FieldError::new("kind", "the payload names no event kind"))?;
    let payload = match kind {
        Kind::CertificateIssued(c) => EventPayload::CertificateIssued(at(
            "certificate_issued.certificate",
            certificate_from(required("certificate", c.certificate)?),
        )?),
        Kind::ShipmentSealed(s) => EventPayload::ShipmentSealed(at(
            "shipment_sealed",
            (|| {
                Ok(ShipmentSealed {
                    certificate: cert_no("certificate", &s.certificate)?,
                    seal_ids: labels("seal_ids", &s.seal_ids, MAX_SEALS)?,
                    sealed_at: Timestamp(s.sealed_at_ms),
                    port_of_exit: label("port_of_exit", &s.port_of_exit)?,
                })
            })(),
        )?),
        Kind::ReceiptConfirmed(r) => EventPayload::ReceiptConfirmed(at(
            "receipt_confirmed",
            (|| {
                Ok(ReceiptConfirmed {
                    certificate: cert_no("certificate", &r.certificate)?,
                    received_at: Timestamp(r.received_at_ms),
                    parcels_found: r.parcels_found,
                    carats_found: Carats(r.carats_found),
                    seals_intact: r.seals_intact,
                    remarks: text("remarks", &r.remarks)?,
                })
            })(),
        )?),
        Kind::CertificateVoided(v) => EventPayload::CertificateVoided(at(
            "certificate_voided",
            (|| {
                Ok(CertificateVoided {
                    certificate: cert_no("certificate", &v.certificate)?,
                    reason: text("reason", &v.reason)?,
                })
            })(),
        )?),
        Kind::CertificateAmended(a) => EventPayload::CertificateAmended(at(
            "certificate_amended",
            (|| {
                Ok(CertificateAmended {
                    certificate: at("certificate", certificate_from(required("certificate", a.certificate)?))?,
                    reason: text("reason", &a.reason)?,
                })
            })(),
        )?),
        Kind::ProductionReported(p) => EventPayload::ProductionReported(at(
            "production_reported",
            (|| {
                if p.zones.len() > MAX_ZONES {
                    return Err(FieldError::new("zones", format!("{} zones, at most {MAX_ZONES}", p.zones.len())));
                }
                Ok(ProductionReported {
                    participant: pid("participant", &p.participant)?,
                    period: HalfYear::new(p.year, p.half)?,
                    revision: p.revision,
                    lines: lines_from("lines", &p.lines)?,
                    zones: p
                        .zones
                        .iter()
                        .enumerate()
                        .map(|(i, z)| {
                            Ok(ZoneProduction {
                                zone: label(&format!("zones[{i}].zone"), &z.zone)?,
                                carats: Carats(z.carats),
                                value: UsdCents(z.value_cents),
                            })
                        })
                        .collect::<R<_>>()?,
                })
            })(),
        )?),
        Kind::WrittenProcedure(w) => {
            let act = required("written_procedure.act", w.act)?;
            // The digest is of the act's own canonical bytes, as an ordinary act's approvers
            // sign them: re-encoding a message decoded canonically gives back exactly its bytes.
            let act_digest = kp_crypto::sha256(&act.encode_to_vec());
            EventPayload::WrittenProcedure(WrittenProcedure {
                act: at("written_procedure.act", act_from_proto(act))?,
                act_digest,
                deadline: Timestamp(w.deadline_ms),
            })
        }
        Kind::ProcedureConclusion(c) => {
            let act = required("procedure_conclusion.act", c.act)?;
            let act_digest = kp_crypto::sha256(&act.encode_to_vec());
            EventPayload::ProcedureConclusion(ProcedureConclusion {
                act: at("procedure_conclusion.act", act_from_proto(act))?,
                act_digest,
                adopted: c.adopted,
            })
        }
        Kind::ProcedureResponse(r) => EventPayload::ProcedureResponse(at(
            "procedure_response",
            (|| {
                Ok(ProcedureResponse {
                    reference: label("reference", &r.reference)?,
                    objection: r.objection,
                    reason: text("reason", &r.reason)?,
                })
            })(),
        )?),
        Kind::Governance(_) => {
            return Err(EdgeError::Field(FieldError::new(
                "governance",
                "governance payloads are decoded with their approvals",
            )));
        }
    };
    Ok(payload)
}

/// Converts a payload to its protobuf form. Governance payloads carry signatures and are built
/// with [`crate::encode_governance_payload`].
pub fn payload_to_proto(payload: &EventPayload) -> Result<pb::EventPayload, EdgeError> {
    use pb::event_payload::Kind;
    let kind = match payload {
        EventPayload::CertificateIssued(c) => {
            Kind::CertificateIssued(pb::CertificateIssued { certificate: Some(certificate_to(c)) })
        }
        EventPayload::ShipmentSealed(s) => Kind::ShipmentSealed(pb::ShipmentSealed {
            certificate: s.certificate.to_string(),
            seal_ids: s.seal_ids.iter().map(ToString::to_string).collect(),
            sealed_at_ms: s.sealed_at.0,
            port_of_exit: s.port_of_exit.to_string(),
        }),
        EventPayload::ReceiptConfirmed(r) => Kind::ReceiptConfirmed(pb::ReceiptConfirmed {
            certificate: r.certificate.to_string(),
            received_at_ms: r.received_at.0,
            parcels_found: r.parcels_found,
            carats_found: r.carats_found.0,
            seals_intact: r.seals_intact,
            remarks: r.remarks.to_string(),
        }),
        EventPayload::CertificateVoided(v) => Kind::CertificateVoided(pb::CertificateVoided {
            certificate: v.certificate.to_string(),
            reason: v.reason.to_string(),
        }),
        EventPayload::CertificateAmended(a) => Kind::CertificateAmended(pb::CertificateAmended {
            certificate: Some(certificate_to(&a.certificate)),
            reason: a.reason.to_string(),
        }),
        EventPayload::ProductionReported(p) => Kind::ProductionReported(pb::ProductionReported {
            participant: p.participant.to_string(),
            year: u32::from(p.period.year),
            half: u32::from(p.period.half),
            revision: p.revision,
            lines: lines_to(&p.lines),
            zones: p
                .zones
                .iter()
                .map(|z| pb::ZoneProduction { zone: z.zone.to_string(), carats: z.carats.0, value_cents: z.value.0 })
                .collect(),
        }),
        EventPayload::WrittenProcedure(w) => {
            Kind::WrittenProcedure(pb::WrittenProcedure { act: Some(act_to_proto(&w.act)), deadline_ms: w.deadline.0 })
        }
        EventPayload::ProcedureConclusion(c) => {
            Kind::ProcedureConclusion(pb::ProcedureConclusion { act: Some(act_to_proto(&c.act)), adopted: c.adopted })
        }
        EventPayload::ProcedureResponse(r) => Kind::ProcedureResponse(pb::ProcedureResponse {
            reference: r.reference.to_string(),
            objection: r.objection,
            reason: r.reason.to_string(),
        }),
        EventPayload::Governance(_) => {
            return Err(EdgeError::Field(FieldError::new(
                "governance",
                "governance payloads are built with encode_governance_payload",
            )));
        }
    };
    Ok(pb::EventPayload { format_version: FORMAT_VERSION, kind: Some(kind) })
}

fn role_from(field: &str, r: i32) -> R<Role> {
    match pb::Role::try_from(r) {
        Ok(pb::Role::Exporting) => Ok(Role::Exporting),
        Ok(pb::Role::Importing) => Ok(Role::Importing),
        _ => Err(FieldError::new(field, format!("{r} is not a role (1 exporting, 2 importing)"))),
    }
}
fn role_to(r: Role) -> i32 {
    match r {
        Role::Exporting => pb::Role::Exporting as i32,
        Role::Importing => pb::Role::Importing as i32,
    }
}
fn authority_from(field: &str, a: &pb::AuthorityKey) -> R<AuthorityKey> {
    Ok(AuthorityKey { key: key(&format!("{field}.key"), &a.key)?, role: role_from(&format!("{field}.role"), a.role)? })
}
fn authority_to(a: &AuthorityKey) -> pb::AuthorityKey {
    pb::AuthorityKey { key: a.key.0.to_vec(), role: role_to(a.role) }
}

fn participant_from(p: pb::Participant) -> R<Participant> {
    if p.members.len() > MAX_MEMBERS || p.authorities.len() > MAX_AUTHORITY_KEYS {
        return Err(FieldError::new("", "too many members or authority keys"));
    }
    let status = match pb::ParticipantState::try_from(p.state) {
        Ok(pb::ParticipantState::Active) => Status::Active,
        Ok(pb::ParticipantState::Restricted) => {
            Status::Restricted { zones: labels("restricted_zones", &p.restricted_zones, MAX_ZONES)? }
        }
        Ok(pb::ParticipantState::Suspended) => Status::Suspended,
        Ok(pb::ParticipantState::Withdrawn) => Status::Withdrawn,
        _ => return Err(FieldError::new("state", format!("{} is not a participant state", p.state))),
    };
    if !matches!(status, Status::Restricted { .. }) && !p.restricted_zones.is_empty() {
        return Err(FieldError::new("restricted_zones", "only a restricted participant has zones"));
    }
    let participant = Participant {
        id: pid("id", &p.id)?,
        name: text("name", &p.name)?,
        members: p
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| at(&format!("members[{i}]"), CountryCode::new(m)))
            .collect::<R<_>>()?,
        status,
        node_key: key("node_key", &p.node_key)?,
        authorities: p
            .authorities
            .iter()
            .enumerate()
            .map(|(i, a)| authority_from(&format!("authorities[{i}]"), a))
            .collect::<R<_>>()?,
        max_certificate_validity_days: u16::try_from(p.max_certificate_validity_days)
            .map_err(|_| FieldError::new("max_certificate_validity_days", "at most 65535 days"))?,
    };
    participant.validate()?;
    Ok(participant)
}
fn participant_to(p: &Participant) -> pb::Participant {
    let (state, zones) = match &p.status {
        Status::Active => (pb::ParticipantState::Active, vec![]),
        Status::Restricted { zones } => {
            (pb::ParticipantState::Restricted, zones.iter().map(ToString::to_string).collect())
        }
        Status::Suspended => (pb::ParticipantState::Suspended, vec![]),
        Status::Withdrawn => (pb::ParticipantState::Withdrawn, vec![]),
    };
    pb::Participant {
        id: p.id.to_string(),
        name: p.name.to_string(),
        members: p.members.iter().map(ToString::to_string).collect(),
        state: state as i32,
        restricted_zones: zones,
        node_key: p.node_key.0.to_vec(),
        authorities: p.authorities.iter().map(authority_to).collect(),
        max_certificate_validity_days: u32::from(p.max_certificate_validity_days),
    }
}

pub fn act_from_proto(a: pb::GovernanceAct) -> R<GovernanceAct> {
    use pb::governance_act::Action as A;
    let action = match required("action", a.action)? {
        A::Admit(p) => GovernanceAction::Admit(at("admit", participant_from(p))?),
        A::Suspend(r) => GovernanceAction::Suspend { participant: pid("suspend.participant", &r.participant)? },
        A::Readmit(r) => GovernanceAction::Readmit { participant: pid("readmit.participant", &r.participant)? },
        A::Withdraw(r) => GovernanceAction::Withdraw { participant: pid("withdraw.participant", &r.participant)? },
        A::Restrict(r) => GovernanceAction::Restrict {
            participant: pid("restrict.participant", &r.participant)?,
            zones: labels("restrict.zones", &r.zones, MAX_ZONES)?,
        },
        A::AuthorityKeyAdded(k) => GovernanceAction::AuthorityKeyAdded {
            participant: pid("authority_key_added.participant", &k.participant)?,
            key: authority_from("authority_key_added.key", &required("authority_key_added.key", k.key)?)?,
        },
        A::AuthorityKeyRevoked(k) => GovernanceAction::AuthorityKeyRevoked {
            participant: pid("authority_key_revoked.participant", &k.participant)?,
            key: key("authority_key_revoked.key", &k.key)?,
        },
    };
    let act = GovernanceAct {
        reference: label("reference", &a.reference)?,
        action,
        rationale: text("rationale", &a.rationale)?,
    };
    act.validate()?;
    Ok(act)
}

pub fn act_to_proto(a: &GovernanceAct) -> pb::GovernanceAct {
    use pb::governance_act::Action as A;
    let r = |p: &ParticipantId| pb::ParticipantRef { participant: p.to_string() };
    let action = match &a.action {
        GovernanceAction::Admit(p) => A::Admit(participant_to(p)),
        GovernanceAction::Suspend { participant } => A::Suspend(r(participant)),
        GovernanceAction::Readmit { participant } => A::Readmit(r(participant)),
        GovernanceAction::Withdraw { participant } => A::Withdraw(r(participant)),
        GovernanceAction::Restrict { participant, zones } => A::Restrict(pb::Restrict {
            participant: participant.to_string(),
            zones: zones.iter().map(ToString::to_string).collect(),
        }),
        GovernanceAction::AuthorityKeyAdded { participant, key } => A::AuthorityKeyAdded(pb::AuthorityKeyAdded {
            participant: participant.to_string(),
            key: Some(authority_to(key)),
        }),
        GovernanceAction::AuthorityKeyRevoked { participant, key } => A::AuthorityKeyRevoked(pb::AuthorityKeyRevoked {
            participant: participant.to_string(),
            key: key.0.to_vec(),
        }),
    };
    pb::GovernanceAct { reference: a.reference.to_string(), rationale: a.rationale.to_string(), action: Some(action) }
}

pub fn genesis_from_proto(g: pb::Genesis) -> R<Genesis> {
    if g.participants.len() > MAX_PARTICIPANTS || g.observers.len() > MAX_OBSERVERS {
        return Err(FieldError::new("participants", "too many participants or observers"));
    }
    let params = required("params", g.params)?;
    Ok(Genesis {
        format_version: g.format_version,
        chain_id: ChainId::new(&g.chain_id)?,
        genesis_time: Timestamp(g.genesis_time_ms),
        participants: g
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| at(&format!("participants[{i}]"), participant_from(p)))
            .collect::<R<_>>()?,
        observers: g
            .observers
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let f = format!("observers[{i}]");
                Ok(Observer {
                    id: at(&format!("{f}.id"), ObserverId::new(&o.id))?,
                    name: text(&format!("{f}.name"), &o.name)?,
                    node_key: key(&format!("{f}.node_key"), &o.node_key)?,
                })
            })
            .collect::<R<_>>()?,
        params: ProtocolParams {
            max_event_time_ahead_ms: params.max_event_time_ahead_ms,
            max_issue_backdate_days: u16::try_from(params.max_issue_backdate_days)
                .map_err(|_| FieldError::new("params.max_issue_backdate_days", "at most 65535"))?,
            max_events_per_block: params.max_events_per_block,
            max_block_bytes: params.max_block_bytes,
            signature_rule: match pb::SignatureRule::try_from(params.signature_rule) {
                Ok(pb::SignatureRule::Strict) => SignatureRule::Strict,
                Ok(pb::SignatureRule::Cofactored) => SignatureRule::Cofactored,
                Err(_) => {
                    return Err(FieldError::new(
                        "params.signature_rule",
                        format!("{} is not a signature rule (0 strict, 1 cofactored)", params.signature_rule),
                    ));
                }
            },
        },
    })
}

pub fn genesis_to_proto(g: &Genesis) -> pb::Genesis {
    pb::Genesis {
        format_version: g.format_version,
        chain_id: g.chain_id.to_string(),
        genesis_time_ms: g.genesis_time.0,
        participants: g.participants.iter().map(participant_to).collect(),
        observers: g
            .observers
            .iter()
            .map(|o| pb::Observer { id: o.id.to_string(), name: o.name.to_string(), node_key: o.node_key.0.to_vec() })
            .collect(),
        params: Some(pb::ProtocolParams {
            max_event_time_ahead_ms: g.params.max_event_time_ahead_ms,
            max_issue_backdate_days: u32::from(g.params.max_issue_backdate_days),
            max_events_per_block: g.params.max_events_per_block,
            max_block_bytes: g.params.max_block_bytes,
            signature_rule: match g.params.signature_rule {
                SignatureRule::Strict => pb::SignatureRule::Strict,
                SignatureRule::Cofactored => pb::SignatureRule::Cofactored,
            } as i32,
        }),
    }
}
