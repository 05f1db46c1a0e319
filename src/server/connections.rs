//! The life of a client connection: admission under the connection cap, the TLS handshake, the
//! HTTP/1.1 and HTTP/2 settings (timers, buffer limits), the idle timeout, eviction and the drain
//! at shutdown.
//!
//! Why eviction instead of a plain semaphore: a cap that only stops accepting lets anyone holding
//! idle TCP connections (no credentials needed) lock out every real client. Here each connection
//! records whether a request is in flight on it; when the cap is reached, the connection idle for
//! the longest time is closed to make room, so clients that actually send requests get served.

use anyhow::{bail, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timeouts of a connection (`serve --header-read-timeout`, `--tls-handshake-timeout`,
/// `--idle-timeout`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time a client has to send a complete request head, counted from when the server starts
    /// waiting for it. On a kept-alive HTTP/1.1 connection that wait starts when the previous
    /// response is sent, so this also bounds idle HTTP/1.1 connections.
    pub header_read_timeout: Duration,
    /// Time a client has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// hyper's read buffer for a request head. The outer layer answers URIs over 8 KiB (414) and
/// header blocks over 32 KiB (431) with CloudErrors; hyper must let such heads through to it,
/// so its own limit (a bare 431) sits well above both.
const H1_MAX_BUF: usize = 96 * 1024;
/// The same for HTTP/2 header lists.
const H2_MAX_HEADER_LIST: u32 = 96 * 1024;
/// How long an evicted connection that served requests gets to finish the exchange in progress
/// before it is dropped.
const EVICTION_GRACE: Duration = Duration::from_secs(5);

/// The protocol settings, built once per server.
pub(super) struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    limits: ConnectionLimits,
}

impl Protocols {
    pub(super) fn new(limits: ConnectionLimits) -> Protocols {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // Without a timer hyper silently ignores the header-read timeout.
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(H1_MAX_BUF);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new()).max_header_list_size(H2_MAX_HEADER_LIST);
        Protocols { http1, http2, limits }
    }
}

/// What the server knows of one open connection.
pub(super) struct Conn {
    /// Requests in flight (several at once on HTTP/2).
    active: AtomicUsize,
    /// Has any request been received? A connection that never sent one has nothing to lose.
    served: AtomicBool,
    /// When the connection last became idle, in milliseconds since the tracker started.
    idle_since: AtomicU64,
    /// Cancelled to close this connection (eviction, idle timeout) or all of them (shutdown).
    close: CancellationToken,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }
}

/// Marks a request in flight; dropping it (response produced, or the request abandoned) makes the
/// connection idle again when it was the last one.
struct Busy {
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
}

impl Busy {
    fn new(conn: Arc<Conn>, tracker: Arc<Tracker>) -> Busy {
        conn.served.store(true, Ordering::Release);
        conn.active.fetch_add(1, Ordering::AcqRel);
        Busy { conn, tracker }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Stamp the time before the count reaches zero, so that an idle connection never carries
        // the stamp of a previous idle period.
        self.conn.idle_since.store(self.tracker.now_ms(), Ordering::Release);
        self.conn.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every open connection, and the cap on them.
pub(super) struct Tracker {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    started: Instant,
    slots: Arc<Semaphore>,
    max: usize,
    /// The parent of every connection's token: cancelling it closes them all.
    pub(super) shutdown: CancellationToken,
}

/// A connection's place under the cap; leaving it frees the slot.
pub(super) struct Slot {
    id: u64,
    pub(super) conn: Arc<Conn>,
    tracker: Arc<Tracker>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.conns.lock().expect("connection table lock").remove(&self.id);
        metrics::gauge!("securescore_connections_open").decrement(1.0);
    }
}

impl Tracker {
    pub(super) fn new(max: usize) -> Arc<Tracker> {
        // Zero would serve nobody; the drain counts all slots in one u32.
        let max = max.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Arc::new(Tracker {
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            started: Instant::now(),
            slots: Arc::new(Semaphore::new(max)),
            max,
            shutdown: CancellationToken::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection: at once when the cap is not reached; otherwise the longest
    /// idle connection is closed to make room, or, when every connection has a request in flight,
    /// the first slot that frees up.
    pub(super) async fn admit(self: &Arc<Self>) -> Result<Slot> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !self.evict_oldest_idle() {
                    tracing::warn!(
                        max = self.max,
                        "connection cap reached with a request in flight on every connection"
                    );
                }
                self.slots.clone().acquire_owned().await?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            active: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(self.now_ms()),
            close: self.shutdown.child_token(),
        });
        self.conns.lock().expect("connection table lock").insert(id, conn.clone());
        metrics::gauge!("securescore_connections_open").increment(1.0);
        Ok(Slot { id, conn, tracker: self.clone(), _permit: permit })
    }

    /// Close the connection idle for the longest time; false when none is idle. Also used when
    /// the process runs out of file descriptors before the cap is reached.
    pub(super) fn evict_oldest_idle(&self) -> bool {
        let conns = self.conns.lock().expect("connection table lock");
        // Ties (same millisecond) go to the connection opened first.
        let oldest = conns
            .iter()
            .filter(|(_, c)| c.is_idle() && !c.close.is_cancelled())
            .min_by_key(|(id, c)| (c.idle_since.load(Ordering::Acquire), **id));
        match oldest {
            Some((_, c)) => {
                c.close.cancel();
                metrics::counter!("securescore_connections_closed_total", "reason" => "evicted")
                    .increment(1);
                true
            }
            None => false,
        }
    }

