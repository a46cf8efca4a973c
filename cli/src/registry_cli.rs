//! Registry commands for pipelines: `cerulean models versions NAME` and `cerulean promote`, through
//! the registry's REST API. Exit codes a CI job can branch on: 0 done, 2 not found or invalid,
//! 3 refused (authentication or role), 1 anything else.

use std::process::ExitCode;

use cerulean_registry::client::{ClientError, RegistryClient};
use clap::Args;

/// Where the registry is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct RegistryTarget {
    /// The registry's URL.
    #[arg(
        long = "registry",
        env = "CERULEAN_REGISTRY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API key (sent as a bearer token); MLFLOW_TRACKING_TOKEN works too.
    #[arg(long, env = "CERULEAN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl RegistryTarget {
    /// A client of the registry.
    pub fn client(&self) -> Result<RegistryClient, ClientError> {
        RegistryClient::new(&self.url, self.token())
    }

    /// The key to present: `--api-key`, else MLFLOW_TRACKING_TOKEN.
    pub fn token(&self) -> Option<String> {
        self.api_key.clone().or_else(|| {
            std::env::var("MLFLOW_TRACKING_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        })
    }
}

/// `cerulean promote` flags.
#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// The registered model.
    pub name: String,
    /// The version to point the alias at.
    #[arg(long)]
    pub version: String,
    /// The alias to move.
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Why, recorded in the alias history.
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub target: RegistryTarget,
}

/// The exit code for a failed registry call, after printing why.
pub fn failure(err: &ClientError) -> ExitCode {
    eprintln!("error: {err}");
    let code = match err {
        ClientError::Api { status, .. } if status.as_u16() == 401 || status.as_u16() == 403 => 3,
        ClientError::Api { status, .. } if status.is_client_error() => 2,
        _ => 1,
    };
    ExitCode::from(code)
}

/// Lists a registered model's versions with their aliases.
pub async fn versions(name: &str, target: &RegistryTarget) -> Result<(), ClientError> {
    let client = target.client()?;
    let model = client.get_registered_model(name).await?;
    let versions = client.model_versions(name).await?;
    println!(
        "{:<8} {:<11} {:<24} {:<34} SOURCE",
        "VERSION", "STAGE", "ALIASES", "RUN"
    );
    for version in &versions {
        let aliases: Vec<&str> = model
            .aliases
            .iter()
            .filter(|a| a.version == version.version)
            .map(|a| a.alias.as_str())
            .collect();
        println!(
            "{:<8} {:<11} {:<24} {:<34} {}",
            version.version,
            version.current_stage,
            aliases.join(","),
            version.run_id.as_deref().unwrap_or("-"),
            version.source
        );
    }
    Ok(())
}

/// Points an alias at a version, recording the reason; prints the move.
pub async fn promote(args: &PromoteArgs) -> Result<(), ClientError> {
    let client = args.target.client()?;
    let before = match client
        .get_model_version_by_alias(&args.name, &args.alias)
        .await
    {
        Ok(version) => Some(version.version),
        Err(err) if err.is_not_found() => None,
        Err(err) => return Err(err),
    };
    // Check the version exists first, for a clear "not found" rather than the alias call's message.
    client.get_model_version(&args.name, &args.version).await?;
    client
        .set_alias(&args.name, &args.alias, &args.version, &args.reason)
        .await?;
    println!(
        "{}@{}: {} -> {}",
        args.name,
        args.alias,
        before.as_deref().unwrap_or("(none)"),
        args.version
    );
    Ok(())
}
