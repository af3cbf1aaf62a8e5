//! The node's runtime: the core on the clock and on the peer-to-peer network, the gRPC API
//! (with health checking and server reflection), `/metrics`, and clean shutdown.
//!
//! One task owns the network and drives the core (behind a mutex it shares with the API
//! handlers): swarm events, the core's timers, and the effects of API submissions (passed on
//! through a bounded queue) are handled in turn.

use crate::api::{Api, Shared};
use crate::config::{NodeConfig, engine_config};
use crate::core::{Core, CoreError, Effect};
use crate::network::{Network, NetworkError};
use crate::pb;
use kp_crypto::SecretKey;
use kp_domain::{Genesis, Timestamp};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// The longest the runtime sleeps between two looks at the core's timers.
const TICK: Duration = Duration::from_millis(50);
/// How long a stopping node waits for open API requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Batches of effects from API calls waiting for the network task: events and approvals to pass
/// on (API calls never step the consensus engine). Beyond this they are not passed on; the
/// events stay in this node's pool and are proposed when it leads, so nothing is lost.
const OUTBOX: usize = 4_096;
/// Events waiting for the group-commit task; beyond this a client is told to retry.
const WAITING_EVENTS: usize = 4_096;
/// Most events checked and kept with one synced write (a client's batch is never split, so a
/// group may exceed this by less than one batch).
const GROUP: usize = 1_024;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("API server: {0}")]
    Api(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("the node's core failed: {0}")]
    Poisoned(String),
}

/// The wall clock as a ledger timestamp.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// Tells block subscribers about commits.
fn publish(shared: &Shared, effects: &[Effect]) {
    for e in effects {
        if let Effect::Committed(h) = e {
            let _ = shared.commits.send(*h);
        }
    }
}

/// Hands the effects of an API call to subscribers and to the network task.
pub(crate) fn forward(shared: &Shared, effects: Vec<Effect>) {
    publish(shared, &effects);
    if effects.iter().any(|e| !matches!(e, Effect::Committed(_)))
        && let Err(e) = shared.outbox.try_send(effects)
    {
        tracing::warn!(error = %e, "network queue full: effects of a submission not passed on");
    }
}