    /// Wait until every connection has closed (after [`Tracker::shutdown`] was cancelled).
    pub(super) async fn drained(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
    }
}

/// The router as hyper sees it, counting requests in flight on its connection.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<
        hyper::Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
    >,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let busy = Busy::new(self.conn.clone(), self.tracker.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let r = response.await;
            drop(busy);
            r
        })
    }
}

/// Serve one connection. HTTP/2 only when TLS negotiated it (ALPN `h2`); otherwise HTTP/1.1
/// directly — no protocol sniffing on every connection (measurable on the hot path).
pub(super) async fn serve<S>(
    stream: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    slot: &Slot,
    protocols: &Protocols,
) -> Result<()>
where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = &slot.conn;
    let service = Tracked { inner: service, conn: conn.clone(), tracker: slot.tracker.clone() };
    let limits = &protocols.limits;
    let tracker = &slot.tracker;
    match acceptor {
        None => {
            let http = protocols.http1.serve_connection(TokioIo::new(stream), service);
            drive(http, conn, tracker, limits.idle_timeout).await?;
        }
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream));
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(tls) => tls?,
                    Err(_) => {
                        metrics::counter!("securescore_connections_closed_total", "reason" => "tls_handshake_timeout")
                            .increment(1);
                        bail!(
                            "TLS handshake not completed within {:?}; connection closed",
                            limits.tls_handshake_timeout
                        )
                    }
                },
                () = conn.close.cancelled() => return Ok(()),
            };
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                let http = protocols.http2.serve_connection(TokioIo::new(tls), service);
                drive(http, conn, tracker, limits.idle_timeout).await?;
            } else {
                let http = protocols.http1.serve_connection(TokioIo::new(tls), service);
                drive(http, conn, tracker, limits.idle_timeout).await?;
            }
        }
    }
    Ok(())
}

/// Run a connection until it ends, is evicted, idles out or the server shuts down.
async fn drive<C>(
    http: C,
    conn: &Conn,
    tracker: &Tracker,
    idle_timeout: Duration,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    tokio::pin!(http);
    loop {
        let deadline = if conn.is_idle() {
            tracker.started
                + Duration::from_millis(conn.idle_since.load(Ordering::Acquire))
                + idle_timeout
        } else {
            Instant::now() + idle_timeout
        };
        tokio::select! {
            r = http.as_mut() => return r,
            () = conn.close.cancelled() => break,
            () = tokio::time::sleep_until(deadline) => {
                let idle_for = tracker.now_ms().saturating_sub(conn.idle_since.load(Ordering::Acquire));
                if conn.is_idle() && Duration::from_millis(idle_for) >= idle_timeout {
                    tracing::debug!("closing a connection idle for {idle_for} ms");
                    metrics::counter!("securescore_connections_closed_total", "reason" => "idle_timeout")
                        .increment(1);
                    break;
                }
            }
        }
    }
    // A connection that never carried a request has nothing to finish: close it now (hyper's
    // graceful close would wait for a first request that may never come).
    if !conn.served.load(Ordering::Acquire) && conn.is_idle() {
        return Ok(());
    }
    http.as_mut().graceful_shutdown();
    if tracker.shutdown.is_cancelled() {
        // The server's drain bounds this wait.
        http.await
    } else {
        match tokio::time::timeout(EVICTION_GRACE, http).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_gives_way_and_busy_ones_stay() {
        let tracker = Tracker::new(3);
        let busy = tracker.admit().await.unwrap();
        let oldest_idle = tracker.admit().await.unwrap();
        let newer_idle = tracker.admit().await.unwrap();
        // A request in flight on the first one: it is the oldest, but not idle.
        let _request = Busy::new(busy.conn.clone(), tracker.clone());
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.admit().await.map(|_| ()) }
        });
        // The eviction happens before the new connection waits for the slot.
        while !oldest_idle.conn.close.is_cancelled() {
            tokio::task::yield_now().await;
        }
        assert!(!busy.conn.close.is_cancelled(), "a connection with a request in flight stays");
        assert!(!newer_idle.conn.close.is_cancelled(), "only one connection gives way");
        assert!(!waiting.is_finished(), "the slot frees up when the evicted connection ends");
        drop(oldest_idle);
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_connection_idles_from_the_end_of_its_last_request() {
        let tracker = Tracker::new(2);
        let first = tracker.admit().await.unwrap();
        let second = tracker.admit().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The first one served a request just now: the second has been idle the longest.
        drop(Busy::new(first.conn.clone(), tracker.clone()));
        assert!(tracker.evict_oldest_idle());
        assert!(second.conn.close.is_cancelled());
        assert!(!first.conn.close.is_cancelled());
    }

    #[tokio::test]
    async fn shutdown_closes_every_connection_and_drains() {
        let tracker = Tracker::new(4);
        let a = tracker.admit().await.unwrap();
        let b = tracker.admit().await.unwrap();
        tracker.shutdown.cancel();
        assert!(a.conn.close.is_cancelled() && b.conn.close.is_cancelled());
        let drained = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.drained().await }
        });
        drop(a);
        drop(b);
        drained.await.unwrap();
    }
}
