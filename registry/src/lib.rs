//! Cerulean's registry: experiments, runs, metrics, params, tags, registered models, versions, aliases
//! and artifacts, behind the MLflow REST API, on SQLite or PostgreSQL and local, Azure Blob or S3
//! storage; and Cerulean's training-job queue and dataset register beside it.
pub mod artifacts;
pub mod auth;
pub mod client;
pub mod datasets;
pub mod entities;
pub mod error;
pub mod events;
pub mod grpc;
pub mod http;
pub mod jobs;
pub mod service;
pub mod store;
pub mod validation;

/// Installs rustls' `ring` crypto provider for this process (idempotent). The HTTP clients of the
/// artifact stores and webhooks use rustls without a built-in provider, to keep the C-heavy
/// `aws-lc` out of the build.
pub fn install_tls_provider() {
    // An error only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
