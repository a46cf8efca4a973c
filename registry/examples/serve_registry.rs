//! Serves the registry's MLflow REST API on its own (a stand-in for `cerulean registry` in
//! benchmarks and manual tests): `Registry::open` and `axum::serve` of `http::router`, with
//! MLflow's `ENDPOINT_NOT_FOUND` answer as the fallback.
//!
//! ```text
//! cargo run --release -p cerulean-registry --example serve_registry -- \
//!     [--backend-store-uri sqlite:///tmp/registry.db] [--artifacts-destination /tmp/artifacts] \
//!     [--artifact-option KEY=VALUE]... [--host 127.0.0.1] [--port 8080] [--keys-file keys.toml] \
//!     [--workers N] [--max-connections N]
//! ```
//!
//! The defaults are a SQLite file and an artifact directory in a new temporary directory. It
//! prints `listening on http://HOST:PORT` once it accepts connections (`--port 0` picks a free
//! port), and stops on Ctrl-C.

use std::sync::Arc;

use cerulean_registry::http::{not_found, router};
use cerulean_registry::service::{Registry, RegistryConfig};

fn usage() -> ! {
    eprintln!(
        "usage: serve_registry [--backend-store-uri URI] [--artifacts-destination DEST] \
         [--artifact-option KEY=VALUE]... [--host HOST] [--port PORT] [--keys-file FILE] \
         [--workers N] [--max-connections N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut config = RegistryConfig::new(
        format!("sqlite://{}/registry.db", tmp.path().display()),
        tmp.path().join("artifacts").display().to_string(),
    );
    let mut host = "127.0.0.1".to_owned();
    let mut port = "8080".to_owned();
    let mut workers: Option<usize> = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--backend-store-uri" => config.backend_store_uri = value(),
            "--artifacts-destination" => config.artifacts_destination = value(),
            "--artifact-option" => {
                let option = value();
                let (k, v) = option.split_once('=').unwrap_or_else(|| usage());
                config.artifact_options.push((k.to_owned(), v.to_owned()));
            }
            "--host" => host = value(),
            "--port" => port = value(),
            "--keys-file" => config.keys_file = Some(value().into()),
            "--workers" => workers = Some(value().parse().unwrap_or_else(|_| usage())),
            "--max-connections" => {
                config.max_connections = value().parse().unwrap_or_else(|_| usage())
            }
            _ => usage(),
        }
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.enable_all().build().expect("a Tokio runtime");
    runtime.block_on(async move {
        let registry = match Registry::open(config).await {
            Ok(registry) => Arc::new(registry),
            Err(e) => {
                eprintln!("serve_registry: {e}");
                std::process::exit(1);
            }
        };
        let app = router(registry).fallback(not_found);
        let listener = tokio::net::TcpListener::bind(format!("{host}:{port}"))
            .await
            .unwrap_or_else(|e| {
                eprintln!("serve_registry: cannot listen on {host}:{port}: {e}");
                std::process::exit(1);
            });
        println!("listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("the server runs");
    });
    drop(tmp);
}
