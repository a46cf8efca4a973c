//! End-to-end tests of registered models served straight from the registry: `cerulean up` (its own
//! registry) and `cerulean serve --registry URL` (a separate `cerulean registry`). Candle models the
//! test writes itself are logged as run artifacts through the MLflow artifact API and registered;
//! the server must serve them within seconds, follow the `champion` alias without dropping a
//! request, report their real signature, and report a Python (pyfunc) model as unavailable.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cerulean_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use cerulean_proto::inference::model_infer_request::InferInputTensor;
use cerulean_proto::inference::{ModelInferRequest, ModelMetadataRequest, ModelReadyRequest};
use cerulean_registry::client::RegistryClient;
use common::{Server, http_get};
use serde_json::{Value, json};

/// How long a registry change may take to reach the server. Changes travel on the registry's watch
/// stream; the follower's 30 s poll would miss this deadline.
const WITHIN: Duration = Duration::from_secs(10);

/// The weights of a 2 → 3 → 2 MLP (ReLU, softmax).
struct Weights {
    w0: [[f32; 2]; 3],
    b0: [f32; 3],
    w1: [[f32; 3]; 2],
    b1: [f32; 2],
}

const FIRST: Weights = Weights {
    w0: [[0.5, -1.0], [1.0, 0.25], [-0.5, 0.75]],
    b0: [0.1, 0.0, -0.2],
    w1: [[1.0, -1.0, 0.5], [-0.5, 0.25, 2.0]],
    b1: [0.0, 0.3],
};

const SECOND: Weights = Weights {
    w0: [[-0.25, 0.5], [0.75, -1.0], [1.5, 0.5]],
    b0: [0.0, 0.2, 0.1],
    w1: [[-1.0, 0.5, 1.0], [0.5, -0.75, -1.0]],
    b1: [1.0, -1.0],
};

/// The input every check sends.
const X: [f32; 2] = [1.0, 2.0];

impl Weights {
    /// The model's files: `model.safetensors` and `model.json`.
    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tensors = [
            (
                "layers.0.weight",
                vec![3usize, 2],
                bytes(self.w0.as_flattened()),
            ),
            ("layers.0.bias", vec![3], bytes(&self.b0)),
            ("layers.1.weight", vec![2, 3], bytes(self.w1.as_flattened())),
            ("layers.1.bias", vec![2], bytes(&self.b1)),
        ];
        let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(name, shape, data)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    data,
                )
                .unwrap();
                (*name, view)
            })
            .collect();
        let weights = safetensors::serialize(views, None).unwrap();
        let spec = json!({
            "architecture": {"family": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 2,
                             "activation": "relu", "output_activation": "softmax"},
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                        {"name": "label", "datatype": "BYTES", "shape": [-1, 1]}],
            "labels": ["cat", "dog"]
        });
        vec![
            ("model.safetensors", weights),
            ("model.json", spec.to_string().into_bytes()),
        ]
    }

    /// The probabilities for `x`, computed here.
    fn reference(&self, x: [f32; 2]) -> [f32; 2] {
        let h: Vec<f32> = (0..3)
            .map(|o| (self.w0[o][0] * x[0] + self.w0[o][1] * x[1] + self.b0[o]).max(0.0))
            .collect();
        let z: Vec<f32> = (0..2)
            .map(|o| self.w1[o].iter().zip(&h).map(|(w, v)| w * v).sum::<f32>() + self.b1[o])
            .collect();
        let m = z[0].max(z[1]);
        let e = [(z[0] - m).exp(), (z[1] - m).exp()];
        [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
    }
}

/// An MLflow Python model: an `MLmodel` file and a pickle, nothing Cerulean can run.
fn pyfunc_files() -> Vec<(&'static str, Vec<u8>)> {
    let mlmodel = "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n";
    vec![
        ("MLmodel", mlmodel.as_bytes().to_vec()),
        ("model.pkl", b"\x80\x04not a real pickle".to_vec()),
    ]
}

