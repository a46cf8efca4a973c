//! `cerulean serve` and `cerulean up`: start the inference server. Both can serve the registered
//! models of a model registry (`up` its own, `serve --registry URL` another's), following their
//! aliases ([`cerulean_serving::registry_source`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cerulean_cognitive::services::LanguageServices;
use cerulean_models::ModelStore;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::backend::candle::device::DeviceSpec;
use cerulean_serving::config::ModelDefaults;
use cerulean_serving::metrics::Metrics;
use cerulean_serving::registry_source::{FollowerConfig, RegistryFollower};
use cerulean_serving::repository::{ModelRepository, RepositorySources};
use cerulean_serving::server::{InferenceServer, ServerOptions};
use clap::Args;
use tokio::sync::watch;

use crate::registry_server::RegistryArgs;
use crate::settings::FileSettings;
use axum::response::IntoResponse;
use cerulean_registry::service::RegistryConfig;
use std::future::IntoFuture;

/// Flags of `serve` and `up`. Each can also come from its `CERULEAN_*` variable or the config file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// A Triton-layout model repository; may be given several times.
    #[arg(
        long = "model-repository",
        env = "CERULEAN_MODEL_REPOSITORY",
        value_delimiter = ','
    )]
    pub model_repository: Vec<PathBuf>,
    /// REST address [default: 127.0.0.1:8080].
    #[arg(long, env = "CERULEAN_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// gRPC address [default: 127.0.0.1:8081].
    #[arg(long, env = "CERULEAN_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Refuse load and unload requests (models stay as loaded at start).
    #[arg(long, env = "CERULEAN_NO_MODEL_CONTROL")]
    pub no_model_control: bool,
    /// Largest HTTP request body in bytes [default: 268435456].
    #[arg(long, env = "CERULEAN_HTTP_BODY_LIMIT")]
    pub http_body_limit: Option<usize>,
    /// Largest gRPC message in bytes [default: 268435456].
    #[arg(long, env = "CERULEAN_GRPC_MESSAGE_LIMIT")]
    pub grpc_message_limit: Option<usize>,
    /// ONNX Runtime threads inside an operator, per model instance [default: 1].
    #[arg(long, env = "CERULEAN_INTRA_OP_THREADS")]
    pub intra_op_threads: Option<usize>,
    /// ONNX Runtime threads across operators, per model instance [default: 1].
    #[arg(long, env = "CERULEAN_INTER_OP_THREADS")]
    pub inter_op_threads: Option<usize>,
    /// Where candle models (those Cerulean trained) compute: `cpu`, `cuda` or `cuda:N` (a
    /// `cuda` build) [default: cpu].
    #[arg(long, env = "CERULEAN_CANDLE_DEVICE")]
    pub candle_device: Option<String>,
    /// Instances of each model without an instance_group [default: number of CPUs].
    #[arg(long, env = "CERULEAN_INSTANCES")]
    pub instances: Option<usize>,
    /// max_batch_size given to batchable models whose configuration has none [default: 32].
    #[arg(long, env = "CERULEAN_DEFAULT_MAX_BATCH_SIZE")]
    pub default_max_batch_size: Option<usize>,
    /// Requests that may wait per model version before 429 [default: 1024].
    #[arg(long, env = "CERULEAN_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// The ONNX Runtime library [default: the one `cerulean models pull` installed].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub onnxruntime_library: Option<PathBuf>,
    /// Serve the registered models of the registry at this URL, following their aliases
    /// (`cerulean up` serves those of its own registry and ignores this).
    #[arg(long = "registry", env = "CERULEAN_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// An API key for that registry (sent as a bearer token; a reader's is enough).
    #[arg(long, env = "CERULEAN_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<String>,
    /// Where registered models' files are cached [default: $CERULEAN_HOME/registry-models].
    #[arg(long, env = "CERULEAN_REGISTRY_CACHE")]
    pub registry_cache: Option<PathBuf>,
    /// How many of each registered model's newest versions stay loaded, alias targets aside; older
    /// versions load on their first request [default: 3].
    #[arg(long, env = "CERULEAN_REGISTRY_VERSIONS")]
    pub registry_versions: Option<usize>,
    /// Answer sentiment analysis with this registered text classifier instead of VADER:
    /// `models:/NAME@champion` or `models:/NAME/VERSION` (`up`; config `[cognitive.sentiment]
    /// model`).
    #[arg(long, env = "CERULEAN_SENTIMENT_MODEL")]
    pub sentiment_model: Option<String>,
}

/// Which registry the server follows, and how.
struct Follow {
    /// The registry's URL; `None` for the registry served in this process (`up`).
    url: Option<String>,
    /// The API key sent to it.
    token: Option<String>,
    /// The follower's settings.
    config: FollowerConfig,
}

