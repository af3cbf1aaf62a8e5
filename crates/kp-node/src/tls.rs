//! The API's connections: TLS with client certificates (rustls), the caller each connection is
//! identified as, and the limits on connections (overall, per identity, handshake and idle
//! time). The connections are handed to tonic already identified; `crate::access` decides
//! what each caller may do.

use crate::access::{Caller, ConnCaller, PerIdentity, Role};
use crate::config::ApiTlsFiles;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Most API connections open at once, over every client.
pub const MAX_CONNECTIONS: usize = 512;
/// Most API connections open at once from one address, handshaking or not.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 128;
/// Most API connections open at once for one identity (an anonymous client: per address).
pub const MAX_CONNECTIONS_PER_IDENTITY: usize = 16;
/// A TLS handshake not finished within this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which nothing is read or written for this long is closed (blocks are
/// committed at least every `idle_block_ms`, so a live subscription is never idle this long).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Most streams (calls) at once on one connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("API TLS file {file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("API TLS: {0}")]
    Config(String),
}

fn file_error(file: &Path, message: impl ToString) -> TlsError {
    TlsError::File { file: file.to_path_buf(), message: message.to_string() }
}

/// A CA whose client certificates the node accepts.
#[derive(Debug)]
struct TrustedCa {
    /// The CA certificate's subject, DER: a client certificate's issuer is compared with it.
    subject: Vec<u8>,
    /// `None` for the network CA (any role); a participant's own CA issues only its authorities.
    participant: Option<String>,
    file: PathBuf,
}

/// The API's TLS configuration, loaded and checked.
pub struct ApiTls {
    acceptor: tokio_rustls::TlsAcceptor,
    cas: Vec<TrustedCa>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls").field("cas", &self.cas).finish_non_exhaustive()
    }
}

fn read_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| file_error(file, format!("cannot be read as PEM: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, format!("is not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(file, "holds no certificate"));
    }
    for c in &certs {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| file_error(file, format!("holds a certificate that does not parse: {e}")))?;
    }
    Ok(certs)
}

fn subject_of(cert: &CertificateDer<'_>, file: &Path) -> Result<Vec<u8>, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| file_error(file, format!("holds a certificate that does not parse: {e}")))?;
    if !parsed.is_ca() {
        return Err(file_error(file, "is not a CA certificate (basic constraints)"));
    }
    Ok(parsed.subject().as_raw().to_vec())
}

impl ApiTls {
    /// Reads and checks the files: each must parse, the key must be the certificate's, the CAs
    /// must be CA certificates with distinct subjects. Errors name the file.
    pub fn load(files: &ApiTlsFiles) -> Result<ApiTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_certificates(&files.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| file_error(&files.key, format!("is not a PEM private key: {e}")))?;
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(|e| {
            file_error(&files.key, format!("is not the key of the certificate in {}: {e}", files.certificate.display()))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        let mut cas = Vec::new();
        let listed = std::iter::once((None, &files.client_ca))
            .chain(files.participant_cas.iter().map(|(p, f)| (Some(p.clone()), f)));
        for (participant, file) in listed {
            for cert in read_certificates(file)? {
                let subject = subject_of(&cert, file)?;
                if let Some(other) = cas.iter().find(|c: &&TrustedCa| c.subject == subject) {
                    return Err(file_error(
                        file,
                        format!(
                            "has the same subject as the CA in {}: issuers would be ambiguous",
                            other.file.display()
                        ),
                    ));
                }
                roots.add(cert).map_err(|e| file_error(file, format!("is not a usable CA certificate: {e}")))?;
                cas.push(TrustedCa { subject, participant: participant.clone(), file: file.clone() });
            }
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(format!("client CAs: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| file_error(&files.certificate, e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ApiTls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), cas })
    }

    /// Who a verified client certificate (rustls checked its chain and validity) says it is.
    pub fn identify(&self, cert: &CertificateDer<'_>) -> Result<Caller, String> {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(cert).map_err(|e| format!("the certificate does not parse: {e}"))?;
        let name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .ok_or("the certificate's subject has no common name")?;
        let ca = self
            .cas
            .iter()
            .find(|c| c.subject == parsed.issuer().as_raw())
            .ok_or("the certificate's issuer is none of the trusted CAs")?;
        let mut uris = Vec::new();
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(u) = n
                    && u.starts_with(crate::access::ROLE_URI_SCHEME)
                {
                    uris.push(*u);
                }
            }
        }
        let [uri] = uris.as_slice() else {
            return Err(format!(
                "the certificate must name exactly one {}: role (subject alternative name URI); it names {}",
                crate::access::ROLE_URI_SCHEME,
                uris.len()
            ));
        };
        let role = crate::access::parse_role(uri)?;
        if let Some(p) = &ca.participant {
            match &role {
                Role::Authority(a) if a.as_str() == p => {}
                _ => {
                    return Err(format!(
                        "{p}'s own CA ({}) issues only {p}'s authorities, not {}",
                        ca.file.display(),
                        role.label()
                    ));
                }
            }
        }
        Ok(Caller { role, name, refused: None })
    }
}

/// A connection to the API: TLS or (explicit plaintext on loopback) plain TCP, with its caller
/// and the places it holds under the connection limits. Closed when idle for [`IDLE_TIMEOUT`].
pub struct ApiIo {
    inner: Inner,
    caller: ConnCaller,
    idle: Pin<Box<tokio::time::Sleep>>,
    _overall: tokio::sync::OwnedSemaphorePermit,
    _address: crate::access::Held,
    _identity: crate::access::Held,
}

enum Inner {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl std::fmt::Debug for ApiIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiIo").field("caller", &self.caller.0.identity()).finish_non_exhaustive()
    }
}

impl ApiIo {
    fn touch(&mut self) {
        self.idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
    }
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.idle.as_mut().poll(cx).is_ready()
    }
}