/// One inference over REST: the version that answered and the probabilities, or the failure.
async fn infer(
    client: &reqwest::Client,
    base: &str,
    path: &str,
) -> Result<(String, [f32; 2]), String> {
    let body =
        json!({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [X]}]});
    let response = client
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{path}: {status} {text}"));
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text}"))?;
    let version = value["model_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let data: Vec<f32> = serde_json::from_value(value["outputs"][0]["data"].clone())
        .map_err(|e| format!("{path}: {e}: {text}"))?;
    match data.as_slice() {
        [a, b] => Ok((version, [*a, *b])),
        _ => Err(format!("{path}: unexpected outputs {text}")),
    }
}

fn close(a: [f32; 2], b: [f32; 2]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

/// Waits until an unversioned request of `name` is answered by `version` with `weights`' outputs.
async fn until_served(
    client: &reqwest::Client,
    server: &Server,
    name: &str,
    version: &str,
    weights: &Weights,
    what: &str,
) {
    let started = Instant::now();
    let mut last = Err(String::from("no request yet"));
    while started.elapsed() < WITHIN {
        last = infer(
            client,
            &server.base_url(),
            &format!("/v2/models/{name}/infer"),
        )
        .await;
        if let Ok((v, p)) = &last
            && v == version
            && close(*p, weights.reference(X))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what}: version {version} was not served within {WITHIN:?} (last answer {last:?})\n--- server log\n{}",
        server.log()
    );
}

/// Runs unversioned requests in a loop until stopped; returns the failures and the versions seen.
fn request_loop(
    client: reqwest::Client,
    base: String,
    name: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<String>, Vec<String>, usize)> {
    tokio::spawn(async move {
        let (mut failures, mut versions, mut count) = (Vec::new(), Vec::new(), 0);
        while !stop.load(Ordering::SeqCst) {
            match infer(&client, &base, &format!("/v2/models/{name}/infer")).await {
                Ok((version, _)) => {
                    if versions.last() != Some(&version) {
                        versions.push(version);
                    }
                }
                Err(err) => failures.push(err),
            }
            count += 1;
        }
        (failures, versions, count)
    })
}

