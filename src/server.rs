//! The `serve` command's runtime: open the store, build the router, bind the listener and serve
//! HTTP/1.1 and HTTP/2, over TLS unless `--insecure-http`.
//!
//! [`Application::build`] binds first (port 0 works) so tests and the CLI learn the real address
//! before serving; [`Application::run_until`] serves until the shutdown future resolves.

use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::{self, ApiConfig, AppState};
use crate::arm::PublicUrl;
use crate::identity::demo::DemoCredentials;
pub use crate::identity::AuthMode;
use crate::identity::Identity;
use crate::store::{Store, StoreConfig};
use crate::tls;
pub use crate::tls::install_crypto_provider;

/// How the server speaks to clients.
#[derive(Debug, Clone)]
pub enum TlsMode {
    /// A local CA and server certificate generated into this directory.
    Local(PathBuf),
    /// The user's certificate chain and key.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP (`--insecure-http`).
    Insecure,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub tls: TlsMode,
    pub auth: AuthMode,
    pub demo: bool,
    pub api: ApiConfig,
    /// Request budgets; `None` turns throttling off (`--no-throttle`).
    pub throttle: Option<crate::arm::throttle::ThrottleConfig>,
    /// Most connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
}

pub struct Application {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    base_url: String,
    ca_path: Option<PathBuf>,
    max_connections: usize,
    demo_credentials: Option<DemoCredentials>,
    key_dir: Option<PathBuf>,
    persistent: bool,
}

/// `--auth any` makes every well-formed token Owner: refuse it anywhere but loopback, before
/// anything is opened or bound.
fn check_auth_any_listens_on_loopback(options: &ServeOptions) -> Result<()> {
    if options.auth == AuthMode::Any && !options.listen.ip().is_loopback() {
        anyhow::bail!(
            "--auth any accepts any well-formed token with full access, so it listens on loopback only, not on {}. \
             Use --listen 127.0.0.1:{port} (or [::1]:{port}) for a local emulator, or --auth strict to serve other hosts.",
            options.listen,
            port = options.listen.port()
        );
    }
    Ok(())
}

/// Serve one connection. HTTP/2 only when TLS negotiated it (ALPN `h2`); otherwise HTTP/1.1
/// directly — no protocol sniffing on every connection (measurable on the hot path).
async fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<()>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let http1 = hyper::server::conn::http1::Builder::new();
    match acceptor {
        None => watcher.watch(http1.serve_connection(TokioIo::new(stream), service)).await?,
        Some(acceptor) => {
            let tls = acceptor.accept(stream).await?;
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                watcher.watch(h2.serve_connection(TokioIo::new(tls), service)).await?;
            } else {
                watcher.watch(http1.serve_connection(TokioIo::new(tls), service)).await?;
            }
        }
    }
    Ok(())
}

impl Application {
    pub async fn build(options: ServeOptions) -> Result<Application> {
        check_auth_any_listens_on_loopback(&options)?;
        install_crypto_provider();
        let store = Store::open(&options.store).await?;
        let tls = match &options.tls {
            TlsMode::Local(dir) => Some(tls::local(dir)?),
            TlsMode::Files { cert, key } => Some(tls::from_files(cert, key)?),
            TlsMode::Insecure => None,
        };
        // Identity material lives in the data directory (also under --memory, beside the TLS files).
        let key_dir = match (&options.store, &options.tls) {
            (StoreConfig::Sqlite { data_dir }, _) | (_, TlsMode::Local(data_dir)) => {
                Some(data_dir.clone())
            }
            _ => None,
        };
        let persistent = matches!(options.store, StoreConfig::Sqlite { .. });
        let mut demo_credentials = None;
        if options.demo {
            let tenant = store.default_tenant().await?;
            crate::demo::seed(&store, tenant).await?;
            demo_credentials =
                Some(crate::identity::demo::ensure(&store, tenant, key_dir.as_deref()).await?);
        }
        // Notice writes of other processes (the CLI on the same data directory) within a second.
        store.watch_changes(Duration::from_millis(500));

        let listener = TcpListener::bind(options.listen).await.with_context(|| {
            format!("cannot listen on {}: is another server running there?", options.listen)
        })?;
        let addr = listener.local_addr()?;
        let https = tls.is_some();
        let base_url = format!("{}://{}", if https { "https" } else { "http" }, addr);
        let public_url = match &options.api.public_url {
            Some(url) => url.clone(),
            None => {
                if addr.ip().is_unspecified() {
                    tracing::warn!(%addr, "listening on all addresses without --public-url: tokens and links will name {base_url}, which clients cannot reach; set --public-url");
                }
                base_url.parse::<PublicUrl>()?
            }
        };
        let api = ApiConfig { https, public_url: Some(public_url.clone()), ..options.api };
        let ca_path = tls.as_ref().and_then(|t| t.ca_path.clone());
        let identity = Arc::new(
            Identity::open(
                store.clone(),
                options.auth,
                key_dir.as_deref(),
                &api.trust_issuers,
                public_url,
            )
            .await?,
        );
        identity.prefetch();
        Ok(Application {
            listener,
            tls: tls.map(|t| t.config),
            state: AppState {
                store,
                config: Arc::new(api),
                throttle: Arc::new(crate::arm::throttle::Throttle::new(options.throttle)),
                identity,
            },
            base_url,
            ca_path,
            max_connections: options.max_connections,
            demo_credentials,
            key_dir,
            persistent,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }
    /// The address the server listens on, with the scheme (what a local client connects to).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    /// The URL clients are told to use (`--public-url`, default: [`Self::base_url`]).
    pub fn public_url(&self) -> &PublicUrl {
        &self.state.identity.public_url
    }
    pub fn ca_path(&self) -> Option<&PathBuf> {
        self.ca_path.as_ref()
    }
    pub fn store(&self) -> &Store {
        &self.state.store
    }
    /// The identity state: keys (tests sign tokens with them), trusted issuers.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.state.identity
    }
    /// The demo principal's credentials (`--demo`).
    pub fn demo_credentials(&self) -> Option<&DemoCredentials> {
        self.demo_credentials.as_ref()
    }
    /// Does the store outlive the process (a data directory, not `--memory`)?
    pub fn store_is_persistent(&self) -> bool {
        self.persistent
    }
    /// Where the signing keys (and the demo credentials) live; `None`: in memory.
    pub fn key_dir(&self) -> Option<&PathBuf> {
        self.key_dir.as_ref()
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let router = api::router(self.state.clone());
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let limit = Arc::new(Semaphore::new(self.max_connections));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p?,
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let acceptor = acceptor.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = serve_connection(stream, acceptor, service, watcher).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        // Let in-flight requests finish, but not forever.
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        Ok(())
    }
}
