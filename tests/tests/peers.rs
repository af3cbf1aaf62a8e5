//! Hostile peers against a live node (`kpledger node` processes on loopback): a libp2p identity
//! that is not in the genesis is refused at the handshake; a peer with a genesis identity that
//! sends undecodable, oversized or badly signed messages on its message stream is counted, then
//! disconnected, and nothing it sent changes the node's state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use kp_node::network::{Codec, Frame, MESSAGE_PROTOCOL, Message, PROTOCOL, Request, Response, encode, framed};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, Swarm, identity, noise, tcp, yamux};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn kpledger_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("kpledger");
    assert!(bin.is_file(), "{} is missing: build it first (cargo build -p kpledger)", bin.display());
    bin
}

fn kpledger(args: &[&str]) -> String {
    let out = Command::new(kpledger_bin()).args(args).output().unwrap();
    assert!(out.status.success(), "kpledger {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn field(config: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} = "))).unwrap();
    line.split_once(" = ").unwrap().1.trim_matches('"').to_owned()
}

/// The node's Prometheus text.
fn metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn counter(metrics: &str, reason: &str) -> u64 {
    let key = format!("kp_rejected_total{{reason=\"{reason}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&key)).map_or(0, |v| v.trim().parse().unwrap())
}

/// A peer as a node's network sees it: height requests, and message streams.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Client {
    rr: request_response::Behaviour<Codec>,
    streams: libp2p_stream::Behaviour,
}