impl Follow {
    /// The registry to follow: `up`'s own, or the one `--registry` names, if any.
    fn from_args(args: &ServeArgs, up: bool, home: &Path) -> Option<Follow> {
        let url = if up {
            if let Some(url) = &args.registry_url {
                tracing::info!(%url, "`up` serves the models of its own registry; --registry is ignored");
            }
            None
        } else {
            Some(args.registry_url.clone()?)
        };
        let mut config = FollowerConfig::new(
            args.registry_cache
                .clone()
                .unwrap_or_else(|| home.join("registry-models")),
        );
        if let Some(keep) = args.registry_versions {
            config.keep_versions = keep;
        }
        Some(Follow {
            url,
            token: args.registry_token.clone().filter(|t| !t.is_empty()),
            config,
        })
    }

    /// Starts following; `http_addr` is where this process's own registry answers.
    fn start(
        self,
        repository: &Arc<ModelRepository>,
        http_addr: SocketAddr,
    ) -> anyhow::Result<RegistryFollower> {
        let url = self
            .url
            .unwrap_or_else(|| format!("http://{}", loopback(http_addr)));
        let client = cerulean_registry::client::RegistryClient::new(&url, self.token)
            .with_context(|| format!("connecting to the registry at {url}"))?;
        Ok(RegistryFollower::start(
            client,
            repository.clone(),
            self.config,
        ))
    }
}

/// `addr` with an unspecified IP (`0.0.0.0`, `::`) replaced by the loopback address, for
/// reaching this process's own listener.
fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Runs the server until SIGINT or SIGTERM. With `registry` (the `up` command) it also fetches and
/// serves the prebuilt models, and serves the registry on the same HTTP port.
pub fn run(
    config: Option<&Path>,
    args: ServeArgs,
    registry: Option<RegistryArgs>,
) -> anyhow::Result<()> {
    let up = registry.is_some();
    let store = ModelStore::from_env();
    let settings = FileSettings::load(config, store.home())?;
    let file = settings.serve;
    if up {
        crate::models::pull(&store, &[], false, false).context("fetching the prebuilt models")?;
    }
    let mut roots = if args.model_repository.is_empty() {
        file.model_repository.clone().unwrap_or_default()
    } else {
        args.model_repository.clone()
    };
    let sentiment_model = args
        .sentiment_model
        .clone()
        .or(settings.cognitive.sentiment.model.clone())
        .filter(|uri| !uri.trim().is_empty())
        .map(|uri| uri.parse::<cerulean_cognitive::sentiment::SentimentBinding>())
        .transpose()?;
    if !up && let Some(binding) = &sentiment_model {
        tracing::warn!(
            %binding,
            "only `cerulean up` serves the language routes; the sentiment binding is ignored"
        );
    }
    let language = up.then(|| LanguageServices::new(sentiment_model));
    let mut prebuilt = Vec::new();
    let mut builtin = Vec::new();
    if let Some(language) = &language {
        builtin = language.builtin_models(&store);
        let user_repository = store.home().join("repository");
        std::fs::create_dir_all(&user_repository)
            .with_context(|| format!("creating {}", user_repository.display()))?;
        roots.push(user_repository);
        prebuilt = store.servable_models();
    }
    let follow = Follow::from_args(&args, up, store.home());
    if roots.is_empty() && prebuilt.is_empty() && follow.is_none() {
        anyhow::bail!(
            "no model repository given: pass --model-repository DIR or --registry URL (or use \
             `cerulean up`)"
        );
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut defaults = ModelDefaults {
        max_batch_size: args
            .default_max_batch_size
            .or(file.default_max_batch_size)
            .unwrap_or(32),
        queue_capacity: args.queue_capacity.or(file.queue_capacity).unwrap_or(1024),
        instance_count: args.instances.or(file.instances).unwrap_or(cpus),
        backend: BackendOptions {
            intra_op_threads: args.intra_op_threads.or(file.intra_op_threads).unwrap_or(1),
            inter_op_threads: args.inter_op_threads.or(file.inter_op_threads).unwrap_or(1),
            allow_spinning: false,
            onnxruntime_library: args
                .onnxruntime_library
                .clone()
                .or(file.onnxruntime_library.clone())
                .or_else(|| store.onnxruntime_library()),
            text_encoders: Default::default(),
            candle_device: candle_device(
                args.candle_device
                    .as_deref()
                    .or(file.candle_device.as_deref()),
            )?,
        },
    };
    // Text classifiers name their encoder; the prebuilt MiniLM serves those that name it.
    defaults.backend.text_encoders =
        cerulean_cognitive::text_encoder::text_encoders(&store, &defaults.backend);
    let options = ServerOptions {
        model_control: !args.no_model_control && file.model_control.unwrap_or(true),
        http_body_limit: args
            .http_body_limit
            .or(file.http_body_limit)
            .unwrap_or(256 << 20),
        grpc_message_limit: args
            .grpc_message_limit
            .or(file.grpc_message_limit)
            .unwrap_or(256 << 20),
    };
    let http_addr = args
        .http_addr
        .or(file.http_addr)
        .unwrap_or(([127, 0, 0, 1], 8080).into());
    let grpc_addr = args
        .grpc_addr
        .or(file.grpc_addr)
        .unwrap_or(([127, 0, 0, 1], 8081).into());
    let sources = RepositorySources {
        roots,
        models: prebuilt,
        builtin,
    };
    let registry = registry
        .map(|args| {
            crate::registry_server::config(&args, &settings.registry, store.home(), http_addr)
        })
        .transpose()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(
        sources,
        defaults,
        options,
        (http_addr, grpc_addr),
        registry,
        follow,
        language,
    ))
}

