//! Configuration: one TOML file, overridden by `CERULEAN_*` environment variables, overridden by
//! flags. Flags and variables are read by clap (each flag names its variable); this module reads the
//! file and supplies the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `[serve]`: the inference server.
    #[serde(default)]
    pub serve: ServeFileSettings,
    /// `[registry]`: the model registry and tracking server.
    #[serde(default)]
    pub registry: RegistryFileSettings,
    /// `[cognitive]`: the prebuilt cognitive services.
    #[serde(default)]
    pub cognitive: CognitiveFileSettings,
}

/// The `[cognitive]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitiveFileSettings {
    /// `[cognitive.sentiment]`.
    #[serde(default)]
    pub sentiment: SentimentFileSettings,
}

/// The `[cognitive.sentiment]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentFileSettings {
    /// `models:/NAME@champion` (or `models:/NAME/VERSION`): the registered text classifier that
    /// answers sentiment analysis instead of VADER.
    pub model: Option<String>,
}

/// The `[registry]` table; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFileSettings {
    /// The metadata store URI.
    pub backend_store_uri: Option<String>,
    /// The artifact destination URI.
    pub artifacts_destination: Option<String>,
    /// The API keys file.
    pub api_keys: Option<PathBuf>,
    /// Serve without keys on a non-loopback address.
    pub no_auth: Option<bool>,
    /// The URL clients reach the server at.
    pub public_url: Option<String>,
    /// `[[registry.webhook]]`: where registry events are POSTed.
    #[serde(default)]
    pub webhook: Vec<WebhookSettings>,
}

/// One `[[registry.webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The URL to POST to.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Cerulean-Signature` header.
    pub secret: String,
    /// The events to deliver (`version_created`, `alias_moved`, `stage_changed`); empty means all.
    #[serde(default)]
    pub events: Vec<cerulean_registry::events::EventKind>,
}

/// The `[serve]` table; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFileSettings {
    /// REST address.
    pub http_addr: Option<SocketAddr>,
    /// gRPC address.
    pub grpc_addr: Option<SocketAddr>,
    /// Model repository folders.
    pub model_repository: Option<Vec<PathBuf>>,
    /// Whether clients may load and unload models.
    pub model_control: Option<bool>,
    /// Largest HTTP body in bytes.
    pub http_body_limit: Option<usize>,
    /// Largest gRPC message in bytes.
    pub grpc_message_limit: Option<usize>,
    /// ONNX Runtime intra-op threads per instance.
    pub intra_op_threads: Option<usize>,
    /// ONNX Runtime inter-op threads per instance.
    pub inter_op_threads: Option<usize>,
    /// Where candle models compute (`cpu`, `cuda`, `cuda:N`).
    pub candle_device: Option<String>,
    /// Instances per model without an instance_group.
    pub instances: Option<usize>,
    /// max_batch_size for batchable models without one.
    pub default_max_batch_size: Option<usize>,
    /// Queue capacity per model version.
    pub queue_capacity: Option<usize>,
    /// The ONNX Runtime library.
    pub onnxruntime_library: Option<PathBuf>,
}

impl FileSettings {
    /// Reads `explicit`, or `$CERULEAN_HOME/cerulean.toml` when it exists, or nothing.
    pub fn load(explicit: Option<&Path>, home: &Path) -> anyhow::Result<FileSettings> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let default = home.join("cerulean.toml");
                if !default.exists() {
                    return Ok(FileSettings::default());
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_serve_table_and_refuses_unknown_keys() {
        let settings: FileSettings = toml::from_str(
            "[serve]\nhttp_addr = \"0.0.0.0:9000\"\nmodel_repository = [\"/models\"]\nintra_op_threads = 2\n",
        )
        .unwrap();
        assert_eq!(
            settings.serve.http_addr,
            Some("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(settings.serve.intra_op_threads, Some(2));
        assert!(toml::from_str::<FileSettings>("[serve]\nhttp_adr = \"x\"\n").is_err());
        let registry: FileSettings = toml::from_str(
            "[registry]\nbackend_store_uri = \"postgresql://u@h/db\"\n\
             [[registry.webhook]]\nurl = \"http://ci/hook\"\nsecret = \"s\"\nevents = [\"alias_moved\"]\n",
        )
        .unwrap();
        assert_eq!(registry.registry.webhook.len(), 1);
        assert_eq!(
            registry.registry.backend_store_uri.as_deref(),
            Some("postgresql://u@h/db")
        );
    }

    #[test]
    fn reads_the_sentiment_binding() {
        let settings: FileSettings =
            toml::from_str("[cognitive.sentiment]\nmodel = \"models:/s@champion\"\n").unwrap();
        assert_eq!(
            settings.cognitive.sentiment.model.as_deref(),
            Some("models:/s@champion")
        );
        assert!(toml::from_str::<FileSettings>("[cognitive.sentiment]\nmodle = \"x\"\n").is_err());
    }

    #[test]
    fn a_missing_default_file_is_no_error() {
        let home = tempfile::tempdir().unwrap();
        let settings = FileSettings::load(None, home.path()).unwrap();
        assert!(settings.serve.http_addr.is_none());
        assert!(FileSettings::load(Some(&home.path().join("absent.toml")), home.path()).is_err());
    }
}