/// Checks and keeps clients' submissions in groups: whatever has arrived while the previous
/// group was being written goes into the next one (up to [`GROUP`] events), with one synced
/// write. A client's batch stays whole and in order within its group.
/// Ends when the node stops (dropping its hold on the core).
async fn group_commit(shared: Shared, mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::api::WaitingSubmission>) {
    let mut stopping = shared.stopping.clone();
    loop {
        let first = tokio::select! {
            w = rx.recv() => match w {
                Some(w) => w,
                None => break,
            },
            _ = stopping.wait_for(|s| *s) => break,
        };
        let mut events = first.envelopes.len();
        let mut group = vec![first];
        while events < GROUP {
            match rx.try_recv() {
                Ok(w) => {
                    events += w.envelopes.len();
                    group.push(w);
                }
                Err(_) => break,
            }
        }
        let mut envelopes = Vec::with_capacity(events);
        let mut replies = Vec::with_capacity(group.len());
        for w in group {
            replies.push((w.envelopes.len(), w.reply, w.room));
            envelopes.extend(w.envelopes);
        }
        // Decoding and the signature check need no lock, and run on a thread of their own:
        // consensus goes on meanwhile, even on a runtime of one thread.
        let (chain_id, rule) = (shared.chain_id.clone(), shared.rule);
        let opened = match tokio::task::spawn_blocking(move || {
            crate::core::open_submissions(&chain_id, rule, envelopes)
        })
        .await
        {
            Ok(opened) => opened,
            Err(e) => {
                tracing::error!(error = %e, "checking submissions failed");
                for (_, reply, _room) in replies {
                    let _ = reply.send(Err(format!("checking the submissions failed: {e}")));
                }
                continue;
            }
        };
        let outcome = match shared.core.lock() {
            Ok(mut core) => core.submit_opened(opened, now()).map_err(|e| format!("store: {e}")),
            Err(_) => Err("the node's core failed earlier; restart the node".to_owned()),
        };
        match outcome {
            Ok((answers, effects)) => {
                forward(&shared, effects);
                shared.wake.notify_one();
                // One answer per event, in order (the core's contract): each client gets its own.
                debug_assert_eq!(answers.len(), events);
                let mut answers = answers.into_iter();
                for (n, reply, _room) in replies {
                    let _ = reply.send(Ok(answers.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "submissions not kept");
                for (_, reply, _room) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The listeners a node serves on, already bound (so that their errors name the address).
#[derive(Debug)]
pub struct Listeners {
    pub api: tokio::net::TcpListener,
    pub metrics: tokio::net::TcpListener,
    /// The web explorer's, when the configuration has one.
    pub explorer: Option<tokio::net::TcpListener>,
}

/// Runs a node until `shutdown` completes, serving the API, the metrics and the explorer on
/// `listeners`.
pub async fn run(
    genesis: Genesis,
    key: SecretKey,
    config: NodeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let Listeners { api, metrics, explorer } = listeners;
    // The TLS files are checked before anything else starts: a node never serves its API with
    // a certificate it cannot use, nor runs without the API it was configured with.
    let tls = match &config.api_security {
        crate::config::ApiSecurity::Tls(files) => Some(Arc::new(crate::tls::ApiTls::load(files)?)),
        crate::config::ApiSecurity::Plaintext => {
            tracing::warn!(
                "the API is served without TLS on loopback (api_plaintext): every local caller has every right"
            );
            None
        }
    };
    let net_key = SecretKey::from_seed(&key.to_seed());
    let (mut core, effects) = Core::open(
        &genesis,
        key,
        &config.data_dir,
        engine_config(&config.consensus),
        config.consensus.max_block_events,
        now(),
        config.joining,
    )?;
    core.set_clock_warning_ms(config.consensus.clock_warning_ms);
    let head = core.store().head();
    tracing::info!(
        chain = %genesis.chain_id.as_str(),
        me = ?core.me(),
        height = head.height,
        api = %api.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        "node started"
    );
    let observers: Vec<kp_domain::PublicKey> = genesis.observers.iter().map(|o| o.node_key).collect();
    let mut net = Network::start(&net_key, &config.listen, &config.bootstrap, &mut core, &observers)?;
    tracing::info!(peer_id = %net.local_peer_id(), "network started");
    net.carry_out(&effects, &mut core);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (commits, _) = broadcast::channel(64);
    let (outbox, mut outbox_rx) = tokio::sync::mpsc::channel::<Vec<Effect>>(OUTBOX);
    let (submissions, submissions_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Shared {
        chain_id: core.chain_id().clone(),
        rule: core.signature_rule(),
        core: Arc::new(Mutex::new(core)),
        submissions,
        waiting_room: Arc::new(tokio::sync::Semaphore::new(WAITING_EVENTS)),
        wake: Arc::new(tokio::sync::Notify::new()),
        outbox,
        commits,
        subscriptions: Arc::new(tokio::sync::Semaphore::new(crate::api::MAX_SUBSCRIPTIONS)),
        subscribers: Arc::default(),
        stopping: stop_rx.clone(),
    };
    publish(&shared, &effects);
    let submitter = tokio::spawn(group_commit(shared.clone(), submissions_rx));
    let explorer_server = match explorer {
        Some(listener) => {
            let me = shared.core.lock().map_err(|e| NodeError::Poisoned(e.to_string()))?.me();
            let role = config.explorer.as_ref().and_then(|e| e.role.clone());
            let caller = crate::explorer::default_caller(role, me);
            tracing::info!(
                address = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
                viewer = %caller.role.label(),
                "explorer started"
            );
            let x = crate::explorer::Explorer::new(Arc::clone(&shared.core), genesis.clone(), caller);
            tokio::spawn(crate::explorer::index_task(Arc::clone(&x), shared.commits.subscribe(), stop_rx.clone()));
            Some(tokio::spawn(crate::explorer::serve(listener, x, stop_rx.clone())))
        }
        None => None,
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::node_server::NodeServer<Api>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Api(e.to_string()))?;
    let mut api_stop = stop_rx.clone();
    let connections = crate::tls::incoming(api, tls, stop_rx.clone(), Arc::new(crate::tls::ConnStats::default()));
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(crate::tls::MAX_STREAMS_PER_CONNECTION)
        .layer(crate::access::AccessLayer::default())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(crate::api::MAX_REQUESTS))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            pb::node_server::NodeServer::new(Api { shared: shared.clone() })
                .max_decoding_message_size(crate::api::MAX_REQUEST_BYTES),
        )
        .serve_with_incoming_shutdown(connections, async move {
            let _ = api_stop.wait_for(|s| *s).await;
        });
    let mut server = tokio::spawn(server);

    let registry = shared.core.lock().map_err(|e| NodeError::Poisoned(e.to_string()))?.metrics();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    registry.encode(),
                )
            }
        }),
    );
    let mut metrics_stop = stop_rx.clone();
    let metrics_server = tokio::spawn(async move {
        axum::serve(metrics, app)
            .with_graceful_shutdown(async move {
                let _ = metrics_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let mut stop = stop_rx;
    let wake = Arc::clone(&shared.wake);
    loop {
        let wait = {
            let core = shared.core.lock().map_err(|e| NodeError::Poisoned(e.to_string()))?;
            core.next_deadline().map_or(TICK, |d| Duration::from_millis(d.0.saturating_sub(now().0)).min(TICK))
        };
        let mut incoming = None;
        let mut submitted = None;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            event = net.next() => incoming = Some(event),
            Some(effects) = outbox_rx.recv() => submitted = Some(effects),
            _ = wake.notified() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let mut core = shared.core.lock().map_err(|e| NodeError::Poisoned(e.to_string()))?;
        if let Some(effects) = submitted {
            net.carry_out(&effects, &mut core);
        }
        if let Some(event) = incoming {
            let effects = net.on_event(event, &mut core, now())?;
            publish(&shared, &effects);
            net.carry_out(&effects, &mut core);
        }
        let effects = core.tick(now())?;
        publish(&shared, &effects);
        net.carry_out(&effects, &mut core);
        net.tick(&core);
    }
    // Open requests get a moment to finish (one grace period for all three, waited together);
    // then the servers are dropped with their connections. The store is closed when the last
    // holder of the core lets it go: the submitter.
    let explorer_done = async move {
        match explorer_server {
            Some(task) => Some(tokio::time::timeout(SHUTDOWN_GRACE, task).await),
            None => None,
        }
    };
    let (api_done, metrics_done, submitter_done, explorer_done) = tokio::join!(
        tokio::time::timeout(SHUTDOWN_GRACE, &mut server),
        tokio::time::timeout(SHUTDOWN_GRACE, metrics_server),
        tokio::time::timeout(SHUTDOWN_GRACE, submitter),
        explorer_done,
    );
    match explorer_done {
        None | Some(Ok(Ok(Ok(())))) => {}
        Some(Ok(Ok(Err(e)))) => tracing::warn!(error = %e, "explorer server"),
        Some(Ok(Err(e))) => tracing::warn!(error = %e, "explorer server task"),
        Some(Err(_)) => tracing::warn!("explorer connections still open after {SHUTDOWN_GRACE:?}: closed"),
    }
    match api_done {
        Ok(joined) => joined.map_err(|e| NodeError::Api(e.to_string()))?.map_err(|e| NodeError::Api(e.to_string()))?,
        Err(_) => {
            server.abort();
            tracing::warn!("API connections still open after {SHUTDOWN_GRACE:?}: closed");
        }
    }
    match metrics_done {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "metrics server"),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics server task"),
        Err(_) => tracing::warn!("metrics connections still open after {SHUTDOWN_GRACE:?}: closed"),
    }
    if submitter_done.is_err() {
        tracing::warn!("submissions still being kept after {SHUTDOWN_GRACE:?}");
    }
    tracing::info!("node stopped");
    Ok(())
}
