//! Who may call what on the API, and what each caller may see: the node's access rules, in one
//! place (docs/security.md has the threat model; docs/ARCHITECTURE.md the table).
//!
//! A caller is identified once per connection, from its TLS client certificate (`crate::tls`):
//! the certificate's `kp-ledger:` URI names its role. [`AccessLayer`], a tower layer in front of
//! every service of the API, refuses a method outside the caller's rights (`UNAUTHENTICATED`
//! for a caller without a certificate, `PERMISSION_DENIED` naming the right otherwise) and hands
//! the [`Caller`] to the handlers, which ask it what the answer may show
//! ([`Caller::sees`], [`Caller::sees_participant`], [`Caller::may_sign_for`]).

pub use crate::role::{Grant, ROLE_URI_SCHEME, Role, parse_role, role_uri};
use kp_domain::{Date, ParticipantId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::Status;

/// Most requests in progress at once for one caller identity.
pub const MAX_REQUESTS_PER_IDENTITY: usize = 32;
/// Most block subscriptions open at once for one caller identity.
pub const MAX_SUBSCRIPTIONS_PER_IDENTITY: usize = 8;

/// What a caller may do. Each method of the API needs exactly one ([`METHODS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    /// gRPC health checks.
    Health,
    /// The node's view of the network (`GetStatus`).
    Status,
    /// The ledger as a whole: genesis, blocks, events, custody and governance — with each
    /// event's commercial fields only where [`Caller::sees`] allows.
    ReadLedger,
    /// Certificate listings and proof bundles (every field) of the participants the caller is
    /// entitled to ([`Caller::sees_participant`], [`Caller::sees`]).
    ReadCertificates,
    /// Submitting events signed by the caller's own participant's authorities.
    Submit,
    /// Approving governance acts with the caller's own participant's keys.
    Approve,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Health => "health",
            Right::Status => "status",
            Right::ReadLedger => "read-ledger",
            Right::ReadCertificates => "read-certificates",
            Right::Submit => "submit",
            Right::Approve => "approve",
        }
    }
}

/// Every method the API serves and the right it needs. A method not listed is refused to
/// everyone (so a service added without its entry here is closed, not open).
pub const METHODS: &[(&str, Right)] = &[
    ("/grpc.health.v1.Health/Check", Right::Health),
    ("/grpc.health.v1.Health/Watch", Right::Health),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Right::ReadLedger),
    ("/kp.v1.Node/Submit", Right::Submit),
    ("/kp.v1.Node/SubmitBatch", Right::Submit),
    ("/kp.v1.Node/GetEvent", Right::ReadLedger),
    ("/kp.v1.Node/GetCustody", Right::ReadLedger),
    ("/kp.v1.Node/ListCertificates", Right::ReadCertificates),
    ("/kp.v1.Node/GetBlock", Right::ReadLedger),
    ("/kp.v1.Node/GetStatus", Right::Status),
    ("/kp.v1.Node/SubscribeBlocks", Right::ReadLedger),
    ("/kp.v1.Node/Approve", Right::Approve),
    ("/kp.v1.Node/GetGovernance", Right::ReadLedger),
    ("/kp.v1.Node/GetGovernanceEvents", Right::ReadLedger),
    ("/kp.v1.Node/GetGenesis", Right::ReadLedger),
    ("/kp.v1.Node/GetProof", Right::ReadCertificates),
];

/// The right `path` (`/package.Service/Method`) needs, if the API serves it.
pub fn right_of(path: &str) -> Option<Right> {
    METHODS.iter().find(|(m, _)| *m == path).map(|(_, r)| *r)
}

impl Role {
    fn has(&self, right: Right) -> bool {
        match self {
            Role::Local => true,
            Role::Authority(_) => true,
            Role::Reviewer(_) => !matches!(right, Right::Submit | Right::Approve),
            Role::Observer => matches!(right, Right::Health | Right::Status | Right::ReadLedger),
            Role::Anonymous => matches!(right, Right::Health | Right::Status),
        }
    }
}

/// The facts about an event that decide who sees its commercial fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concerns {
    /// A custody event of a certificate.
    Certificate { exporter: ParticipantId, importer: ParticipantId, issued_on: Date },
    /// A participant's production report for a half-year starting on `start`.
    Production { participant: ParticipantId, start: Date },
    /// Governance: seen in full by every authenticated caller.
    Public,
    /// Unknown (an event that does not decode): seen in full by no one but `Local`.
    Unknown,
}

/// Who is calling, as the node identified it when the connection was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The certificate's subject common name (or the remote address without one), for logs
    /// and limits.
    pub name: String,
    /// Why a certificate that was presented was not taken (the caller is then anonymous).
    pub refused: Option<String>,
}

impl Caller {
    pub fn anonymous(name: String, refused: Option<String>) -> Caller {
        Caller { role: Role::Anonymous, name, refused }
    }

