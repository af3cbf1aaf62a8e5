//! Callers' roles as a client certificate names them (`kp-ledger:` URIs), apart from the access
//! rules (`crate::access`) so that the configuration reader, which parses `explorer_role`,
//! needs nothing but `kp-domain` (the fuzz crate compiles it on its own).

use kp_domain::{Date, ParticipantId};
use std::collections::BTreeSet;

/// What a reviewer is granted: participants (all when `None`) and a period of certificates'
/// issue dates (inclusive; open ends when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    pub participants: Option<BTreeSet<ParticipantId>>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

impl Grant {
    pub(crate) fn covers_participant(&self, p: ParticipantId) -> bool {
        self.participants.as_ref().is_none_or(|s| s.contains(&p))
    }
    pub(crate) fn covers_date(&self, d: Date) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }
}

/// A caller's role, from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// An authority of a participant: submits and approves for it, reads everything about its
    /// certificates.
    Authority(ParticipantId),
    /// A review-visit team or the Working Group on Statistics: reads everything about the
    /// certificates of the participants it is granted, in its period.
    Reviewer(Grant),
    /// Industry and civil society (WDC, Civil Society Coalition): the ledger without commercial
    /// fields.
    Observer,
    /// No client certificate: health and status only.
    Anonymous,
    /// A plaintext API on loopback, configured explicitly (`api_plaintext`): every right.
    Local,
}

impl Role {
    /// `anonymous`, `observer`, `reviewer`, `authority:BW` or `local`.
    pub fn label(&self) -> String {
        match self {
            Role::Authority(p) => format!("authority:{p}"),
            Role::Reviewer(_) => "reviewer".into(),
            Role::Observer => "observer".into(),
            Role::Anonymous => "anonymous".into(),
            Role::Local => "local".into(),
        }
    }
}

/// The URI scheme of a client certificate's role (a subject alternative name).
pub const ROLE_URI_SCHEME: &str = "kp-ledger";

/// Parses a role URI: `kp-ledger:authority:BW`, `kp-ledger:observer`, `kp-ledger:reviewer`,
/// `kp-ledger:reviewer:CD,CG` or `kp-ledger:reviewer:CD,CG:2025-01-01:2025-12-31` (`*` for
/// every participant; either date may be empty for an open end).
pub fn parse_role(uri: &str) -> Result<Role, String> {
    let rest = uri
        .strip_prefix(ROLE_URI_SCHEME)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| format!("{uri:?} is not a {ROLE_URI_SCHEME}: role"))?;
    let parts: Vec<&str> = rest.split(':').collect();
    let participant = |s: &str| ParticipantId::new(s).map_err(|e| format!("{uri:?}: participant {s:?}: {e}"));
    let date = |s: &str| -> Result<Option<Date>, String> {
        if s.is_empty() { Ok(None) } else { Date::parse(s).map(Some).map_err(|e| format!("{uri:?}: date {s:?}: {e}")) }
    };
    match parts.as_slice() {
        ["authority", p] => Ok(Role::Authority(participant(p)?)),
        ["observer"] => Ok(Role::Observer),
        ["reviewer"] => Ok(Role::Reviewer(Grant::default())),
        ["reviewer", ps] | ["reviewer", ps, _, _] => {
            let participants = if *ps == "*" {
                None
            } else {
                let set = ps.split(',').map(participant).collect::<Result<BTreeSet<_>, _>>()?;
                Some(set)
            };
            let (from, to) = match parts.as_slice() {
                [_, _, f, t] => (date(f)?, date(t)?),
                _ => (None, None),
            };
            if let (Some(f), Some(t)) = (from, to)
                && t < f
            {
                return Err(format!("{uri:?}: the period ends before it starts"));
            }
            Ok(Role::Reviewer(Grant { participants, from, to }))
        }
        _ => Err(format!("{uri:?} names no role (authority:XX, reviewer[:XX,YY[:FROM:TO]] or observer)")),
    }
}

/// The role URI of `role` (what `parse_role` reads back), for issuing certificates.
pub fn role_uri(role: &Role) -> String {
    match role {
        Role::Reviewer(g) => {
            let ps = g.participants.as_ref().map_or_else(
                || "*".to_owned(),
                |s| s.iter().map(|p| p.as_str().to_owned()).collect::<Vec<_>>().join(","),
            );
            let d = |d: &Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();
            if g.from.is_none() && g.to.is_none() {
                if g.participants.is_none() {
                    format!("{ROLE_URI_SCHEME}:reviewer")
                } else {
                    format!("{ROLE_URI_SCHEME}:reviewer:{ps}")
                }
            } else {
                format!("{ROLE_URI_SCHEME}:reviewer:{ps}:{}:{}", d(&g.from), d(&g.to))
            }
        }
        other => format!("{ROLE_URI_SCHEME}:{}", other.label()),
    }
}
