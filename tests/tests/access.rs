//! Who may call what on a live node's API (real `kpledger node` processes on loopback, over TLS
//! with the test network's CA): every RPC for every role, against the table in
//! `kp_node::access`; commercial fields withheld from those not entitled (checked byte by byte);
//! client certificates from another CA, expired, or none; a plaintext client on a TLS port; and
//! a flood of connections refused at the cap while the chain goes on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use kp_node::pb;
use kpledger::node::{ApiAuth, connect_with};
use prost::Message;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::Code;

type Client = pb::node_client::NodeClient<tonic::transport::Channel>;

fn tls(dir: &Path, identity: Option<(PathBuf, PathBuf)>) -> ApiAuth {
    ApiAuth::Tls { ca: dir.join("ca.pem"), identity }
}

fn pair(dir: &Path, stem: &str) -> Option<(PathBuf, PathBuf)> {
    Some((dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key"))))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// What a call answered: Ok (with the answer's encoded bytes) or the status code.
type Answer = Result<Vec<u8>, Code>;

fn code<T: Message>(r: Result<tonic::Response<T>, tonic::Status>) -> Answer {
    r.map(|r| r.into_inner().encode_to_vec()).map_err(|s| s.code())
}

struct Fixture {
    certificate: String,
    issue_id: String,
    issue_height: u64,
    /// A fresh event signed by BW's exporting authority, and an act approval by BW's key.
    fresh_event: Vec<u8>,
    approval: pb::ApproveRequest,
    /// Byte strings that must not reach a caller not entitled to the certificate.
    secrets: Vec<Vec<u8>>,
}

/// Every RPC once, as the client's identity: the answers by method name.
async fn every_rpc(
    client: &mut Client,
    health: &mut tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>,
    f: &Fixture,
) -> Vec<(&'static str, Answer)> {
    let mut out = Vec::new();
    out.push(("GetStatus", code(client.get_status(pb::GetStatusRequest {}).await)));
    out.push((
        "Health/Check",
        code(health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await),
    ));
    out.push(("GetGenesis", code(client.get_genesis(pb::GetGenesisRequest {}).await)));
    out.push(("GetBlock", code(client.get_block(pb::GetBlockRequest { height: f.issue_height }).await)));
    let sub = client.subscribe_blocks(pb::SubscribeBlocksRequest { from_height: f.issue_height }).await;
    let first = match sub {
        Ok(s) => match s.into_inner().message().await {
            Ok(Some(b)) => Ok(b.encode_to_vec()),
            Ok(None) => Err(Code::Unknown),
            Err(s) => Err(s.code()),
        },
        Err(s) => Err(s.code()),
    };
    out.push(("SubscribeBlocks", first));
    out.push(("GetEvent", code(client.get_event(pb::GetEventRequest { event_id: f.issue_id.clone() }).await)));
    out.push((
        "GetCustody",
        code(client.get_custody(pb::GetCustodyRequest { certificate: f.certificate.clone() }).await),
    ));
    out.push((
        "ListCertificates",
        code(
            client
                .list_certificates(pb::ListCertificatesRequest {
                    participant: "BW".into(),
                    role: pb::list_certificates_request::Role::Exporter.into(),
                    ..Default::default()
                })
                .await,
        ),
    ));
    out.push(("GetProof", code(client.get_proof(pb::GetProofRequest { certificate: f.certificate.clone() }).await)));
    out.push((
        "GetGovernance",
        code(client.get_governance(pb::GetGovernanceRequest { reference: String::new() }).await),
    ));
    out.push((
        "GetGovernanceEvents",
        code(client.get_governance_events(pb::GetGovernanceEventsRequest { from_height: 0, limit: 0 }).await),
    ));
    out.push(("Submit", code(client.submit(pb::SubmitRequest { envelope: f.fresh_event.clone() }).await)));
    out.push((
        "SubmitBatch",
        code(client.submit_batch(pb::SubmitBatchRequest { envelopes: vec![f.fresh_event.clone()] }).await),
    ));
    out.push(("Approve", code(client.approve(f.approval.clone()).await)));
    out
}

/// The expected outcome of each call per role: `F` full, `R` answered with the certificate's
/// commercial fields withheld, `D` PERMISSION_DENIED, `U` UNAUTHENTICATED.
const TABLE: &[(&str, [char; 6])] = &[
    //                        anon  obs  rev-all rev-AE auth-BW auth-AE
    ("GetStatus", ['F', 'F', 'F', 'F', 'F', 'F']),
    ("Health/Check", ['F', 'F', 'F', 'F', 'F', 'F']),
    ("GetGenesis", ['U', 'F', 'F', 'F', 'F', 'F']),
    ("GetBlock", ['U', 'R', 'F', 'R', 'F', 'R']),
    ("SubscribeBlocks", ['U', 'R', 'F', 'R', 'F', 'R']),
    ("GetEvent", ['U', 'R', 'F', 'R', 'F', 'R']),
    ("GetCustody", ['U', 'R', 'F', 'R', 'F', 'R']),
    ("ListCertificates", ['U', 'D', 'F', 'D', 'F', 'D']),
    ("GetProof", ['U', 'D', 'F', 'D', 'F', 'D']),
    ("GetGovernance", ['U', 'F', 'F', 'F', 'F', 'F']),
    ("GetGovernanceEvents", ['U', 'F', 'F', 'F', 'F', 'F']),
    ("Submit", ['U', 'D', 'D', 'D', 'F', 'D']),
    ("SubmitBatch", ['U', 'D', 'D', 'D', 'F', 'D']),
    ("Approve", ['U', 'D', 'D', 'D', 'F', 'D']),
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_rpc_answers_each_role_as_the_access_table_says() {
    let net = Net::start(4, 0);
    let dir = net.dir().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
    let number = format!("BW-{year}-{:06}", 1);
    let file = certificate(work.path(), &number);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "BW");
    let issue_height = issued["height"].as_u64().unwrap();
    let issue_id = issued["event_id"].as_str().unwrap().to_owned();

    // Identities: the test network's, and a reviewer granted AE only.
    let limited = work.path().join("reviewer-ae");
    ok(&[
        "testnet",
        "client-cert",
        "--dir",
        path(&dir),
        "--role",
        "reviewer:AE",
        "--name",
        "AE review",
        "--out",
        path(&limited),
    ]);
    let clients = dir.join("clients");
    let identities: [(&str, Option<(PathBuf, PathBuf)>); 6] = [
        ("anonymous", None),
        ("observer", pair(&clients, "observer")),
        ("reviewer", pair(&clients, "reviewer")),
        ("reviewer:AE", pair(work.path(), "reviewer-ae")),
        ("authority:BW", pair(&dir.join("BW"), "client")),
        ("authority:AE", pair(&dir.join("AE"), "client")),
    ];

    // A fresh BW event, an approval by BW's key, and what must not leak.
    let genesis = kpledger::testnet::read_genesis(&net.genesis_file()).unwrap();
    let key = kpledger::keyfile::read(&dir.join("BW/exporting.key")).unwrap();
    let fresh = certificate(work.path(), &format!("BW-{year}-{:06}", 2));
    let payload = kpledger::cert::issue_payload(&fresh).unwrap();
    let fresh_event = kp_proto::sign_event(&key, &genesis.chain_id, kp_proto::encode_payload(&payload).unwrap());
    let spec = kpledger::governance::ActSpec {
        action: "suspend".into(),
        participant: Some("AM".into()),
        ..Default::default()
    };
    let act = kp_proto::encode_act(&kpledger::governance::build_act(&spec, "KP-ACCESS-1", "test").unwrap());
    let approval = kp_proto::Approval::sign(&key, &genesis.chain_id, &act);
    let approval = pb::ApproveRequest { act, key: approval.key.0.to_vec(), signature: approval.signature.0.to_vec() };
    let envelope = kpledger::node::block_on(async {
        let mut c = connect_with(&net.api("BW"), &tls(&dir, pair(&clients, "reviewer"))).await?;
        Ok(c.get_event(pb::GetEventRequest { event_id: issue_id.clone() }).await?.into_inner().envelope)
    })
    .unwrap();
    let signed_payload = kp_proto::decode_event(&envelope).unwrap().payload_bytes().to_vec();
    let mut secrets: Vec<Vec<u8>> = vec![
        b"Okavango Diamond Company".to_vec(),
        b"Antwerp Rough Trading BV".to_vec(),
        b"BW-LIC-0042".to_vec(),
        envelope.clone(),
    ];
    // Any 16 consecutive bytes of the signed payload (which holds carats and values), but for
    // those that overlap the certificate number: it is public (the redacted views name it,
    // and a caller asks for it), and its encoding in an answer may match a window around it.
    let at = signed_payload.windows(number.len()).position(|w| w == number.as_bytes()).unwrap();
    let public = at..at + number.len();
    secrets.extend(
        signed_payload
            .windows(16)
            .enumerate()
            .filter(|(i, _)| *i + 16 <= public.start || *i >= public.end)
            .map(|(_, w)| w.to_vec()),
    );
    let f = Fixture { certificate: number.clone(), issue_id, issue_height, fresh_event, approval, secrets };

    let rt = runtime();
    let mut failures = Vec::new();
    for (column, (who, identity)) in identities.iter().enumerate() {
        let answers = rt.block_on(async {
            let auth = tls(&dir, identity.clone());
            let mut client = connect_with(&net.api("BW"), &auth).await.unwrap();
            let status = client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
            assert_eq!(status.caller, if *who == "reviewer:AE" { "reviewer" } else { who }, "{who}");
            let channel = match &auth {
                ApiAuth::Tls { ca, identity } => {
                    let mut t = tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(ca).unwrap()));
                    if let Some((c, k)) = identity {
                        t = t.identity(tonic::transport::Identity::from_pem(
                            std::fs::read(c).unwrap(),
                            std::fs::read(k).unwrap(),
                        ));
                    }
                    tonic::transport::Endpoint::from_shared(format!("https://{}", net.api("BW")))
                        .unwrap()
                        .tls_config(t)
                        .unwrap()
                        .connect()
                        .await
                        .unwrap()
                }
                _ => unreachable!(),
            };
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            every_rpc(&mut client, &mut health, &f).await
        });
        for (method, answer) in answers {
            let expected = TABLE.iter().find(|(m, _)| *m == method).unwrap().1[column];
            let got = match &answer {
                Err(Code::PermissionDenied) => 'D',
                Err(Code::Unauthenticated) => 'U',
                Err(c) => {
                    failures.push(format!("{who} {method}: {c:?}"));
                    continue;
                }
                Ok(bytes) => {
                    let leaked = f.secrets.iter().any(|s| contains(bytes, s));
                    if leaked { 'F' } else { 'R' }
                }
            };
            // Answers without any certificate content (status, genesis, governance) count as
            // full: they hold nothing to withhold.
            let content = matches!(method, "GetBlock" | "SubscribeBlocks" | "GetEvent" | "GetCustody");
            let got = if !content && got == 'R' { 'F' } else { got };
            if got != expected {
                failures.push(format!("{who} {method}: expected {expected}, got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "access table violated:\n{}", failures.join("\n"));

    // The redacted view still proves the block: its leaf hashes recompute the events root.
    rt.block_on(async {
        let mut c = connect_with(&net.api("AE"), &tls(&dir, pair(&clients, "observer"))).await.unwrap();
        let b = c.get_block(pb::GetBlockRequest { height: issue_height }).await.unwrap().into_inner();
        assert_eq!(b.redacted.len(), 1, "{b:?}");
        let r = &b.redacted[0];
        assert_eq!((r.certificate.as_str(), r.exporter.as_str(), r.importer.as_str()), (number.as_str(), "BW", "EU"));
        assert_eq!(r.kind, "certificate_issued");
        let leaves: Vec<kp_domain::Hash32> = b
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| match b.redacted.iter().find(|r| r.index as usize == i) {
                Some(r) => kp_domain::Hash32(r.leaf_hash.clone().try_into().unwrap()),
                None => kp_crypto::leaf_hash(e),
            })
            .collect();
        let header = kp_consensus::block::BlockHeader::decode(&b.header).unwrap();
        assert_eq!(kp_crypto::root_of_hashes(&leaves), header.events_root);
    });

    // The CLI as an observer: custody shows the steps redacted; a full export is refused with
    // the reason; as BW's authority, custody is full.
    let api = net.api("BW");
    let custody = json(&["--as", "observer", "custody", &number, "--node", &api]);
    assert_eq!(custody["steps"][0]["redacted"], true, "{custody}");
    let refused = kpledger(&["--as", "observer", "export", "--node", &api, "--out", path(&work.path().join("x.kpx"))]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("withholds"), "{refused:?}");
    let full = json(&["--as", "BW", "custody", &number, "--node", &api]);
    assert_eq!(full["steps"][0]["redacted"], false, "{full}");
    // The text view says which steps were withheld, and only to whom.
    assert!(ok(&["--as", "observer", "custody", &number, "--node", &api]).contains("redacted: signed bytes withheld"));
    assert!(!ok(&["--as", "BW", "custody", &number, "--node", &api]).contains("redacted"));
}

/// A Python grpcio client generated from proto/ alone (tests/python/submit_event.py)
/// authenticates as BW's authority and submits an event it signed itself.
fn python_client(net: &Net, work: &Path) {
    let python = std::env::var("KP_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python).args(["-c", "import grpc, grpc_tools, cryptography"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("KP_REQUIRE_PYTHON").is_none(),
            "KP_REQUIRE_PYTHON is set but {python} lacks grpcio, grpcio-tools or cryptography: {probe:?}"
        );
        eprintln!(
            "the Python client is skipped: {python} lacks grpcio, grpcio-tools or cryptography (scripts/test.sh installs them)"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = net.dir();
    let genesis = kpledger::testnet::read_genesis(&net.genesis_file()).unwrap();
    let year = kp_node::now().date().year();
    let number = format!("BW-{year}-{:06}", 900);
    let out = std::process::Command::new(&python)
        .arg(root.join("tests/python/submit_event.py"))
        .args(["--proto", path(&root.join("proto")), "--node", &net.api("BW")])
        .args(["--ca", path(&dir.join("ca.pem"))])
        .args(["--cert", path(&dir.join("BW/client.pem")), "--cert-key", path(&dir.join("BW/client.key"))])
        .args(["--signing-key", path(&dir.join("BW/exporting.key")), "--chain-id", genesis.chain_id.as_str()])
        .args(["--number", &number])
        .current_dir(work)
        .output()
        .unwrap();
    assert!(out.status.success(), "the Python client failed: {}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["caller"], "authority:BW", "{answer}");
    assert_eq!(answer["outcome"], "accepted", "{answer}");
    assert_eq!(answer["event_id"], answer["expected_id"], "{answer}");
    wait_for("the Python client's event to commit", Duration::from_secs(60), || {
        let c = custody(net, "EU", &number);
        (c["state"] == "issued").then_some(())
    });
}

#[test]
fn foreign_expired_and_missing_certificates_and_plaintext_are_refused_and_floods_capped() {
    let net = Net::start(4, 1);
    let dir = net.dir().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let api = net.api("BW");
    let rt = runtime();

    // Another network's CA: the handshake (or the first call) fails; so does an expired
    // certificate of this network's own CA.
    let other = work.path().join("other");
    ok(&["testnet", "init", "--participants", "1", "--dir", path(&other), "--base-port", "20000"]);
    let expired = work.path().join("expired");
    ok(&[
        "testnet",
        "client-cert",
        "--dir",
        path(&dir),
        "--role",
        "reviewer",
        "--name",
        "late",
        "--out",
        path(&expired),
        "--expired",
    ]);
    let refused = |auth: ApiAuth| {
        rt.block_on(async {
            match connect_with(&api, &auth).await {
                Err(e) => Err(format!("{e:#}")),
                Ok(mut c) => match c.get_genesis(pb::GetGenesisRequest {}).await {
                    Ok(_) => Ok(()),
                    Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
                },
            }
        })
    };
    let foreign = tls(&dir, pair(&other.join("clients"), "reviewer"));
    assert!(refused(foreign).is_err(), "a certificate of another CA was accepted");
    assert!(refused(tls(&dir, pair(work.path(), "expired"))).is_err(), "an expired certificate was accepted");
    // The server's certificate checked against another CA: the client refuses the node.
    assert!(refused(tls(&other, pair(&dir.join("clients"), "reviewer"))).is_err());
    // No certificate: anonymous, UNAUTHENTICATED beyond status.
    let anonymous = refused(tls(&dir, None)).unwrap_err();
    assert!(anonymous.starts_with("Unauthenticated"), "{anonymous}");
    // Plaintext to a TLS port.
    assert!(refused(ApiAuth::Plaintext).is_err(), "a plaintext client was answered");
    wait_for("the node to log the refused handshakes", Duration::from_secs(10), || {
        net.log("BW").contains("API TLS handshake failed").then_some(())
    });

    python_client(&net, work.path());

    // A flood of connections that never handshake: beyond the per-address cap they are
    // closed at once; the node goes on committing (under unanimity, the chain would stop
    // if it did not) and answers a client from another loopback address meanwhile.
    let addr: std::net::SocketAddr = api.parse().unwrap();
    let start = net.status("AE").unwrap()["height"].as_u64().unwrap();
    let mut held = Vec::new();
    let mut closed = 0;
    for _ in 0..300 {
        let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            closed += 1;
            continue;
        };
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    for s in &held {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 1];
        if matches!((&*s).read(&mut buf), Ok(0)) {
            closed += 1;
        }
    }
    let cap = kp_node::tls::MAX_CONNECTIONS_PER_ADDRESS;
    assert!(closed >= 300 - cap, "only {closed} of 300 connections closed (cap {cap} per address)");
    assert!(closed < 300, "every connection was closed: the cap let none through");
    wait_for("the chain to go on during the flood", Duration::from_secs(30), || {
        (net.status("AE")?["height"].as_u64()? >= start + 2).then_some(())
    });
    let other_address = rt.block_on(async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("https://{api}"))
                .unwrap()
                .local_address(Some("127.0.0.2".parse().unwrap()))
                .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(
                    tonic::transport::Certificate::from_pem(std::fs::read(dir.join("ca.pem")).unwrap()),
                ))
                .unwrap()
                .connect()
                .await
                .unwrap();
        pb::node_client::NodeClient::new(channel)
            .get_status(pb::GetStatusRequest {})
            .await
            .map(|s| s.into_inner().height)
    });
    assert!(other_address.is_ok(), "{other_address:?}");
    drop(held);
    // Once the flood is gone, the flooded address is served again.
    wait_for("the API to answer again", Duration::from_secs(20), || net.status("BW").map(|_| ()));
}
