//! Execution of the commands defined in `structs`.

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::time::Duration;

use super::data::open_data_dir;
use super::structs::{Command, LogFormat, Output, ServeArgs, SubscriptionsCommand};
use crate::api::ApiConfig;
use crate::server::{Application, AuthMode, ConnectionLimits, ServeOptions, TlsMode};
use crate::store::{StoreConfig, Subscription};

pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Subscriptions(cmd) => subscriptions(cmd).await,
        Command::Import(args) => super::import::run(args).await,
        Command::ManagementGroups(cmd) => super::management_groups::run(cmd).await,
        Command::Principals(cmd) => super::identity::principals(cmd).await,
        Command::Roles(cmd) => super::identity::roles(cmd).await,
        Command::Token(args) => super::identity::token(args).await,
        Command::Keys(cmd) => super::identity::keys(cmd).await,
        Command::Scores(cmd) => super::read::scores(cmd).await,
        Command::Controls(args) => super::read::controls(args).await,
        Command::Definitions(args) => super::read::definitions(args).await,
        Command::Assessments(args) => super::read::assessments(args).await,
        Command::History(args) => super::read::history(args).await,
        Command::Aggregate(args) => super::read::aggregate(args).await,
        Command::Verify(args) => super::verify::run(args).await,
        Command::Migrate(args) => super::migrate::run(args).await,
        Command::Improvements(args) => super::insights::improvements(args).await,
        Command::Changes(args) => super::insights::changes(args).await,
        Command::Exemptions(cmd) => super::insights::exemptions(cmd).await,
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECURESCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    let store = match (&args.database_url, args.memory) {
        (Some(url), _) => super::data::database(url)?,
        (None, true) => StoreConfig::Memory,
        (None, false) => StoreConfig::Sqlite { data_dir: args.data_dir.clone() },
    };
    let tls = match (&args.tls_cert, &args.tls_key, args.insecure_http) {
        (_, _, true) => TlsMode::Insecure,
        (Some(cert), Some(key), _) => TlsMode::Files { cert: cert.clone(), key: key.clone() },
        _ => TlsMode::Local(args.data_dir.clone()),
    };
    let options = ServeOptions {
        listen: args.listen,
        store,
        tls,
        auth: args.auth,
        demo: args.demo,
        api: ApiConfig {
            page_size: args.page_size as usize,
            max_body: args.max_body_bytes,
            trust_issuers: args.trust_issuer.clone(),
            public_url: args.public_url.clone(),
            changes_retention: (args.changes_retention_days > 0)
                .then(|| Duration::from_secs(u64::from(args.changes_retention_days) * 24 * 3600)),
            ..ApiConfig::default()
        },
        throttle: (!args.no_throttle).then_some(crate::arm::throttle::ThrottleConfig {
            reads: args.throttle_reads,
            writes: args.throttle_writes,
        }),
        max_connections: args.max_connections as usize,
        limits: ConnectionLimits {
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            tls_handshake_timeout: Duration::from_secs(args.tls_handshake_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
        },
        store_busy_timeout: Duration::from_millis(args.store_busy_timeout_ms),
        export: crate::automation::ExportConfig {
            snapshot_interval: Duration::from_secs(args.export_snapshot_interval),
            backoff_initial: Duration::from_millis(args.export_retry_initial),
            backoff_max: Duration::from_secs(args.export_retry_max),
            max_file_bytes: args.export_max_file_bytes,
            // Also under --memory: the data directory still holds the TLS material.
            exports_dir: Some(args.data_dir.join("exports")),
            ..crate::automation::ExportConfig::default()
        },
    };
    let app = Application::build(options).await?;
    // Listen for the signals before anyone can learn the address: a SIGTERM that arrives right
    // after the banner must drain, not kill the process.
    let shutdown = shutdown_signal()?;
    print_banner(&app, &args);
    app.run_until(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM (service managers, `docker stop`, Kubernetes) or SIGINT (Ctrl-C).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down: finishing requests in flight");
    })
}