    /// The key per-identity limits count under.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.role.label(), self.name)
    }

    /// Refuses `right` unless the caller has it.
    pub fn check(&self, right: Right, method: &str) -> Result<(), Status> {
        if self.role.has(right) {
            return Ok(());
        }
        match (&self.role, &self.refused) {
            (Role::Anonymous, Some(why)) => Err(Status::unauthenticated(format!(
                "{method} needs the right {}: the client certificate was not accepted ({why})",
                right.name()
            ))),
            (Role::Anonymous, None) => Err(Status::unauthenticated(format!(
                "{method} needs the right {}: present a client certificate issued by the network's CA",
                right.name()
            ))),
            (role, _) => Err(Status::permission_denied(format!(
                "{} ({}) lacks the right {} that {method} needs",
                self.name,
                role.label(),
                right.name()
            ))),
        }
    }

    /// Whether the caller sees in full (signed bytes, parties, carats, values) an event with
    /// these facts.
    pub fn sees(&self, concerns: &Concerns) -> bool {
        match (&self.role, concerns) {
            (Role::Local, _) => true,
            (Role::Anonymous, _) => false,
            (_, Concerns::Public) => true,
            (_, Concerns::Unknown) => false,
            (Role::Observer, _) => false,
            (Role::Authority(p), Concerns::Certificate { exporter, importer, .. }) => p == exporter || p == importer,
            (Role::Authority(p), Concerns::Production { participant, .. }) => p == participant,
            (Role::Reviewer(g), Concerns::Certificate { exporter, importer, issued_on }) => {
                (g.covers_participant(*exporter) || g.covers_participant(*importer)) && g.covers_date(*issued_on)
            }
            (Role::Reviewer(g), Concerns::Production { participant, start }) => {
                g.covers_participant(*participant) && g.covers_date(*start)
            }
        }
    }

    /// Whether the caller may list a participant's certificates (with every field).
    pub fn sees_participant(&self, p: ParticipantId) -> bool {
        match &self.role {
            Role::Local => true,
            Role::Authority(own) => *own == p,
            Role::Reviewer(g) => g.covers_participant(p),
            Role::Observer | Role::Anonymous => false,
        }
    }

    /// The reviewer's period, if the caller is a reviewer limited to one.
    pub fn period(&self) -> (Option<Date>, Option<Date>) {
        match &self.role {
            Role::Reviewer(g) => (g.from, g.to),
            _ => (None, None),
        }
    }

    /// Whether the caller may submit events and approvals signed by `participant`'s keys.
    pub fn may_sign_for(&self, participant: ParticipantId) -> bool {
        match &self.role {
            Role::Local => true,
            Role::Authority(own) => *own == participant,
            _ => false,
        }
    }
}

/// Counts what each identity holds (connections, requests, subscriptions) against a cap.
#[derive(Debug, Default)]
pub struct PerIdentity {
    held: Mutex<HashMap<String, usize>>,
}

/// One unit an identity holds; given back when dropped.
#[derive(Debug)]
pub struct Held {
    counts: Arc<PerIdentity>,
    key: String,
}

impl PerIdentity {
    /// Takes one unit for `key` unless it holds `cap` already. The map holds only identities
    /// holding something, so its size is bounded by what is held overall.
    pub fn try_take(self: &Arc<Self>, key: &str, cap: usize) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = held.entry(key.to_owned()).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Held { counts: Arc::clone(self), key: key.to_owned() })
    }

    pub fn held(&self, key: &str) -> usize {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied().unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// The connection's caller, as `crate::tls` identified it (tonic puts it in every request's
/// extensions).
#[derive(Debug, Clone)]
pub struct ConnCaller(pub Arc<Caller>);

/// The tower layer that enforces [`METHODS`] on every request and hands the [`Caller`] on.
#[derive(Debug, Clone, Default)]
pub struct AccessLayer {
    requests: Arc<PerIdentity>,
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access { inner, requests: Arc::clone(&self.requests) }
    }
}

