//! A real node (consensus engine, RocksDB store, rules engine, gRPC API on loopback) of a
//! one-participant network: submissions, one by one or in batches, are checked and refused with
//! their reason, accepted events are committed by the engine, served back, streamed to subscribers, shown by the
//! node's web explorer (which answers hundreds of malformed requests with 4xx pages, never a 500), and survive a
//! restart of the node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::{Carats, EventPayload, HalfYear, HsCode, HsLine, ProductionReported, Role, UsdCents};
use kp_node::config::{ConsensusSection, NodeConfig};
use kp_node::pb::{self, node_client::NodeClient, submit_response::Outcome};
use kp_testkit::{TestNet, pid};
use std::time::Duration;
use tokio::sync::oneshot;

fn production(revision: u32) -> EventPayload {
    EventPayload::ProductionReported(ProductionReported {
        participant: pid("BW"),
        period: HalfYear::new(2026, 1).unwrap(),
        revision,
        lines: vec![HsLine { hs_code: HsCode::Unsorted, carats: Carats(1_000_000), value: UsdCents(90_000_000) }],
        zones: vec![],
    })
}

struct Running {
    client: NodeClient<tonic::transport::Channel>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), kp_node::runtime::NodeError>>,
    metrics: std::net::SocketAddr,
    explorer: std::net::SocketAddr,
}

/// One HTTP/1.1 GET of the explorer: (status, body).
async fn http(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{target}: {out}"));
    (status, out)
}

/// The node's /metrics page (a plain HTTP/1.1 GET over loopback).
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

async fn start(net: &TestNet, data: &std::path::Path) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let explorer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let explorer_addr = explorer.local_addr().unwrap();
    let config = NodeConfig {
        genesis: data.join("unused-genesis.json"),
        data_dir: data.to_path_buf(),
        node_key: data.join("unused.key"),
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        bootstrap: vec![],
        api: addr,
        metrics: metrics_addr,
        consensus: ConsensusSection {
            round_timeout_base_ms: 300,
            round_timeout_cap_ms: 2_000,
            idle_block_ms: 300,
            ..ConsensusSection::default()
        },
        joining: false,
        worker_threads: 2,
        // In-process, on loopback: the API's access rules are tested on real processes over
        // TLS (tests/tests/access.rs).
        api_security: kp_node::config::ApiSecurity::Plaintext,
        explorer: Some(kp_node::config::ExplorerConfig { address: explorer_addr, role: None }),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let key = kp_crypto::SecretKey::from_seed(&net.keys[&pid("BW")].node.to_seed());
    let listeners = kp_node::Listeners { api: listener, metrics, explorer: Some(explorer) };
    let task = tokio::spawn(kp_node::run(net.genesis.clone(), key, config, listeners, async {
        let _ = stopped.await;
    }));
    let mut tries = 0;
    let client = loop {
        match NodeClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the node's API did not come up: {e}"),
        }
    };
    Running { client, stop, task, metrics: metrics_addr, explorer: explorer_addr }
}

async fn submit(client: &mut NodeClient<tonic::transport::Channel>, envelope: Vec<u8>) -> pb::SubmitResponse {
    client.submit(pb::SubmitRequest { envelope }).await.unwrap().into_inner()
}

