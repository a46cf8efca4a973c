//! End-to-end test of the sentiment binding: a text classifier trained here (MiniLM embeddings
//! and a logistic head, on `trainer/tests/common/sentiment.rs`) is logged as run artifacts,
//! registered and made `champion` in `cerulean up`'s own registry; with
//! `CERULEAN_SENTIMENT_MODEL=models:/my-sentiment@champion`, the real `azure-ai-textanalytics`
//! client's analyze_sentiment is answered by it (`tests/python/sentiment_binding_e2e.py`).
//!
//! Uses the prebuilt models under `cerulean_models::cerulean_home()` (`CERULEAN_HOME`, which
//! `.ci/run` points at a cache): the trainer embeds the texts with the encoder found there.

#[path = "../trainer/tests/common/sentiment.rs"]
mod sentiment;

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cerulean_registry::client::RegistryClient;
use cerulean_trainer::{JobSpec, RecordingContext, load_dataset, train};
use common::{Server, http_get, pull_models, run_python};
use serde_json::{Value, json};

/// The registered model.
const NAME: &str = "my-sentiment";
/// New sentences (not in the training set), one per document.
const DOCUMENTS: [&str; 6] = [
    "The waiters were friendly and the dessert was wonderful.",
    "I love this little cafe, everything is delightful.",
    "The film was boring and the ending was terrible.",
    "My order arrived broken and the support was rude.",
    "The shop closes at six on Saturdays.",
    "The report is stored in the shared folder.",
];

/// Trains the classifier and returns its files.
async fn trained_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let path = dir.join("sentiment.jsonl");
    std::fs::write(&path, sentiment::jsonl()).unwrap();
    let spec = JobSpec::from_toml(&format!(
        "name = \"sentiment\"\n[dataset]\nuri = \"file://{}\"\nformat = \"jsonl\"\n\
         label = \"label\"\ntext_column = \"text\"\n[model]\nfamily = \"text-classifier\"\n\
         [train]\nepochs = 60\nbatch_size = 16\nlearning_rate = 0.01\n",
        path.display()
    ))
    .unwrap();
    let data = load_dataset(&spec.dataset).await.unwrap();
    let outcome = tokio::task::spawn_blocking(move || {
        train(&spec, &data, None, &mut RecordingContext::new())
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        outcome.metrics["val_accuracy"] >= 0.8,
        "{:?}",
        outcome.metrics
    );
    outcome.files
}

/// The classifier's own labels for `texts`, from its v2 model.
async fn classify(base: &str, texts: &[&str]) -> Vec<String> {
    let body = json!({
        "inputs": [{"name": "TEXT", "shape": [texts.len(), 1], "datatype": "BYTES", "data": texts}],
        "outputs": [{"name": "label"}]
    });
    let response = common::post_json(&format!("{base}/v2/models/{NAME}/infer"), &body).await;
    serde_json::from_value(response["outputs"][0]["data"].clone())
        .unwrap_or_else(|e| panic!("{e}: {response}"))
}

async fn analyze(base: &str, texts: &[&str]) -> (u16, Value) {
    let documents: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i.to_string(), "text": t, "language": "en"}))
        .collect();
    let response = common::http_client()
        .post(format!("{base}/text/analytics/v3.1/sentiment"))
        .json(&json!({ "documents": documents }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_sentiment_is_answered_by_the_bound_classifier() {
    let home = cerulean_models::cerulean_home();
    pull_models(&home);
    let data = tempfile::tempdir().unwrap();
    let files = trained_files(data.path()).await;

    let db = format!("sqlite://{}", data.path().join("registry.db").display());
    let artifacts = data.path().join("artifacts");
    let server = Server::start(
        "up",
        &[
            "--backend-store-uri",
            &db,
            "--artifacts-destination",
            artifacts.to_str().unwrap(),
            "--registry-cache",
            data.path().join("cache").to_str().unwrap(),
        ],
        &[
            ("CERULEAN_HOME", home.as_path()),
            (
                "CERULEAN_SENTIMENT_MODEL",
                Path::new("models:/my-sentiment@champion"),
            ),
        ],
    );
    let base = server.base_url();

    // Not registered yet: a 503 in Azure's envelope, no silent VADER answer.
    let (status, body) = analyze(&base, &DOCUMENTS[..1]).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("models:/my-sentiment@champion"), "{body}");

    let registry = RegistryClient::new(&base, None).unwrap();
    let version = common::register_model(&registry, NAME, &files).await;
    registry
        .set_alias(NAME, "champion", &version, "bind sentiment")
        .await
        .unwrap();
    let started = Instant::now();
    while !matches!(
        http_get(&server.http, &format!("/v2/models/{NAME}/ready")),
        Ok((200, _))
    ) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{NAME} is not served\n--- server log\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let labels = classify(&base, &DOCUMENTS).await;
    assert_eq!(
        labels,
        [
            "positive", "positive", "negative", "negative", "neutral", "neutral"
        ]
    );
    let expect = data.path().join("expect.json");
    let documents: Vec<(&str, &String)> = DOCUMENTS.iter().copied().zip(&labels).collect();
    let prefix = format!("{NAME}@champion (v{version})");
    std::fs::write(
        &expect,
        json!({"model_version_prefix": prefix, "documents": documents}).to_string(),
    )
    .unwrap();
    let output = run_python(
        "sentiment_binding_e2e.py",
        &["--http", &server.http, "--expect", expect.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