impl tonic::transport::server::Connected for ApiIo {
    type ConnectInfo = ConnCaller;
    fn connect_info(&self) -> ConnCaller {
        self.caller.clone()
    }
}

impl AsyncRead for ApiIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = match &mut self.inner {
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
        };
        match r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.touch();
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle_expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "API connection idle")))
            }
            other => other,
        }
    }
}

impl AsyncWrite for ApiIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = match &mut self.inner {
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            Inner::Plain(s) => Pin::new(s).poll_write(cx, data),
        };
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Connections refused and timed out, for the metrics and the tests' logs.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub refused_full: std::sync::atomic::AtomicU64,
    pub refused_identity: std::sync::atomic::AtomicU64,
    pub failed_handshakes: std::sync::atomic::AtomicU64,
    /// The second (since the Unix epoch) a failed handshake was last logged at `info`: an
    /// outsider opening connections gets at most one log line a second.
    last_logged: std::sync::atomic::AtomicU64,
}

impl ConnStats {
    /// Counts a failed handshake; true if it should be logged at `info` (one a second at most).
    fn handshake_failed(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.failed_handshakes.fetch_add(1, Relaxed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.last_logged.swap(now, Relaxed) != now
    }
}

/// Accepts connections on `listener` until `stopping`, and yields each once its TLS handshake
/// (if any) is done and its caller identified. Handshakes run concurrently, each bounded by
/// [`HANDSHAKE_TIMEOUT`]; connections beyond [`MAX_CONNECTIONS`] overall,
/// [`MAX_CONNECTIONS_PER_ADDRESS`] from one address or [`MAX_CONNECTIONS_PER_IDENTITY`] for one
/// identity are closed at once.
pub fn incoming(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<ApiTls>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    stats: Arc<ConnStats>,
) -> tokio_stream::wrappers::ReceiverStream<Result<ApiIo, io::Error>> {
    use std::sync::atomic::Ordering::Relaxed;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let overall = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_identity = Arc::new(PerIdentity::default());
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stopping.wait_for(|s| *s) => return,
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&overall).try_acquire_owned() else {
                stats.refused_full.fetch_add(1, Relaxed);
                tracing::debug!(%remote, "API connection refused: {MAX_CONNECTIONS} open already");
                drop(tcp);
                continue;
            };
            let Some(address) = per_identity.try_take(&format!("address/{}", remote.ip()), MAX_CONNECTIONS_PER_ADDRESS)
            else {
                stats.refused_full.fetch_add(1, Relaxed);
                tracing::debug!(%remote, "API connection refused: {MAX_CONNECTIONS_PER_ADDRESS} open from this address");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (tls, tx, per_identity, stats) =
                (tls.clone(), tx.clone(), Arc::clone(&per_identity), Arc::clone(&stats));
            tokio::spawn(async move {
                let Some((inner, caller)) = handshake(tcp, remote, tls.as_deref(), &stats).await else { return };
                let Some(held) = per_identity.try_take(&caller.identity(), MAX_CONNECTIONS_PER_IDENTITY) else {
                    stats.refused_identity.fetch_add(1, Relaxed);
                    tracing::debug!(caller = %caller.identity(), "API connection refused: identity at its cap");
                    return;
                };
                let io = ApiIo {
                    inner,
                    caller: ConnCaller(Arc::new(caller)),
                    idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
                    _overall: permit,
                    _address: address,
                    _identity: held,
                };
                let _ = tx.send(Ok(io)).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    tls: Option<&ApiTls>,
    stats: &ConnStats,
) -> Option<(Inner, Caller)> {
    let Some(tls) = tls else {
        return Some((Inner::Plain(tcp), Caller { role: Role::Local, name: remote.ip().to_string(), refused: None }));
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            if stats.handshake_failed() {
                tracing::info!(%remote, error = %e, "API TLS handshake failed (one logged a second at most)");
            }
            return None;
        }
        Err(_) => {
            if stats.handshake_failed() {
                tracing::info!(%remote, "API TLS handshake timed out (one logged a second at most)");
            }
            return None;
        }
    };
    let caller = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        None => Caller::anonymous(remote.ip().to_string(), None),
        Some(cert) => match tls.identify(cert) {
            Ok(c) => c,
            Err(why) => {
                tracing::info!(%remote, reason = %why, "API client certificate not taken: the caller is anonymous");
                Caller::anonymous(remote.ip().to_string(), Some(why))
            }
        },
    };
    Some((Inner::Tls(Box::new(stream)), caller))
}