fn print_banner(app: &Application, args: &ServeArgs) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let base = app.base_url();
    let _ = writeln!(out, "securescore listening on {base}");
    if app.public_url().as_str() != base {
        let _ = writeln!(out, "public URL (token issuer, links): {}", app.public_url());
    }
    if args.auth == AuthMode::Any {
        let _ = writeln!(out, "WARNING: --auth any: every well-formed bearer token is accepted with full access. Never expose this server.");
    }
    let ca = app.ca_path().map(|p| p.display().to_string());
    if let Some(ca) = &ca {
        let _ = writeln!(out, "CA certificate: {ca}  (trust it: curl --cacert, connection_verify=, REQUESTS_CA_BUNDLE=)");
    }
    out.push_str(&super::identity::access_help(app, &args.data_dir, ca.as_deref(), args.demo));
    // A closed stdout (`serve | head -1`) must not stop the server: write once, ignore failure.
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
}

fn subscription_table(subs: &[Subscription]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["Subscription", "Name", "Tenant", "State"]);
    for s in subs {
        t.add_row([
            s.id.to_string(),
            s.display_name.clone(),
            s.tenant_id.to_string(),
            s.state.clone(),
        ]);
    }
    t
}

fn subscription_json(s: &Subscription) -> serde_json::Value {
    serde_json::json!({"subscriptionId": s.id, "displayName": s.display_name, "tenantId": s.tenant_id, "state": s.state})
}

async fn subscriptions(cmd: SubscriptionsCommand) -> Result<()> {
    match cmd {
        SubscriptionsCommand::Add { id, name, tenant, target, output } => {
            let sub = if let Some(endpoint) = &target.endpoint {
                let client = super::client::Client::new(endpoint, &target)?;
                let body = serde_json::json!({"displayName": name, "tenantId": tenant});
                let v =
                    client.put_json(&format!("/securescore/v1/subscriptions/{id}"), &body).await?;
                serde_json::from_value::<crate::wire::SubscriptionBody>(v)?.into_subscription()
            } else {
                let store = open_data_dir(&target).await?;
                let tenant = match tenant {
                    Some(t) => t,
                    None => store.default_tenant().await?,
                };
                let sub = Subscription {
                    id,
                    display_name: name,
                    tenant_id: tenant,
                    state: "Enabled".into(),
                };
                store.put_subscription(&sub).await?;
                sub
            };
            match output {
                Output::Json => {
                    println!("{}", serde_json::to_string_pretty(&subscription_json(&sub))?)
                }
                Output::Table => println!("{}", subscription_table(std::slice::from_ref(&sub))),
            }
        }
        SubscriptionsCommand::List { target, output } => {
            let subs = if let Some(endpoint) = &target.endpoint {
                let client = super::client::Client::new(endpoint, &target)?;
                let items = client.get_all("/securescore/v1/subscriptions").await?;
                let list: Vec<crate::wire::SubscriptionBody> =
                    serde_json::from_value(serde_json::Value::Array(items))
                        .context("unexpected answer")?;
                list.into_iter().map(|s| s.into_subscription()).collect()
            } else {
                open_data_dir(&target).await?.subscriptions().await?
            };
            match output {
                Output::Json => {
                    let v: Vec<_> = subs.iter().map(subscription_json).collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                Output::Table => println!("{}", subscription_table(&subs)),
            }
        }
        SubscriptionsCommand::Remove { id, target } => {
            let removed = if let Some(endpoint) = &target.endpoint {
                let client = super::client::Client::new(endpoint, &target)?;
                client.delete(&format!("/securescore/v1/subscriptions/{id}")).await?
            } else {
                open_data_dir(&target).await?.remove_subscription(id).await?
            };
            if !removed {
                bail!("subscription {id} does not exist (nothing removed)");
            }
            println!("removed subscription {id} and all its data");
        }
    }
    Ok(())
}