fn client(key: identity::Keypair) -> Swarm<Client> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| Client {
            rr: request_response::Behaviour::with_codec(
                Codec,
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            ),
            streams: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// What happened to requests sent to `target`: (responses, failures), after every request was
/// answered or failed, or `limit` passed.
async fn exchange(
    swarm: &mut Swarm<Client>,
    target: &Multiaddr,
    peer: libp2p::PeerId,
    requests: Vec<Request>,
    limit: Duration,
) -> (usize, usize, bool) {
    swarm.add_peer_address(peer, target.clone());
    let n = requests.len();
    for r in requests {
        swarm.behaviour_mut().rr.send_request(&peer, r);
    }
    let (mut answered, mut failed, mut closed) = (0, 0, false);
    let deadline = tokio::time::Instant::now() + limit;
    while answered + failed < n {
        let event = tokio::select! {
            e = swarm.select_next_some() => e,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match event {
            SwarmEvent::Behaviour(ClientEvent::Rr(request_response::Event::Message {
                message: request_response::Message::Response { response: Response::Ack { .. }, .. },
                ..
            })) => answered += 1,
            SwarmEvent::Behaviour(ClientEvent::Rr(request_response::Event::OutboundFailure { .. })) => failed += 1,
            SwarmEvent::ConnectionClosed { .. } | SwarmEvent::OutgoingConnectionError { .. } => closed = true,
            _ => {}
        }
    }
    (answered, failed, closed)
}

#[tokio::test(flavor = "current_thread")]
async fn outsiders_are_refused_and_hostile_peers_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let base = 10_000 + (std::process::id() % 90) * 250;
    kpledger(&["testnet", "init", "--participants", "2", "--dir", d, "--base-port", &base.to_string()]);
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(kpledger_bin()).args(["testnet", "down", "--dir", &self.0]).output();
        }
    }
    let _down = Down(d.to_owned());
    kpledger(&["testnet", "up", "--dir", d, "--timeout", "60"]);
    let genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("genesis.json")).unwrap()).unwrap();
    let ids: Vec<String> =
        genesis["participants"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    let (target, other) = (&ids[0], &ids[1]);
    let config = dir.path().join(target).join("node.toml");
    let listen: Multiaddr = field(&config, "listen").parse().unwrap();
    let metrics_addr = field(&config, "metrics");
    let target_key = kpledger::keyfile::read(&dir.path().join(target).join("node.key")).unwrap();
    let target_peer = kp_node::network::peer_id_of(&target_key.public()).unwrap();

    // An identity the genesis does not know: refused at the handshake, nothing answered.
    let mut outsider = client(identity::Keypair::generate_ed25519());
    let (answered, failed, _) =
        exchange(&mut outsider, &listen, target_peer, vec![Request::Head], Duration::from_secs(10)).await;
    assert_eq!(answered, 0, "an outsider was answered");
    assert_eq!(failed, 1, "the outsider's request neither failed nor was answered");
    let m = metrics(&metrics_addr);
    assert!(counter(&m, "peer_refused") >= 1, "the refusal is not counted:\n{m}");

    // A genesis identity (the other participant's node key, its node stopped) that misbehaves.
    let pid = std::fs::read_to_string(dir.path().join(other).join("node.pid")).unwrap();
    assert!(Command::new("kill").args(["-TERM", pid.trim()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The node's status as its network's reviewer.
    let status = || -> serde_json::Value {
        let node = field(&config, "api");
        let out = kpledger(&["--json", "--testnet", dir.path().to_str().unwrap(), "status", "--node", &node]);
        serde_json::from_str(&out).unwrap()
    };
    let before = status();
    let other_key = kpledger::keyfile::read(&dir.path().join(other).join("node.key")).unwrap();
    let mut hostile = client(kp_node::network::keypair_of(&other_key).unwrap());
    // A well-formed request is answered: the identity is let in.
    let (answered, _, _) =
        exchange(&mut hostile, &listen, target_peer, vec![Request::Head], Duration::from_secs(10)).await;
    assert_eq!(answered, 1, "a genesis identity was not answered");
    // An event signed by an authority, its signature then broken.
    let exporting = kpledger::keyfile::read(&dir.path().join(other).join("exporting.key")).unwrap();
    let chain_id = kp_domain::ChainId::new(genesis["chain_id"].as_str().unwrap()).unwrap();
    let payload = kp_domain::EventPayload::CertificateVoided(kp_domain::CertificateVoided {
        certificate: kp_domain::CertificateNumber::new(&format!("{other}-2026-000001")).unwrap(),
        reason: kp_domain::Text::new("test").unwrap(),
    });
    let mut forged = kp_proto::sign_event(&exporting, &chain_id, kp_proto::encode_payload(&payload).unwrap());
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    // On a message stream: a frame that is not a message at all, then one announcing more than
    // the limit; the node closes that stream (its framing is lost).
    let oversized = u32::try_from(kp_node::network::MAX_FRAME_BYTES + 1).unwrap();
    let mut control = hostile.behaviour().streams.new_control();
    // The swarm runs on its own task while the stream is written, until the node hangs up.
    let driver = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            tokio::select! {
                e = hostile.select_next_some() => if let SwarmEvent::ConnectionClosed { .. } = e { return (hostile, true) },
                _ = tokio::time::sleep_until(deadline) => return (hostile, false),
            }
        }
    });
    let protocol = StreamProtocol::new(MESSAGE_PROTOCOL);
    let open = Duration::from_secs(10);
    let malformed_before = counter(&metrics(&metrics_addr), "peer_malformed");
    let mut first =
        tokio::time::timeout(open, control.open_stream(target_peer, protocol.clone())).await.unwrap().unwrap();
    first.write_all(&framed(&[0xff; 10])).await.unwrap();
    first.write_all(&oversized.to_be_bytes()).await.unwrap();
    first.flush().await.unwrap();
    // The node accepts the stream (one byte), then closes it: reading it ends.
    let mut back = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), first.read_to_end(&mut back)).await;
    assert!(ended.is_ok(), "a stream that announced an oversized frame stayed open");
    assert_eq!(back, [kp_node::network::STREAM_ACCEPTED], "the node did not accept the stream, or wrote more");
    // Both frames were struck: the one that is not a message, and the oversized announcement.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counter(&metrics(&metrics_addr), "peer_malformed") < malformed_before + 2 {
        assert!(std::time::Instant::now() < deadline, "the first stream's two bad frames were not both counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counter(&metrics(&metrics_addr), "peer_malformed"), malformed_before + 2);
    // On a second stream: a consensus message that does not decode, the forged event, and more
    // bad consensus messages than the strikes allowed.
    let frame = |message| framed(&encode(&Frame { height: 0, message }));
    let mut bad = vec![frame(Message::Consensus(vec![0xde, 0xad, 0xbe, 0xef])), frame(Message::Events(vec![forged]))];
    for i in 0..kp_node::network::MAX_STRIKES {
        bad.push(frame(Message::Consensus(vec![u8::try_from(i).unwrap(); 40])));
    }
    let mut stream = tokio::time::timeout(open, control.open_stream(target_peer, protocol)).await.unwrap().unwrap();
    for f in bad {
        // Once banned, the connection is gone and writes fail.
        if stream.write_all(&f).await.is_err() || stream.flush().await.is_err() {
            break;
        }
    }
    let (mut hostile, closed) = driver.await.unwrap();
    assert!(closed, "the hostile peer was not disconnected");
    let m = metrics(&metrics_addr);
    assert!(counter(&m, "peer_malformed") >= malformed_before + 3, "undecodable messages not counted:\n{m}");
    assert!(counter(&m, "peer_bad_event") >= 1, "the badly signed event not counted:\n{m}");
    assert!(counter(&m, "peer_banned") >= 1, "the peer was not banned:\n{m}");
    // Banned: a new connection is refused for a while.
    let (answered, _, _) =
        exchange(&mut hostile, &listen, target_peer, vec![Request::Head], Duration::from_secs(10)).await;
    assert_eq!(answered, 0, "a banned peer was answered");
    // Nothing it sent changed the node.
    let after = status();
    assert_eq!(after["pending_events"], 0);
    assert_eq!(after["height"], before["height"]);
    assert_eq!(after["head_hash"], before["head_hash"]);
}
