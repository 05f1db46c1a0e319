//! The `serve` command's runtime: open the store, build the router, bind the listener and serve
//! HTTP/1.1 and HTTP/2, over TLS unless `--insecure-http`.
//!
//! [`Application::build`] binds first (port 0 works) so tests and the CLI learn the real address
//! before serving; [`Application::run_until`] serves until the shutdown future resolves, then
//! drains. Connection admission, timeouts and protocol limits live in [`connections`].

mod connections;

use anyhow::{Context, Result};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use connections::ConnectionLimits;
use connections::{Protocols, Tracker};

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
    /// Most connections open at once. At the cap a new connection closes the one idle for the
    /// longest time; only when every connection has a request in flight does it wait.
    pub max_connections: usize,
    /// Header-read, TLS handshake and idle timeouts.
    pub limits: ConnectionLimits,
    /// How long a write waits for the database's write lock before answering 503.
    pub store_busy_timeout: Duration,
    /// Continuous export's delivery worker. Export files go to `DATA_DIR/exports` unless it names
    /// a directory.
    pub export: crate::automation::ExportConfig,
}

/// The longest wait for requests in flight at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    base_url: String,
    ca_path: Option<PathBuf>,
    max_connections: usize,
    limits: ConnectionLimits,
    demo_credentials: Option<DemoCredentials>,
    key_dir: Option<PathBuf>,
    persistent: bool,
    export: crate::automation::ExportConfig,
}

/// `--auth any` makes every well-formed token Owner: refuse it anywhere but loopback, before
/// anything is opened or bound. A public URL naming another host means the same (a proxy on this
/// machine would forward other hosts' requests to the loopback listener).
fn check_auth_any_listens_on_loopback(options: &ServeOptions) -> Result<()> {
    if options.auth != AuthMode::Any {
        return Ok(());
    }
    if !options.listen.ip().is_loopback() {
        anyhow::bail!(
            "--auth any accepts any well-formed token with full access, so it listens on loopback only, not on {}. \
             Use --listen 127.0.0.1:{port} (or [::1]:{port}) for a local emulator, or --auth strict to serve other hosts.",
            options.listen,
            port = options.listen.port()
        );
    }
    if let Some(url) = options.api.public_url.as_ref().filter(|u| !u.is_loopback()) {
        anyhow::bail!(
            "--auth any accepts any well-formed token with full access, so it serves this machine only, but \
             --public-url {url} names another host. Drop --public-url (or name localhost) for a local emulator, \
             or use --auth strict to serve other hosts."
        );
    }
    Ok(())
}

/// The meta row holding the shared local CA: `{"certificate": PEM, "privateKey": PEM}`.
pub const SHARED_CA_META: &str = "tls_local_ca";

/// The local CA of every server on a shared database: made by the first to start, kept in the
/// database (its key as carefully as the signing keys beside it), adopted by every other.
async fn shared_ca(store: &Store) -> Result<(String, String)> {
    let text = match store.meta(SHARED_CA_META).await? {
        Some(text) => text,
        None => {
            let (cert, key) = tls::new_ca_pem()?;
            let fresh = serde_json::json!({ "certificate": cert, "privateKey": key }).to_string();
            store.set_meta_if_absent(SHARED_CA_META, &fresh).await?
        }
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the database's local CA is not readable")?;
    match (value["certificate"].as_str(), value["privateKey"].as_str()) {
        (Some(cert), Some(key)) => Ok((cert.to_string(), key.to_string())),
        _ => anyhow::bail!("the database's local CA lacks its certificate or key"),
    }
}

impl Application {
    pub async fn build(options: ServeOptions) -> Result<Application> {
        check_auth_any_listens_on_loopback(&options)?;
        install_crypto_provider();
        let store = Store::open_with(&options.store, options.store_busy_timeout).await?;
        let tls = match &options.tls {
            TlsMode::Local(dir) => {
                if store.is_shared() {
                    let (cert, key) = shared_ca(&store).await?;
                    tls::install_ca(dir, &cert, &key)?;
                }
                Some(tls::local(dir)?)
            }
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
        let persistent = !matches!(options.store, StoreConfig::Memory);
        let mut export = options.export.clone();
        if export.exports_dir.is_none() {
            if let StoreConfig::Sqlite { data_dir } = &options.store {
                export.exports_dir = Some(data_dir.join("exports"));
            }
        }
        let mut demo_credentials = None;
        if options.demo {
            let tenant = store.default_tenant().await?;
            crate::demo::seed(&store, tenant).await?;
            demo_credentials =
                Some(crate::identity::demo::ensure(&store, tenant, key_dir.as_deref()).await?);
        }
        // Notice writes of other processes (the CLI on the same data directory) within a second.
        store.watch_changes(Duration::from_millis(500));
        // Exemptions end on time without a restart; old status transitions are dropped.
        store.upkeep(options.api.changes_retention);

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
        // The resolved public URL lives with identity (`Identity::public_url`), its one reader.
        let api = ApiConfig { https, ..options.api };
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
        identity.watch_keys();
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
            limits: options.limits,
            demo_credentials,
            key_dir,
            persistent,
            export,
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

    /// Serve until `shutdown` resolves, then stop accepting, let requests in flight finish
    /// (for at most [`DRAIN_TIMEOUT`]) and return.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let router = api::router(self.state.clone());
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let protocols = Arc::new(Protocols::new(self.limits));
        let tracker = Tracker::new(self.max_connections);
        let export = crate::automation::worker::Worker::spawn(
            self.state.store.clone(),
            self.export,
            std::sync::Arc::new(crate::api::automations::ArmRendering),
        );
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors (EMFILE, ENFILE) before the cap is reached:
                        // idle connections give way as they do at the cap; back off meanwhile.
                        if matches!(e.raw_os_error(), Some(23 | 24)) {
                            tracker.evict_oldest_idle();
                        }
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let slot = tokio::select! {
                s = tracker.admit() => s?,
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let acceptor = acceptor.clone();
            let protocols = protocols.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    connections::serve(stream, acceptor, service, &slot, &protocols).await
                {
                    tracing::debug!(%peer, error = format!("{e:#}"), "connection ended with an error");
                }
            });
        }
        // New connections are refused at once instead of waiting in the backlog for the exit.
        drop(self.listener);
        tracker.shutdown.cancel();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.drained()).await.is_err() {
            tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
        // After the requests: their changes are in the outbox, delivered now or at the next start.
        export.stop(DRAIN_TIMEOUT).await;
        Ok(())
    }
}
