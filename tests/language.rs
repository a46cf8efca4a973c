//! End-to-end test of the language services behind `cerulean up`: the real
//! `azure-ai-textanalytics` client (Language API and Text Analytics v3.x paths), `tritonclient` on
//! the `language-detection` and `embeddings` v2 models, and `POST /v1/embeddings`
//! (`tests/python/language_e2e.py` holds the checks).

mod common;

use common::{Server, home, http_get, pull_models, run_python};

/// The v2 models `cerulean up` must serve for the language routes.
const LANGUAGE_MODELS: [&str; 5] = [
    "language-detection",
    "sentiment",
    "key-phrases",
    "pii",
    "embeddings",
];

#[test]
fn azure_and_openai_clients_work_against_up() {
    let (home, _keep) = home();
    pull_models(&home);

    let server = Server::start("up", &[], &[("CERULEAN_HOME", home.as_path())]);
    let missing: Vec<&str> = LANGUAGE_MODELS
        .iter()
        .copied()
        .filter(|model| {
            !matches!(
                http_get(&server.http, &format!("/v2/models/{model}/ready")),
                Ok((200, _))
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "`cerulean up` does not serve the language models {missing:?}: the pipelines and \
         cerulean_cognitive::azure::router / openai::router must be wired into `up`\n--- server log\n{}",
        server.log()
    );

    // The routes answer POST only: a GET gets 405 when they are mounted, 404 when they are not.
    for path in [
        "/language/:analyze-text?api-version=2023-04-01",
        "/text/analytics/v3.1/languages",
        "/v1/embeddings",
    ] {
        let status = http_get(&server.http, path).map(|(s, _)| s).unwrap_or(0);
        assert_eq!(
            status, 405,
            "GET {path} answered {status}: the Azure / OpenAI routes are not mounted by `cerulean up`"
        );
    }

    let output = run_python(
        "language_e2e.py",
        &["--http", &server.http, "--grpc", &server.grpc],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