fn rejected(r: &pb::SubmitResponse) -> (pb::rejection::Kind, String) {
    match &r.outcome {
        Some(Outcome::Rejected(x)) => (x.kind(), x.reason.clone()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_node_checks_commits_serves_and_keeps_events() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(Duration::from_secs(120), flow()).await.expect("the flow finishes within 120 s");
}

async fn flow() {
    let net = TestNet::new(&["BW"], 11);
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(&net, dir.path()).await;
    eprintln!("node up");
    let c = &mut node.client;
    let mut blocks = c.subscribe_blocks(pb::SubscribeBlocksRequest { from_height: 1 }).await.unwrap().into_inner();

    // Refusals, each with its reason; nothing is stored.
    let (kind, why) = rejected(&submit(c, b"not an event".to_vec()).await);
    assert_eq!(kind, pb::rejection::Kind::Malformed, "{why}");
    let mut forged = net.envelope_with(net.key("BW", Role::Exporting), &production(0));
    let n = forged.len();
    forged[n - 1] ^= 1;
    let (kind, why) = rejected(&submit(c, forged).await);
    assert_eq!(kind, pb::rejection::Kind::BadSignature, "{why}");
    let (kind, why) = rejected(&submit(c, net.envelope_with(net.key("BW", Role::Exporting), &production(3))).await);
    assert_eq!(kind, pb::rejection::Kind::Rules, "{why}");
    assert!(why.contains("revision"), "{why}");
    let (kind, why) = rejected(&submit(c, net.envelope_with(net.key("BW", Role::Importing), &production(0))).await);
    assert_eq!(kind, pb::rejection::Kind::Rules, "{why}");
    let status = c.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.pending_events, 0);

    // Accepted, then a duplicate; a correction that follows the pending report is admitted too.
    let report = net.envelope_with(net.key("BW", Role::Exporting), &production(0));
    let first = submit(c, report.clone()).await;
    assert!(matches!(first.outcome, Some(Outcome::Accepted(_))), "{first:?}");
    assert_eq!(first.event_id, kp_crypto::event_id(&report).to_string());
    let again = submit(c, report.clone()).await;
    assert!(matches!(again.outcome, Some(Outcome::Duplicate(_))), "{again:?}");
    let correction = net.envelope_with(net.key("BW", Role::Exporting), &production(1));
    let second = submit(c, correction.clone()).await;
    assert!(matches!(second.outcome, Some(Outcome::Accepted(_))), "{second:?}");

    eprintln!("submitted");
    // Committed by the engine and streamed to the subscriber.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen.contains(&report) && seen.contains(&correction)) {
        let block = tokio::time::timeout_at(deadline, blocks.message()).await.expect("blocks within 30 s");
        let block = block.unwrap().expect("stream open");
        assert_eq!(block.signers, vec!["BW".to_owned()]);
        seen.extend(block.events);
    }
    let got = c.get_event(pb::GetEventRequest { event_id: first.event_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.envelope, report);
    let at = got.position.expect("committed");
    let status = c.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert!(status.height >= at.height);
    assert_eq!((status.me.as_str(), status.active_participants.clone()), ("BW", vec!["BW".to_owned()]));
    assert_eq!(status.committed_events, 2);
    let block = c.get_block(pb::GetBlockRequest { height: at.height }).await.unwrap().into_inner();
    assert_eq!(block.events[at.index as usize], report);

    // The metrics show the height, the refusals by reason and the commit latency.
    let page = scrape(node.metrics).await;
    assert!(page.contains(&format!("kp_height {}", status.height)) || page.contains("kp_height "), "{page}");
    assert!(page.contains("kp_rejected_total{reason=\"submit_rules\"} 2"), "{page}");
    assert!(page.contains("kp_rejected_total{reason=\"submit_bad_signature\"} 1"), "{page}");
    assert!(page.contains("kp_commit_latency_seconds_count 2"), "{page}");
    assert!(page.contains("kp_pending_events 0"), "{page}");

    explore(node.explorer, &first.event_id, at.height).await;

    // Bad requests are refused with a clear status.
    let e = c.get_event(pb::GetEventRequest { event_id: "zz".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = c.get_block(pb::GetBlockRequest { height: 1_000_000 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = c.get_custody(pb::GetCustodyRequest { certificate: "not a number!".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = c
        .list_certificates(pb::ListCertificatesRequest {
            participant: "BW".into(),
            role: pb::list_certificates_request::Role::Exporter.into(),
            state: "shipped".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let page = c
        .list_certificates(pb::ListCertificatesRequest {
            participant: "BW".into(),
            role: pb::list_certificates_request::Role::Exporter.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.certificates.is_empty() && page.next_page_token.is_empty());
    let custody = c.get_custody(pb::GetCustodyRequest { certificate: "BW-404".into() }).await.unwrap().into_inner();
    assert!(custody.steps.is_empty() && custody.state.is_empty());

    // A clean stop and a restart on the same data directory: nothing committed is lost.
    node.stop.send(()).unwrap();
    node.task.await.unwrap().unwrap();
    let mut node = start(&net, dir.path()).await;
    let got = node.client.get_event(pb::GetEventRequest { event_id: first.event_id }).await.unwrap().into_inner();
    assert_eq!(got.position, Some(at));
    let status = node.client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert!(status.height >= at.height && status.committed_events == 2);

    // A batch: one answer per event, in order; an event may follow one before it in the same
    // batch, and a bad event is refused alone.
    let c = &mut node.client;
    let key = net.key("BW", Role::Exporting);
    let (r2, r3) = (net.envelope_with(key, &production(2)), net.envelope_with(key, &production(3)));
    let batch = vec![r2.clone(), b"junk".to_vec(), r3.clone(), net.envelope_with(key, &production(9)), report.clone()];
    let answers = c.submit_batch(pb::SubmitBatchRequest { envelopes: batch }).await.unwrap().into_inner().results;
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert!(matches!(answers[0].outcome, Some(Outcome::Accepted(_))), "{answers:?}");
    assert_eq!(answers[0].event_id, kp_crypto::event_id(&r2).to_string());
    assert_eq!(rejected(&answers[1]).0, pb::rejection::Kind::Malformed);
    assert!(matches!(answers[2].outcome, Some(Outcome::Accepted(_))), "{answers:?}");
    assert_eq!(answers[2].event_id, kp_crypto::event_id(&r3).to_string());
    let (kind, why) = rejected(&answers[3]);
    assert_eq!(kind, pb::rejection::Kind::Rules, "{why}");
    assert!(matches!(&answers[4].outcome, Some(Outcome::Duplicate(d)) if d.height == Some(at.height)), "{answers:?}");
    // An empty batch, or one over the limit, is refused whole: nothing is kept.
    let e = c.submit_batch(pb::SubmitBatchRequest { envelopes: vec![] }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let over = vec![net.envelope_with(key, &production(4)); kp_node::api::MAX_SUBMIT_BATCH + 1];
    let e = c.submit_batch(pb::SubmitBatchRequest { envelopes: over }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    // A request over the API's size limit is refused before it is decoded.
    let huge = vec![vec![0u8; kp_node::api::MAX_REQUEST_BYTES]];
    let e = c.submit_batch(pb::SubmitBatchRequest { envelopes: huge }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e}");
    // The two accepted events are committed, in the batch's order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (p2, p3) = loop {
        let got = |e: &[u8]| pb::GetEventRequest { event_id: kp_crypto::event_id(e).to_string() };
        let p2 = c.get_event(got(&r2)).await.unwrap().into_inner().position;
        let p3 = c.get_event(got(&r3)).await.unwrap().into_inner().position;
        if let (Some(p2), Some(p3)) = (p2, p3) {
            break (p2, p3);
        }
        assert!(tokio::time::Instant::now() < deadline, "the batch's events not committed within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!((p2.height, p2.index) < (p3.height, p3.index), "{p2:?} {p3:?}");
    let status = c.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.committed_events, status.pending_events), (4, 0));
    node.stop.send(()).unwrap();
    node.task.await.unwrap().unwrap();
}

/// The node's explorer shows what was committed, to BW's authority (the node's own participant),
/// and answers malformed requests, generated from a seed, with 4xx pages.
async fn explore(explorer: std::net::SocketAddr, event_id: &str, height: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(explorer, "/participant/BW").await;
        if status == 200 {
            assert!(body.contains("authority:BW"), "{body}");
            assert!(body.contains("2026-H1"), "the production report's half-year: {body}");
            break;
        }
        assert_eq!(status, 503, "only 'still reading' before the index is ready: {body}");
        assert!(tokio::time::Instant::now() < deadline, "the explorer's index not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = http(explorer, &format!("/event/{event_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("production_reported") && body.contains("ProductionReported"), "BW sees its report: {body}");
    let (status, body) = http(explorer, &format!("/block/{height}?format=json")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"signers\":[\"BW\"]"), "{body}");
    let (status, body) = http(explorer, "/").await;
    assert!(status == 200 && body.contains("id=\"height\""), "{body}");

    let seed: u64 = std::env::var("KP_EXPLORER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6b70_6578);
    println!("explorer garbage requests: seed {seed} (KP_EXPLORER_SEED)");
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let roots = [
        "/",
        "/block/",
        "/blocks?before=",
        "/event/",
        "/certificate/",
        "/certificate/BW-1/verify",
        "/participant/",
        "/statistics?year=",
        "/anomalies?kind=",
        "/anomalies?from=",
        "/search?q=",
        "/participant/BW?page=",
        "/static/",
    ];
    let pieces = [
        "%",
        "%2F",
        "%00",
        "%ff",
        "..",
        "/",
        "?",
        "&",
        "=",
        "format=csv",
        "page=0",
        "99999999999999999999",
        "-1",
        "BW",
        "ZZ",
        "2026-Q9",
        "é",
        "%C3%A9",
        "a",
        "0",
        "<script>",
        "\u{1F48E}",
        "year=1",
        "&&&",
        "#",
    ];
    for i in 0..300 {
        let mut target = roots[usize::try_from(next()).unwrap() % roots.len()].to_owned();
        for _ in 0..(next() % 6) {
            target.push_str(pieces[usize::try_from(next()).unwrap() % pieces.len()]);
        }
        if i % 50 == 0 {
            target.push_str(&"x".repeat(4_000));
        }
        // What a client can put on a request line: everything else percent-encoded.
        let target: String = target
            .chars()
            .map(|c| if c.is_ascii_graphic() { c.to_string() } else { format!("%{:02X}", u32::from(c) & 0xff) })
            .collect();
        let (status, body) = http(explorer, &target).await;
        assert!((200..500).contains(&status), "{target}: {status} {body}");
    }
    let (status, _) = http(explorer, "/").await;
    assert_eq!(status, 200, "the explorer still answers");
}