async fn serve(
    sources: RepositorySources,
    defaults: ModelDefaults,
    options: ServerOptions,
    (http_addr, grpc_addr): (SocketAddr, SocketAddr),
    registry: Option<RegistryConfig>,
    follow: Option<Follow>,
    language: Option<LanguageServices>,
) -> anyhow::Result<()> {
    // `up`: the language services and the in-process worker.
    let cognitive = language.is_some();
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("binding HTTP to {http_addr}"))?;
    let bound_http = http_listener.local_addr().unwrap_or(http_addr);
    let grpc_listener = tokio::net::TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("binding gRPC to {grpc_addr}"))?;
    let repository = Arc::new(ModelRepository::new(sources, defaults, Metrics::new()));
    let server = InferenceServer::new(repository.clone(), options);
    let mut app = cerulean_serving::http::router(server.clone());
    if let Some(language) = &language {
        // The Azure AI Language routes and /v1/embeddings, over the builtin language models.
        app = app.merge(language.router(server.clone()));
    }
    let worker_token = follow.as_ref().and_then(|f| f.token.clone());
    let mut job_service = None;
    if let Some(config) = registry {
        let registry = crate::registry_server::open(config).await?;
        job_service = Some(cerulean_registry::grpc::JobGrpc::server(registry.clone()));
        let auth = registry.auth().clone();
        if auth.is_enabled() && follow.as_ref().is_some_and(|f| f.token.is_none()) {
            tracing::warn!(
                "the registry requires API keys: give the server one (--registry-token or \
                 CERULEAN_REGISTRY_TOKEN) to serve registered models"
            );
        }
        if auth.is_enabled() {
            // Keys guard every route on the shared port, the inference ones included.
            app = app.layer(axum::middleware::from_fn_with_state(
                auth,
                cerulean_registry::auth::require_role,
            ));
        }
        app = app.merge(cerulean_registry::http::router(registry));
    }
    let app = app.fallback(not_found);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let http = tokio::spawn(
        axum::serve(http_listener, app)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    // The inference service, and with the registry (`up`) the training-job service beside it.
    let draining = cerulean_serving::grpc::Draining::new();
    let mut routes = cerulean_serving::grpc::grpc_routes(server.clone(), draining.clone());
    if let Some(jobs) = job_service {
        routes = routes.add_service(jobs);
    }
    let grpc_stopped = stopped(stop_rx.clone());
    let grpc = tokio::spawn(cerulean_serving::grpc::serve_grpc_routes(
        routes,
        grpc_listener,
        async move {
            grpc_stopped.await;
            draining.start();
        },
    ));
    // `up` trains too: one worker in this process, leasing from this process's registry.
    let worker = cognitive.then(|| {
        let mut options = cerulean_trainer::worker::WorkerOptions::new(
            format!("http://{}", loopback(bound_http)),
            worker_token.clone(),
        );
        options.worker_id = format!("up-{}", options.worker_id);
        let worker_stopped = stopped(stop_rx.clone());
        tokio::spawn(async move {
            match cerulean_trainer::worker::Worker::new(options) {
                Ok(worker) => worker.run(worker_stopped).await,
                Err(err) => tracing::error!(error = %err, "cannot start the in-process worker"),
            }
        })
    });
    tracing::info!(%http_addr, %grpc_addr, "listening; loading models");
    // Registered models load in the background: an unreachable registry never holds the server.
    let _follower = follow
        .map(|follow| follow.start(&repository, bound_http))
        .transpose()?;
    repository.load_all().await;
    server.mark_ready(true);
    let index = server.index(false);
    let ready = index.iter().filter(|e| e.state == "READY").count();
    tracing::info!(ready_versions = ready, models = index.len(), "server ready");

    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    server.mark_ready(false);
    let _ = stop_tx.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    http.await
        .context("HTTP server task")?
        .context("HTTP server")?;
    grpc.await
        .context("gRPC server task")?
        .context("gRPC server")?;
    Ok(())
}

/// Unknown paths get the error shape of the protocol they look like: MLflow's under `/api` and
/// `/ajax-api`, Triton's elsewhere.
async fn not_found(request: axum::extract::Request) -> axum::response::Response {
    let path = request.uri().path();
    if path.starts_with("/api/") || path.starts_with("/ajax-api/") {
        cerulean_registry::http::not_found(request.method().clone(), request.uri().clone()).await
    } else {
        cerulean_serving::http::not_found(request)
            .await
            .into_response()
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The candle device the configuration names (CPU when none), opened once here so that a device
/// that is not there stops the server at start-up rather than failing every model load.
fn candle_device(text: Option<&str>) -> anyhow::Result<DeviceSpec> {
    let Some(text) = text else {
        return Ok(DeviceSpec::Cpu);
    };
    let spec = DeviceSpec::parse(text).context("candle_device")?;
    spec.open().context("candle_device")?;
    Ok(spec)
}