/// The whole scenario against a server that follows the registry at `registry_url`.
async fn registered_models_are_served(server: &Server, registry_url: &str) {
    let registry = RegistryClient::new(registry_url, None).unwrap();
    let client = common::http_client();
    let base = server.base_url();
    let name = "pets";

    // Version 1 is served within seconds of its registration, with its real signature.
    common::register_model(&registry, name, &FIRST.files()).await;
    until_served(&client, server, name, "1", &FIRST, "a new model").await;
    let metadata: Value = client
        .get(format!("{base}/v2/models/{name}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["name"], name);
    assert_eq!(metadata["platform"], "candle");
    assert_eq!(
        metadata["inputs"],
        json!([{"name": "features", "datatype": "FP32", "shape": [-1, 2]}])
    );
    assert_eq!(
        metadata["outputs"],
        json!([{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
               {"name": "label", "datatype": "BYTES", "shape": [-1, 1]}])
    );

    // Version 2 takes over unversioned requests (no champion: the newest); version 1 still answers.
    common::register_model(&registry, name, &SECOND.files()).await;
    until_served(&client, server, name, "2", &SECOND, "the newest version").await;
    let (version, probabilities) = infer(
        &client,
        &base,
        &format!("/v2/models/{name}/versions/1/infer"),
    )
    .await
    .unwrap();
    assert_eq!(version, "1");
    assert!(close(probabilities, FIRST.reference(X)));
    let (status, _) = http_get(&server.http, &format!("/v2/models/{name}/versions/1")).unwrap();
    assert_eq!(status, 200);

    // The champion alias moves back and forth under a steady request load: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..4)
        .map(|_| request_loop(client.clone(), base.clone(), name.to_string(), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    registry
        .set_alias(name, "champion", "1", "rollback")
        .await
        .unwrap();
    until_served(&client, server, name, "1", &FIRST, "champion -> 1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    registry
        .set_alias(name, "champion", "2", "promote")
        .await
        .unwrap();
    until_served(&client, server, name, "2", &SECOND, "champion -> 2").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    let mut seen = Vec::new();
    for handle in loops {
        let (failures, versions, count) = handle.await.unwrap();
        assert!(
            failures.is_empty(),
            "requests failed while the champion moved: {failures:?}"
        );
        total += count;
        seen.extend(versions);
    }
    assert!(total > 10, "only {total} requests ran");
    assert!(seen.contains(&"1".to_string()), "{seen:?}");

    // gRPC: metadata, readiness and inference follow the champion too.
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let metadata = grpc
        .model_metadata(ModelMetadataRequest {
            name: name.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.inputs[0].name, "features");
    assert_eq!(metadata.inputs[0].datatype, "FP32");
    assert_eq!(metadata.inputs[0].shape, vec![-1, 2]);
    let outputs: Vec<&str> = metadata.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["probabilities", "label"]);
    // Version 1 is ready (or, when the server keeps only the newest version and the champion, it
    // loads again on request: readiness says "not yet" until it is).
    let started = Instant::now();
    loop {
        let ready = grpc
            .model_ready(ModelReadyRequest {
                name: name.into(),
                version: "1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if ready.ready {
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "version 1 never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = grpc
        .model_infer(ModelInferRequest {
            model_name: name.into(),
            inputs: vec![InferInputTensor {
                name: "features".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2],
                ..Default::default()
            }],
            raw_input_contents: vec![X.iter().flat_map(|x| x.to_le_bytes()).collect()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.model_version, "2");
    let probabilities: Vec<f32> = response.raw_output_contents[0]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(close(
        [probabilities[0], probabilities[1]],
        SECOND.reference(X)
    ));

    // A Python model is reported unavailable, with the reason; the champion keeps serving.
    common::register_model(&registry, name, &pyfunc_files()).await;
    let started = Instant::now();
    let reason = loop {
        let index = common::post_json(&format!("{base}/v2/repository/index"), &json!({})).await;
        let entry = index.as_array().and_then(|entries| {
            entries
                .iter()
                .find(|e| e["name"] == name && e["version"] == "3")
                .cloned()
        });
        if let Some(entry) = entry {
            assert_eq!(entry["state"], "UNAVAILABLE", "{entry}");
            break entry["reason"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            started.elapsed() < WITHIN,
            "version 3 never appeared in {index}\n--- server log\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(reason.contains("pyfunc"), "{reason}");
    let (status, body) =
        http_get(&server.http, &format!("/v2/models/{name}/versions/3/ready")).unwrap();
    assert_eq!(status, 503, "{body}");
    let (version, _) = infer(&client, &base, &format!("/v2/models/{name}/infer"))
        .await
        .unwrap();
    assert_eq!(version, "2", "the champion keeps serving");
}

fn sqlite_uri(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("registry.db").display())
}

/// `cerulean up` serves the models registered in its own registry.
#[tokio::test(flavor = "multi_thread")]
async fn up_serves_models_registered_in_its_registry() {
    let data = tempfile::tempdir().unwrap();
    let (home, _keep) = common::home();
    let cache = data.path().join("cache");
    let server = Server::start(
        "up",
        &[
            "--backend-store-uri",
            &sqlite_uri(data.path()),
            "--artifacts-destination",
            data.path().join("artifacts").to_str().unwrap(),
            "--registry-cache",
            cache.to_str().unwrap(),
        ],
        &[("CERULEAN_HOME", home.as_path())],
    );
    registered_models_are_served(&server, &server.base_url()).await;
    assert!(
        cache.join("pets/1/model.safetensors").exists(),
        "the files are cached where --registry-cache says"
    );
}

/// `cerulean serve --registry URL` serves the models of a separate `cerulean registry`. It keeps only
/// the newest version loaded besides alias targets, so older versions load on request, and the old
/// champion is unloaded (after its requests in flight) as soon as the alias leaves it.
#[tokio::test(flavor = "multi_thread")]
async fn serve_follows_a_separate_registry() {
    let data = tempfile::tempdir().unwrap();
    let home = data.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let registry = Server::start_registry(
        &[
            "--backend-store-uri",
            &sqlite_uri(data.path()),
            "--artifacts-destination",
            data.path().join("artifacts").to_str().unwrap(),
        ],
        &[("CERULEAN_HOME", home.as_path())],
    );
    let server = Server::start(
        "serve",
        &[
            "--registry",
            &registry.base_url(),
            "--registry-versions",
            "1",
        ],
        &[("CERULEAN_HOME", home.as_path())],
    );
    registered_models_are_served(&server, &registry.base_url()).await;
    assert!(home.join("registry-models/pets/2/model.json").exists());
}
