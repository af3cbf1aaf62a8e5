//! The node's runtime: the core on the clock, the gRPC API (with health checking and server
//! reflection), and clean shutdown. The peer-to-peer network is not wired yet: messages the
//! engine sends to other voters are dropped, so only a network with a single voter commits.

use crate::api::{Api, Shared};
use crate::config::{NodeConfig, engine_config};
use crate::core::{Core, CoreError, Effect};
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

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("API server: {0}")]
    Api(String),
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

/// Hands the core's effects to the network and to subscribers.
pub(crate) fn publish(shared: &Shared, effects: &[Effect]) {
    for e in effects {
        match e {
            Effect::Committed(h) => {
                let _ = shared.commits.send(*h);
            }
            Effect::Send(to, _) => tracing::debug!(%to, "no peer-to-peer network yet: message not sent"),
            Effect::Broadcast(_) => tracing::trace!("no peer-to-peer network yet: broadcast not sent"),
        }
    }
}

/// Runs a node until `shutdown` completes, serving the API on `api` (already bound).
pub async fn run(
    genesis: Genesis,
    key: SecretKey,
    config: NodeConfig,
    api: tokio::net::TcpListener,
    metrics: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let (core, effects) = Core::open(
        &genesis,
        key,
        &config.data_dir,
        engine_config(&config.consensus),
        config.consensus.max_block_events,
        now(),
    )?;
    let head = core.store().head();
    tracing::info!(
        chain = %genesis.chain_id.as_str(),
        me = ?core.me(),
        height = head.height,
        api = %api.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        "node started"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (commits, _) = broadcast::channel(64);
    let shared = Shared {
        core: Arc::new(Mutex::new(core)),
        commits,
        subscriptions: Arc::new(tokio::sync::Semaphore::new(crate::api::MAX_SUBSCRIPTIONS)),
        stopping: stop_rx.clone(),
    };
    publish(&shared, &effects);
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
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            pb::node_server::NodeServer::new(Api { shared: shared.clone() })
                .max_decoding_message_size(kp_domain::MAX_EVENT_BYTES + 1024),
        )
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(api), async move {
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
    loop {
        let wait = {
            let core = shared.core.lock().map_err(|e| NodeError::Poisoned(e.to_string()))?;
            core.next_deadline().map_or(TICK, |d| Duration::from_millis(d.0.saturating_sub(now().0)).min(TICK))
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let effects = {
            let mut core = shared.core.lock().map_err(|e| NodeError::Poisoned(e.to_string()))?;
            core.tick(now())?
        };
        publish(&shared, &effects);
    }
    // Open requests get a moment to finish; then the server is dropped with its connections.
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(joined) => joined.map_err(|e| NodeError::Api(e.to_string()))?.map_err(|e| NodeError::Api(e.to_string()))?,
        Err(_) => {
            server.abort();
            tracing::warn!("API connections still open after {SHUTDOWN_GRACE:?}: closed");
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, metrics_server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "metrics server"),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics server task"),
        Err(_) => tracing::warn!("metrics connections still open after {SHUTDOWN_GRACE:?}: closed"),
    }
    tracing::info!("node stopped");
    Ok(())
}
