//! `cerulean registry`: the MLflow-compatible registry on its own, and the registry part of
//! `cerulean up`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cerulean_registry::events::WebhookConfig;
use cerulean_registry::service::{Registry, RegistryConfig};
use clap::Args;

use crate::settings::RegistryFileSettings;

/// Flags of the registry. Each can also come from its `CERULEAN_*` variable or the config file.
#[derive(Args, Debug, Default, Clone)]
pub struct RegistryArgs {
    /// The metadata store: `sqlite:///abs/path.db` (default: $CERULEAN_HOME/registry/registry.db)
    /// or `postgresql://user@host/db`.
    #[arg(long, env = "CERULEAN_BACKEND_STORE_URI")]
    pub backend_store_uri: Option<String>,
    /// Where artifacts go: a path or `file:///dir` (default: $CERULEAN_HOME/registry/artifacts),
    /// `az://container/prefix` (Azure Blob) or `s3://bucket/prefix`.
    #[arg(long, env = "CERULEAN_ARTIFACTS_DESTINATION")]
    pub artifacts_destination: Option<String>,
    /// An API keys file (TOML); keys are checked on every route and re-read when the file changes.
    #[arg(long, env = "CERULEAN_API_KEYS")]
    pub api_keys: Option<PathBuf>,
    /// Serve without API keys even on a non-loopback address.
    #[arg(long, env = "CERULEAN_NO_AUTH")]
    pub no_auth: bool,
    /// The URL clients reach this server at (for multipart upload part URLs).
    #[arg(long, env = "CERULEAN_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// `cerulean registry` flags: the registry's own plus its address.
#[derive(Args, Debug, Default)]
pub struct RegistryCommand {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// REST address [default: 127.0.0.1:8080].
    #[arg(long, env = "CERULEAN_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Also serve the training-job gRPC service (`cerulean.jobs.v1.JobService`) on this address.
    #[arg(long, env = "CERULEAN_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
}

/// The registry configuration from flags, then the file's `[registry]` table, then defaults under
/// `home`. Refuses to run without keys on a non-loopback address unless told to.
pub fn config(
    args: &RegistryArgs,
    file: &RegistryFileSettings,
    home: &std::path::Path,
    addr: SocketAddr,
) -> anyhow::Result<RegistryConfig> {
    let dir = home.join("registry");
    let backend = args
        .backend_store_uri
        .clone()
        .or_else(|| file.backend_store_uri.clone())
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("registry.db").display()));
    let artifacts = args
        .artifacts_destination
        .clone()
        .or_else(|| file.artifacts_destination.clone())
        .unwrap_or_else(|| dir.join("artifacts").display().to_string());
    let mut config = RegistryConfig::new(backend, artifacts);
    config.keys_file = args.api_keys.clone().or_else(|| file.api_keys.clone());
    config.public_base_url = args.public_url.clone().or_else(|| file.public_url.clone());
    config.webhooks = file
        .webhook
        .iter()
        .map(|w| WebhookConfig {
            url: w.url.clone(),
            secret: w.secret.clone(),
            events: w.events.clone(),
        })
        .collect();
    // Job files are checked at submission, so a bad one is a 400 naming its field.
    config = config.with_job_spec_validator(|spec| {
        let job = cerulean_trainer::JobSpec::from_json(spec).map_err(|e| e.to_string())?;
        Ok(cerulean_registry::jobs::JobSpecSummary {
            name: job.name.clone(),
            requires_gpu: job.requires_gpu(),
            experiment: job.experiment.clone(),
        })
    });
    let no_auth = args.no_auth || file.no_auth.unwrap_or(false);
    if config.keys_file.is_none() && !addr.ip().is_loopback() && !no_auth {
        anyhow::bail!(
            "the registry listens on {addr}, beyond this machine, without API keys: pass --api-keys FILE \
             (or --no-auth to serve it open on purpose)"
        );
    }
    Ok(config)
}

/// Opens the registry (store migrations, artifact container, keys, webhooks).
pub async fn open(config: RegistryConfig) -> anyhow::Result<Arc<Registry>> {
    let backend = cerulean_registry::service::redact_uri(&config.backend_store_uri);
    let registry = Registry::open(config)
        .await
        .with_context(|| format!("opening the registry ({backend})"))?;
    Ok(Arc::new(registry))
}

/// Runs `cerulean registry` until SIGINT or SIGTERM.
pub fn run(config_file: Option<&std::path::Path>, command: RegistryCommand) -> anyhow::Result<()> {
    let home = cerulean_models::cerulean_home();
    let settings = crate::settings::FileSettings::load(config_file, &home)?;
    let addr = command
        .http_addr
        .or(settings.serve.http_addr)
        .unwrap_or(([127, 0, 0, 1], 8080).into());
    let config = config(&command.registry, &settings.registry, &home, addr)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding HTTP to {addr}"))?;
        let registry = open(config).await?;
        let grpc = match command.grpc_addr {
            Some(grpc_addr) => {
                let listener = tokio::net::TcpListener::bind(grpc_addr)
                    .await
                    .with_context(|| format!("binding gRPC to {grpc_addr}"))?;
                let routes = tonic::service::Routes::new(cerulean_registry::grpc::JobGrpc::server(
                    registry.clone(),
                ));
                tracing::info!(%grpc_addr, "job service listening");
                Some(tokio::spawn(cerulean_serving::grpc::serve_grpc_routes(
                    routes,
                    listener,
                    crate::serve::shutdown_signal(),
                )))
            }
            None => None,
        };
        let app =
            cerulean_registry::http::router(registry).fallback(cerulean_registry::http::not_found);
        tracing::info!(%addr, "registry listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::serve::shutdown_signal())
            .await
            .context("HTTP server")?;
        if let Some(grpc) = grpc {
            grpc.await
                .context("gRPC server task")?
                .context("gRPC server")?;
        }
        Ok(())
    })
}