#[derive(Debug, Clone)]
pub struct Access<S> {
    inner: S,
    requests: Arc<PerIdentity>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Access<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let caller = request
            .extensions()
            .get::<ConnCaller>()
            .map(|c| Arc::clone(&c.0))
            .unwrap_or_else(|| Arc::new(Caller::anonymous("unidentified".into(), None)));
        let decision = match right_of(&path) {
            None => Err(Status::permission_denied(format!("{path} is not a method of this API"))),
            Some(right) => caller.check(right, &path),
        };
        let held = decision.and_then(|()| {
            self.requests.try_take(&caller.identity(), MAX_REQUESTS_PER_IDENTITY).ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "{} has {MAX_REQUESTS_PER_IDENTITY} requests in progress already",
                    caller.name
                ))
            })
        });
        match held {
            Err(status) => {
                tracing::debug!(caller = %caller.identity(), %path, code = ?status.code(), "API call refused");
                Box::pin(async move { Ok(status.into_http()) })
            }
            Ok(held) => {
                request.extensions_mut().insert(caller);
                // The clone takes the readiness this service was polled for (tower's pattern).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let response = inner.call(request).await;
                    drop(held);
                    response
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }
    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }
    fn caller(role: Role) -> Caller {
        Caller { role, name: "t".into(), refused: None }
    }

    #[test]
    fn role_uris_read_back() {
        let roles = [
            Role::Authority(p("BW")),
            Role::Observer,
            Role::Reviewer(Grant::default()),
            Role::Reviewer(Grant { participants: Some([p("CD"), p("CG")].into()), from: None, to: None }),
            Role::Reviewer(Grant { participants: None, from: Some(d("2025-01-01")), to: Some(d("2025-12-31")) }),
            Role::Reviewer(Grant { participants: Some([p("CD")].into()), from: None, to: Some(d("2025-12-31")) }),
        ];
        for r in roles {
            assert_eq!(parse_role(&role_uri(&r)).unwrap(), r, "{}", role_uri(&r));
        }
        for bad in [
            "kp-ledger:authority:bw",
            "kp-ledger:admin",
            "https://example.org",
            "kp-ledger:reviewer:CD:2025-13-01:",
            "kp-ledger:reviewer:CD:2025-06-01:2025-01-01",
            "kp-ledger:authority:BW:extra",
        ] {
            assert!(parse_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rights_follow_the_table() {
        let anonymous = caller(Role::Anonymous);
        let observer = caller(Role::Observer);
        let reviewer = caller(Role::Reviewer(Grant::default()));
        let authority = caller(Role::Authority(p("BW")));
        for (method, right) in METHODS {
            let allowed = [&anonymous, &observer, &reviewer, &authority].map(|c| c.check(*right, method).is_ok());
            let expected = match right {
                Right::Health | Right::Status => [true, true, true, true],
                Right::ReadLedger => [false, true, true, true],
                Right::ReadCertificates => [false, false, true, true],
                Right::Submit | Right::Approve => [false, false, false, true],
            };
            assert_eq!(allowed, expected, "{method}");
        }
        assert_eq!(anonymous.check(Right::ReadLedger, "m").unwrap_err().code(), tonic::Code::Unauthenticated);
        let e = observer.check(Right::Submit, "/kp.v1.Node/Submit").unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("right submit"), "{}", e.message());
        assert_eq!(right_of("/kp.v1.Node/Nothing"), None);
    }

    #[test]
    fn commercial_fields_go_to_those_entitled() {
        let cert = Concerns::Certificate { exporter: p("BW"), importer: p("AE"), issued_on: d("2025-03-01") };
        assert!(caller(Role::Authority(p("BW"))).sees(&cert));
        assert!(caller(Role::Authority(p("AE"))).sees(&cert));
        assert!(!caller(Role::Authority(p("EU"))).sees(&cert));
        assert!(!caller(Role::Observer).sees(&cert));
        assert!(caller(Role::Observer).sees(&Concerns::Public));
        assert!(!caller(Role::Anonymous).sees(&Concerns::Public));
        let granted = |ps: &[&str], from: Option<&str>, to: Option<&str>| {
            caller(Role::Reviewer(Grant {
                participants: Some(ps.iter().map(|s| p(s)).collect()),
                from: from.map(d),
                to: to.map(d),
            }))
        };
        assert!(granted(&["AE"], None, None).sees(&cert));
        assert!(!granted(&["EU"], None, None).sees(&cert));
        assert!(granted(&["BW"], Some("2025-01-01"), Some("2025-03-01")).sees(&cert));
        assert!(!granted(&["BW"], Some("2025-03-02"), None).sees(&cert));
        assert!(!granted(&["BW"], None, Some("2025-02-28")).sees(&cert));
        assert!(granted(&["BW"], None, None).sees_participant(p("BW")));
        assert!(!granted(&["BW"], None, None).sees_participant(p("AE")));
        assert!(!caller(Role::Observer).sees_participant(p("BW")));
        assert!(caller(Role::Authority(p("BW"))).may_sign_for(p("BW")));
        assert!(!caller(Role::Authority(p("BW"))).may_sign_for(p("AE")));
        assert!(!caller(Role::Reviewer(Grant::default())).may_sign_for(p("BW")));
    }

    #[test]
    fn per_identity_counts_are_capped_and_given_back() {
        let counts = Arc::new(PerIdentity::default());
        let a = counts.try_take("x", 2).unwrap();
        let _b = counts.try_take("x", 2).unwrap();
        assert!(counts.try_take("x", 2).is_none());
        assert!(counts.try_take("y", 2).is_some());
        drop(a);
        assert_eq!(counts.held("x"), 1);
        assert!(counts.try_take("x", 2).is_some());
    }
}
