//! End-to-end tests of `cerulean serve`: the stock Python `tritonclient` (HTTP and gRPC) against the
//! fixture repository, and Rust clients for the error paths, the candle backend and metrics.

mod common;

use std::path::Path;
use std::sync::Arc;

use cerulean_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use cerulean_proto::inference::model_infer_request::InferInputTensor;
use cerulean_proto::inference::{ModelInferRequest, ModelReadyRequest, RepositoryModelLoadRequest};
use common::{Server, make_fixtures, run_python};
use serde_json::{Value, json};

fn fixture_server(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let repo = tempfile::tempdir().unwrap();
    make_fixtures(repo.path());
    let mut args = vec!["--model-repository", repo.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    (Server::start("serve", &args, &[]), repo)
}

/// The stock tritonclient drives every protocol feature; outputs are compared with onnxruntime's.
#[test]
fn tritonclient_http_and_grpc_work_unchanged() {
    let (server, repo) = fixture_server(&[]);
    let output = run_python(
        "triton_e2e.py",
        &[
            "--http",
            &server.http,
            "--grpc",
            &server.grpc,
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

fn mlp_request(rows: usize) -> Value {
    let data: Vec<f32> = (0..rows * 16).map(|i| (i as f32 - 20.0) / 7.0).collect();
    json!({"id": "r1", "inputs": [{"name": "INPUT0", "shape": [rows, 16], "datatype": "FP32", "data": data}]})
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// REST, binary REST and gRPC give the same numbers, and every error is a JSON body that names what
/// is wrong, with Triton's status.
#[tokio::test(flavor = "multi_thread")]
async fn rest_and_grpc_agree_and_errors_are_clear() {
    let (server, _repo) = fixture_server(&["--http-body-limit", "65536"]);
    let base = server.base_url();
    let client = common::http_client();

    let (status, json_out) = post(
        &client,
        format!("{base}/v2/models/mlp/versions/1/infer"),
        mlp_request(3),
    )
    .await;
    assert_eq!(status, 200, "{json_out}");
    assert_eq!(json_out["model_version"], "1");
    assert_eq!(json_out["id"], "r1");
    assert_eq!(json_out["outputs"][0]["shape"], json!([3, 4]));
    let json_values: Vec<f32> =
        serde_json::from_value(json_out["outputs"][0]["data"].clone()).unwrap();

    // The same request over gRPC with raw contents.
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let input: Vec<u8> = (0..48)
        .flat_map(|i| ((i as f32 - 20.0) / 7.0).to_le_bytes())
        .collect();
    let response = grpc
        .model_infer(ModelInferRequest {
            model_name: "mlp".into(),
            model_version: "1".into(),
            inputs: vec![InferInputTensor {
                name: "INPUT0".into(),
                datatype: "FP32".into(),
                shape: vec![3, 16],
                ..Default::default()
            }],
            raw_input_contents: vec![input.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let grpc_values: Vec<f32> = response.raw_output_contents[0]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(json_values.len(), 12);
    for (a, b) in json_values.iter().zip(&grpc_values) {
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            "{json_values:?} vs {grpc_values:?}"
        );
    }

    // Errors over REST: status and a JSON body naming the problem.
    let cases = [
        ("/v2/models/nope/infer", mlp_request(1), 404, "nope"),
        ("/v2/models/mlp/versions/9/infer", mlp_request(1), 404, "9"),
        ("/v2/models/mlp/infer", mlp_request(9), 400, "INPUT0"),
        (
            "/v2/models/mlp/infer",
            json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [1, 2]}]}),
            400,
            "INPUT0",
        ),
        (
            "/v2/models/mlp/infer",
            json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]}]}),
            400,
            "INPUT0",
        ),
        ("/v2/models/mlp/infer", json!({"inputs": []}), 400, "INPUT0"),
        ("/v2/models/broken/infer", mlp_request(1), 503, "broken"),
    ];
    for (path, body, want, names) in cases {
        let (status, body) = post(&client, format!("{base}{path}"), body).await;
        assert_eq!(status, want, "{path}: {body}");
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no error field in {body}"));
        assert!(
            message.contains(names),
            "{path}: '{message}' should name {names}"
        );
    }
    let big = json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": vec![0.5f32; 20000]}]});
    // The server answers 413 without reading the rest of the body and closes that connection, so the
    // oversized request goes on a client of its own: a pooled connection would race that close.
    let (status, body) = post(
        &reqwest::Client::new(),
        format!("{base}/v2/models/mlp/infer"),
        big,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("65536"), "{body}");
    let (status, body) = post(&client, format!("{base}/v2/no/such/route"), json!({})).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());

    // Errors over gRPC: status codes to match.
    let not_found = grpc
        .model_infer(ModelInferRequest {
            model_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(not_found.code(), tonic::Code::NotFound);
    let ready = grpc
        .model_ready(ModelReadyRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !ready.ready,
        "unknown models are not ready, and that is no error"
    );
}

/// With `--no-model-control`, load and unload are refused and the models stay.
#[tokio::test(flavor = "multi_thread")]
async fn model_control_can_be_switched_off() {
    let (server, _repo) = fixture_server(&["--no-model-control"]);
    let client = common::http_client();
    let (status, body) = post(
        &client,
        format!("{}/v2/repository/models/simple/unload", server.base_url()),
        json!({}),
    )
    .await;
    assert_eq!(status, 501, "{body}");
    assert!(body["error"].as_str().unwrap().contains("model control"));
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let err = grpc
        .repository_model_load(RepositoryModelLoadRequest {
            model_name: "simple".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let (status, _) = common::http_get(&server.http, "/v2/models/simple/ready").unwrap();
    assert_eq!(status, 200);
}

/// Prometheus text with per-model histograms after some traffic.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_report_histograms_per_model() {
    let (server, _repo) = fixture_server(&[]);
    let client = common::http_client();
    for _ in 0..3 {
        let (status, _) = post(
            &client,
            format!("{}/v2/models/mlp/infer", server.base_url()),
            mlp_request(2),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (_, _) = post(
        &client,
        format!("{}/v2/models/mlp/infer", server.base_url()),
        mlp_request(20),
    )
    .await;
    let (status, text) = common::http_get(&server.http, "/metrics").unwrap();
    assert_eq!(status, 200);
    for needle in [
        r#"cerulean_inference_request_success_total{model="mlp",version="2"} 3"#,
        r#"cerulean_inference_request_failure_total{model="mlp",version="2"} 1"#,
        "# TYPE cerulean_inference_request_duration_seconds histogram",
        r#"cerulean_inference_queue_duration_seconds_count{model="mlp",version="2"} 3"#,
        r#"cerulean_inference_batch_size_sum{model="mlp",version="2"} 6"#,
        r#"cerulean_inference_queue_depth{model="mlp",version="2"} 0"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

/// Writes a candle MLP (2 → 3 → 2, known weights) as `model.safetensors` + `model.json`.
fn write_candle_model(dir: &Path) {
    let w0: Vec<f32> = vec![0.5, -1.0, 1.0, 0.25, -0.5, 0.75];
    let b0: Vec<f32> = vec![0.1, 0.0, -0.2];
    let w1: Vec<f32> = vec![1.0, -1.0, 0.5, -0.5, 0.25, 2.0];
    let b1: Vec<f32> = vec![0.0, 0.3];
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let tensors = [
        ("layers.0.weight", vec![3usize, 2], bytes(&w0)),
        ("layers.0.bias", vec![3], bytes(&b0)),
        ("layers.1.weight", vec![2, 3], bytes(&w1)),
        ("layers.1.bias", vec![2], bytes(&b1)),
    ];
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            (
                *name,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let spec = json!({
        "architecture": {"family": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 2, "activation": "relu",
                         "output_activation": "softmax"},
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1, 1]}],
        "labels": ["cat", "dog"]
    });
    std::fs::write(dir.join("model.json"), spec.to_string()).unwrap();
}

fn candle_reference(x: [f32; 2]) -> [f32; 2] {
    let w0 = [[0.5, -1.0], [1.0, 0.25], [-0.5, 0.75]];
    let b0 = [0.1, 0.0, -0.2];
    let w1 = [[1.0, -1.0, 0.5], [-0.5, 0.25, 2.0]];
    let b1 = [0.0, 0.3];
    let h: Vec<f32> = (0..3)
        .map(|o| (w0[o][0] * x[0] + w0[o][1] * x[1] + b0[o]).max(0.0))
        .collect();
    let z: Vec<f32> = (0..2)
        .map(|o| w1[o].iter().zip(&h).map(|(w, v)| w * v).sum::<f32>() + b1[o])
        .collect();
    let m = z[0].max(z[1]);
    let e = [(z[0] - m).exp(), (z[1] - m).exp()];
    [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
}

/// A model Cerulean trained (safetensors + model.json) is served by the candle backend.
#[tokio::test(flavor = "multi_thread")]
async fn candle_models_are_served() {
    let repo = tempfile::tempdir().unwrap();
    let version = repo.path().join("pets/1");
    std::fs::create_dir_all(&version).unwrap();
    write_candle_model(&version);
    let server = Server::start(
        "serve",
        &["--model-repository", repo.path().to_str().unwrap()],
        &[],
    );
    let client = common::http_client();
    let metadata: Value = client
        .get(format!("{}/v2/models/pets", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["platform"], "candle");
    assert_eq!(
        metadata["inputs"][0],
        json!({"name": "features", "datatype": "FP32", "shape": [-1, 2]})
    );
    let rows = [[1.0f32, 2.0], [-3.0, 0.5], [0.0, 0.0]];
    let (status, body) = post(
        &client,
        format!("{}/v2/models/pets/infer", server.base_url()),
        json!({"inputs": [{"name": "features", "shape": [3, 2], "datatype": "FP32", "data": rows}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let probabilities: Vec<f32> =
        serde_json::from_value(body["outputs"][0]["data"].clone()).unwrap();
    let labels: Vec<String> = serde_json::from_value(body["outputs"][1]["data"].clone()).unwrap();
    for (r, row) in rows.iter().enumerate() {
        let want = candle_reference(*row);
        assert!(
            (probabilities[2 * r] - want[0]).abs() < 1e-5,
            "{probabilities:?} vs {want:?}"
        );
        assert!((probabilities[2 * r + 1] - want[1]).abs() < 1e-5);
        assert_eq!(labels[r], if want[1] > want[0] { "dog" } else { "cat" });
    }
}

/// `--candle-device` names where candle models compute; a GPU this build or machine cannot open
/// stops the server at start-up with the reason.
#[test]
fn an_unusable_candle_device_stops_the_server_with_the_reason() {
    let repo = tempfile::tempdir().unwrap();
    let output = common::cerulean()
        .args(["serve", "--model-repository", repo.path().to_str().unwrap()])
        .args(["--http-addr", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--grpc-addr", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--candle-device", "tpu:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("candle_device") && stderr.contains("unknown device \"tpu:0\""),
        "{stderr}"
    );
    if cfg!(not(feature = "cuda")) {
        let output = common::cerulean()
            .args(["serve", "--model-repository", repo.path().to_str().unwrap()])
            .args(["--candle-device", "cuda:0"])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("no CUDA support"), "{stderr}");
    }
}

/// A binary-tensor request for the slow model (cheap to parse, so timings stay with the model) and
/// the value of its `Inference-Header-Content-Length`.
fn slow_request(rows: usize) -> (bytes::Bytes, usize) {
    let header = json!({"inputs": [{"name": "INPUT0", "shape": [rows, 1024], "datatype": "FP32",
                                     "parameters": {"binary_data_size": rows * 4096}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.resize(header.len() + rows * 4096, 0);
    (body.into(), header.len())
}

async fn post_slow(
    client: &reqwest::Client,
    url: &str,
    request: &(bytes::Bytes, usize),
) -> reqwest::Response {
    client
        .post(url)
        .header("Inference-Header-Content-Length", request.1)
        .body(request.0.clone())
        .send()
        .await
        .unwrap()
}

async fn slow_executions(client: &reqwest::Client, base: &str) -> u64 {
    let stats: Value = client
        .get(format!("{base}/v2/models/slow/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["model_stats"][0]["execution_count"].as_u64().unwrap()
}

/// Requests whose clients hang up while queued are dropped, not computed; a full queue answers 429.
#[tokio::test(flavor = "multi_thread")]
async fn abandoned_requests_are_skipped_and_full_queues_refuse() {
    let repo = tempfile::tempdir().unwrap();
    run_python("make_slow_model.py", &[repo.path().to_str().unwrap()]);
    let server = Server::start(
        "serve",
        &["--model-repository", repo.path().to_str().unwrap()],
        &[],
    );
    let base = server.base_url();
    let client = common::http_client();
    let infer_url = format!("{base}/v2/models/slow/infer");
    let before = slow_executions(&client, &base).await;
    // Bodies are built before the timeline starts, so every request reaches the server at once.
    let full = Arc::new(slow_request(256));
    let one_row = slow_request(1);

    // Keep the single instance busy.
    let busy = tokio::spawn({
        let client = client.clone();
        let url = infer_url.clone();
        let full = full.clone();
        async move { post_slow(&client, &url, &full).await.status().as_u16() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A client sends a request and hangs up while it waits in the queue.
    {
        use tokio::io::AsyncWriteExt;
        let (body, header_len) = &*full;
        let mut socket = tokio::net::TcpStream::connect(&server.http).await.unwrap();
        let head = format!(
            "POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Inference-Header-Content-Length: {header_len}\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(socket);
    }
    // A gRPC client that gives up after 100 ms.
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let mut abandoned = tonic::Request::new(ModelInferRequest {
        model_name: "slow".into(),
        inputs: vec![InferInputTensor {
            name: "INPUT0".into(),
            datatype: "FP32".into(),
            shape: vec![1, 1024],
            ..Default::default()
        }],
        raw_input_contents: vec![vec![0u8; 4096].into()],
        ..Default::default()
    });
    abandoned.set_timeout(std::time::Duration::from_millis(100));
    let err = grpc.model_infer(abandoned).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Cancelled, "{err}");
    assert_eq!(busy.await.unwrap(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        slow_executions(&client, &base).await - before,
        1,
        "only the request whose client stayed was computed"
    );

    // Fill the queue (capacity 2) behind a busy instance: the next request is refused with 429.
    let busy = tokio::spawn({
        let client = client.clone();
        let url = infer_url.clone();
        let full = full.clone();
        async move { post_slow(&client, &url, &full).await.status().as_u16() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            let url = infer_url.clone();
            let full = full.clone();
            tokio::spawn(async move { post_slow(&client, &url, &full).await.status().as_u16() })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let refused = post_slow(&client, &infer_url, &one_row).await;
    assert_eq!(refused.status().as_u16(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("queue"), "{body}");
    assert_eq!(busy.await.unwrap(), 200);
    for q in queued {
        assert_eq!(q.await.unwrap(), 200);
    }
}
