//! End-to-end tests of training as users run it: a `cerulean registry`, `cerulean worker`
//! processes, `cerulean train submit --wait` with the issue's job file on scikit-learn's real
//! datasets (Parquet in the lake → job → worker → registered version → v2 inference through
//! `cerulean serve --registry`), a worker killed with SIGKILL mid-training whose job another
//! worker finishes from the checkpoint, cancellation, failures, sweeps, the gRPC job service and
//! the dataset register.

mod common;
#[path = "../trainer/tests/common/sentiment.rs"]
mod sentiment;
#[path = "common/sklearn.rs"]
mod sklearn;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cerulean_proto::jobs::job_service_client::JobServiceClient;
use cerulean_proto::jobs::{
    ListJobsRequest, StreamLogsRequest, SubmitJobRequest, submit_job_request,
};
use cerulean_registry::client::RegistryClient;
use cerulean_registry::jobs::{Job, JobStatus};
use common::{Server, cerulean, free_port, http_client};
use serde_json::{Value, json};

/// A `cerulean worker` process, killed when dropped.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    fn start(registry: &str, extra: &[&str]) -> WorkerProcess {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let child = cerulean()
            .args(["worker", "--registry", registry])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cerulean worker starts");
        WorkerProcess {
            child,
            log,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A registry on SQLite in `dir`, with the job gRPC service on a free port.
fn start_registry(dir: &Path) -> (Server, String) {
    let grpc = format!("127.0.0.1:{}", free_port());
    let server = Server::start_registry(
        &[
            "--backend-store-uri",
            &format!("sqlite://{}", dir.join("registry.db").display()),
            "--artifacts-destination",
            dir.join("artifacts").to_str().unwrap(),
            "--grpc-addr",
            &grpc,
        ],
        &[],
    );
    (server, grpc)
}

/// scikit-learn's data folder, or `None` (the test then says it is skipped).
fn sklearn_data() -> Option<PathBuf> {
    let data = sklearn::sklearn_data();
    if data.is_none() {
        println!("skipped: scikit-learn's data files not found (run `bash .ci/setup-python.sh`)");
    }
    data
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(url: &str) -> RegistryClient {
    cerulean_registry::install_tls_provider();
    RegistryClient::new(url, None).unwrap()
}

/// Runs `cerulean train <args> --registry URL`; returns (success, stdout, stderr).
fn train(url: &str, args: &[&str]) -> (bool, String, String) {
    let output = cerulean()
        .arg("train")
        .args(args)
        .args(["--registry", url])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls the job until `done` holds (or fails after `timeout`).
fn wait_job(url: &str, id: &str, timeout: Duration, done: impl Fn(&Job) -> bool) -> Job {
    let client = client(url);
    let runtime = runtime();
    let deadline = Instant::now() + timeout;
    loop {
        let job = runtime.block_on(client.get_job(id)).unwrap();
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not get there in {timeout:?}: {job:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The issue's job file, as written there, on `data`.
fn digits_job(data: &Path) -> String {
    format!(
        r#"name = "digits-mlp"
experiment = "digits"
register_as = "digits"

[dataset]
uri = "file://{}"   # also az://container/path and s3://bucket/path
format = "parquet"                        # parquet | csv | jsonl | image-folder
label = "target"
validation_split = 0.2

[model]
family = "mlp"                            # see below
hidden = [64, 32]

[train]
epochs = 30
batch_size = 64
learning_rate = 0.001
device = "cpu"                            # cpu | cuda:0
seed = 42
"#,
        data.display()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A run's metric, last value.
fn run_metric(url: &str, run_id: &str, key: &str) -> f64 {
    let run = runtime().block_on(client(url).get_run(run_id)).unwrap();
    run.data
        .metrics
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("run {run_id} has no metric {key}: {:?}", run.data.metrics))
        .value
}

/// POSTs a v2 inference request with FP32 `features` and returns the response JSON.
fn infer(http: &str, model: &str, rows: &[Vec<f64>]) -> Value {
    let d = rows[0].len();
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    let body = json!({
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [rows.len(), d], "data": data}],
        "outputs": [{"name": "class_index"}],
    });
    runtime().block_on(async {
        let response = http_client()
            .post(format!("http://{http}/v2/models/{model}/infer"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{value}");
        value
    })
}

/// The issue's digits job and a breast-cancer logistic job, submitted with `--wait` to a
/// registry with a separate worker, registered, and served by `cerulean serve --registry`; the
/// gRPC job service and the dataset register see them.
#[test]
fn sklearn_jobs_train_register_and_serve() {
    let Some(data) = sklearn_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (registry, grpc) = start_registry(dir.path());
    let url = registry.base_url();
    let worker = WorkerProcess::start(&url, &[]);

    // The issue's job file, as written, through `train submit --wait`.
    let digits = sklearn::digits_parquet(&data, dir.path());
    let job_file = write(dir.path(), "job.toml", &digits_job(&digits));
    let (ok, stdout, stderr) = train(&url, &["submit", job_file.to_str().unwrap(), "--wait"]);
    assert!(
        ok,
        "submit --wait failed:\n{stdout}\n{stderr}\n--- worker\n{}",
        worker.log()
    );
    let job_id = stdout.lines().next().unwrap().trim().to_string();
    assert!(
        stdout.contains("epoch 30/30"),
        "progress is streamed:\n{stdout}"
    );
    assert!(stderr.contains("registered digits version 1"), "{stderr}");
    let job = runtime().block_on(client(&url).get_job(&job_id)).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    let result = job.result.clone().unwrap();
    assert_eq!(result["model"], "digits");
    assert_eq!(result["version"], "1");
    let run_id = job.run_id.clone().unwrap();
    let accuracy = run_metric(&url, &run_id, "final_val_accuracy");
    assert!(accuracy >= 0.95, "digits mlp held-out accuracy {accuracy}");

    // The run: a metric per epoch, the parameters, the dataset version it read.
    let runtime = runtime();
    let registry_client = client(&url);
    let history = runtime
        .block_on(registry_client.metric_history(&run_id, "val_accuracy"))
        .unwrap();
    assert_eq!(history.len(), 30, "{history:?}");
    let run = runtime.block_on(registry_client.get_run(&run_id)).unwrap();
    let params: Vec<(&str, &str)> = run
        .data
        .params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert!(
        params.contains(&("train.learning_rate", "0.001")),
        "{params:?}"
    );
    let inputs = serde_json::to_value(&run.inputs).unwrap();
    let digest = inputs["dataset_inputs"][0]["dataset"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        digest.starts_with("sha256:"),
        "the run records its dataset version: {inputs}"
    );
    let version = runtime
        .block_on(registry_client.get_model_version("digits", "1"))
        .unwrap();
    assert_eq!(version.run_id.as_deref(), Some(run_id.as_str()));
    let (ok, listed, _) = train(&url, &["list"]);
    assert!(
        ok && listed.contains(&job_id) && listed.contains("SUCCEEDED"),
        "{listed}"
    );
    let (ok, logs, _) = train(&url, &["logs", &job_id]);
    assert!(ok && logs.contains("epoch 1/30"), "{logs}");

    // Breast cancer, logistic regression.
    let cancer = sklearn::breast_cancer_parquet(&data, dir.path());
    let cancer_job = write(
        dir.path(),
        "cancer.toml",
        &format!(
            "name = \"cancer\"\nexperiment = \"cancer\"\nregister_as = \"breast-cancer\"\n\
             [dataset]\nuri = \"file://{}\"\nformat = \"parquet\"\nlabel = \"target\"\n\
             validation_split = 0.2\n[model]\nfamily = \"logistic\"\n\
             [train]\nepochs = 40\nbatch_size = 32\nlearning_rate = 0.01\nseed = 7\n",
            cancer.display()
        ),
    );
    let (ok, stdout, stderr) = train(&url, &["submit", cancer_job.to_str().unwrap(), "--wait"]);
    assert!(ok, "{stdout}\n{stderr}\n--- worker\n{}", worker.log());
    let cancer_id = stdout.lines().next().unwrap().trim().to_string();
    let cancer_run = runtime
        .block_on(registry_client.get_job(&cancer_id))
        .unwrap()
        .run_id
        .unwrap();
    let accuracy = run_metric(&url, &cancer_run, "final_val_accuracy");
    assert!(
        accuracy >= 0.95,
        "breast cancer logistic held-out accuracy {accuracy}"
    );

    // Served from the registry: the digits model answers with the real signature, and its
    // predictions match the labels.
    let home = tempfile::tempdir().unwrap();
    let serve = Server::start(
        "serve",
        &["--registry", &url],
        &[("CERULEAN_HOME", home.path())],
    );
    serve.wait_model_ready("digits", Duration::from_secs(60));
    let (status, metadata) = common::http_get(&serve.http, "/v2/models/digits").unwrap();
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["inputs"][0]["name"], "features");
    assert_eq!(metadata["inputs"][0]["datatype"], "FP32");
    assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 64]));
    let outputs: Vec<&str> = metadata["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        outputs.contains(&"class_index") && outputs.contains(&"label"),
        "{metadata}"
    );
    let text = {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(data.join("digits.csv.gz")).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    let rows = sklearn::parse_rows(&text);
    let features: Vec<Vec<f64>> = rows.iter().map(|r| r[..64].to_vec()).collect();
    // In requests of 32 rows: the server's default max_batch_size.
    let predicted: Vec<Value> = features
        .chunks(32)
        .flat_map(|chunk| {
            let response = infer(&serve.http, "digits", chunk);
            response["outputs"][0]["data"].as_array().unwrap().clone()
        })
        .collect();
    let right = predicted
        .iter()
        .zip(&rows)
        .filter(|(p, r)| p.as_f64() == Some(r[64]))
        .count();
    let served_accuracy = right as f64 / rows.len() as f64;
    assert!(served_accuracy >= 0.95, "served accuracy {served_accuracy}");

    // The gRPC job service lists both, and streams the first one's log.
    runtime.block_on(async {
        let mut jobs = JobServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let listed = jobs
            .list_jobs(ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.jobs.len(), 2);
        assert!(listed.jobs.iter().all(|j| j.status == "SUCCEEDED"));
        let mut stream = jobs
            .stream_logs(StreamLogsRequest {
                job_id: job_id.clone(),
                after_seq: 0,
                follow: true,
            })
            .await
            .unwrap()
            .into_inner();
        let mut lines = Vec::new();
        while let Some(line) = stream.message().await.unwrap() {
            lines.push(line.line);
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains("registered digits version 1")),
            "{lines:?}"
        );
        // A bad spec over gRPC is INVALID_ARGUMENT naming the field.
        let refused = jobs
            .submit_job(SubmitJobRequest {
                spec: Some(submit_job_request::Spec::SpecToml(
                    digits_job(&digits).replace("epochs = 30", "epochs = 0"),
                )),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains("train.epochs"), "{refused:?}");
    });

    // The dataset register: the same content is the same version.
    let uri = format!("file://{}", digits.display());
    for _ in 0..2 {
        let output = cerulean()
            .args(["datasets", "register", "digits", &uri, "--registry", &url])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("digits version 1: 1797 rows, digest sha256:"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&digest),
            "the register and the run agree: {stdout} vs {digest}"
        );
    }
}

/// Starts a second worker for the job `id`, whose first worker was killed, and waits until the
/// job succeeded on its second attempt.
fn take_over(url: &str, id: &str, first: &WorkerProcess) -> (WorkerProcess, Job) {
    let second = WorkerProcess::start(url, &["--lease-seconds", "2"]);
    let done = wait_job(url, id, Duration::from_secs(300), |j| {
        j.status.is_terminal()
    });
    assert_eq!(
        done.status,
        JobStatus::Succeeded,
        "{done:#?}\n--- first worker\n{}\n--- second worker\n{}",
        first.log(),
        second.log()
    );
    assert_eq!(done.attempts, 2);
    (second, done)
}

/// A worker killed with SIGKILL mid-training: its lease expires, another worker resumes the job
/// from the last checkpoint, and the run shows one continuous history.
#[test]
fn killed_worker_job_resumes_on_another_worker() {
    let Some(data) = sklearn_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (registry, _) = start_registry(dir.path());
    let url = registry.base_url();
    let digits = sklearn::digits_parquet(&data, dir.path());
    // Small batches make epochs slow enough to kill the worker between two of them.
    let epochs = 12;
    let job = digits_job(&digits)
        .replace("epochs = 30", &format!("epochs = {epochs}"))
        .replace("batch_size = 64", "batch_size = 2");
    let job_file = write(dir.path(), "job.toml", &job);
    let mut first = WorkerProcess::start(&url, &["--lease-seconds", "2"]);
    let (ok, stdout, stderr) = train(&url, &["submit", job_file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let id = stdout.trim().to_string();
    // Kill it once it has checkpointed at least one epoch.
    let running = wait_job(&url, &id, Duration::from_secs(120), |j| {
        j.checkpoint_uri.is_some() || j.status.is_terminal()
    });
    assert_eq!(
        running.status,
        JobStatus::Running,
        "{running:#?}\n{}",
        first.log()
    );
    first.kill();
    let (second, done) = take_over(&url, &id, &first);
    assert!(second.log().contains("resuming from"), "{}", second.log());

    // One continuous history: every epoch's metrics are there, in order, on the one run.
    let runtime = runtime();
    let history = runtime
        .block_on(client(&url).metric_history(done.run_id.as_deref().unwrap(), "epoch"))
        .unwrap();
    let mut epochs_logged: Vec<i64> = history.iter().map(|m| m.value as i64).collect();
    epochs_logged.dedup();
    assert_eq!(
        epochs_logged,
        (1..=epochs).collect::<Vec<_>>(),
        "{history:?}"
    );
    let steps: Vec<i64> = history.iter().map(|m| m.step).collect();
    assert!(
        steps.windows(2).all(|w| w[0] <= w[1]),
        "steps go forward: {steps:?}"
    );
}

/// A sweep whose worker is killed after its first trial finished and while the second one
/// trains: the next worker keeps the finished trial (it is not trained again), continues the
/// second in its own child run from that run's checkpoint (one continuous history, no second run
/// for the trial), and registers the best.
#[test]
fn killed_worker_sweep_keeps_finished_trials_and_resumes_the_others() {
    let Some(data) = sklearn_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (registry, _) = start_registry(dir.path());
    let url = registry.base_url();
    let digits = sklearn::digits_parquet(&data, dir.path());
    let epochs = 6;
    let job = digits_job(&digits)
        .replace(
            "register_as = \"digits\"",
            "register_as = \"digits-resumed\"",
        )
        .replace("epochs = 30", &format!("epochs = {epochs}"))
        .replace("batch_size = 64", "batch_size = 2")
        .replace("learning_rate = 0.001", "learning_rate = [0.001, 0.002]")
        + "\n[sweep]\nstrategy = \"grid\"\nparallel = 1\n";
    let job_file = write(dir.path(), "sweep.toml", &job);
    let mut first = WorkerProcess::start(&url, &["--lease-seconds", "2"]);
    let (ok, stdout, stderr) = train(&url, &["submit", job_file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let id = stdout.trim().to_string();
    let client = client(&url);
    let runtime = runtime();
    let children = |parent: &str| {
        runtime.block_on(async {
            let experiment = runtime_experiment(&url, parent).await;
            client
                .search_runs(
                    &experiment,
                    &format!("tags.mlflow.parentRunId = '{parent}'"),
                )
                .await
                .unwrap()
        })
    };
    let trial_run = |runs: &[cerulean_registry::entities::Run], index: &str| {
        runs.iter()
            .find(|r| {
                r.data
                    .tags
                    .iter()
                    .any(|t| t.key == "cerulean.trial" && t.value == index)
            })
            .map(|r| r.info.run_id.clone())
    };
    // Kill the worker once trial 1 (trial 0 is finished by then) has checkpointed an epoch.
    let deadline = Instant::now() + Duration::from_secs(300);
    let parent = loop {
        let job = runtime.block_on(client.get_job(&id)).unwrap();
        assert!(!job.status.is_terminal(), "{job:#?}\n{}", first.log());
        if let (Some(parent), Some(checkpoint)) = (&job.run_id, &job.checkpoint_uri)
            && let Some(trial1) = trial_run(&children(parent), "1")
            && checkpoint.contains(&trial1)
        {
            break parent.clone();
        }
        assert!(Instant::now() < deadline, "{job:#?}\n{}", first.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    first.kill();
    let before = children(&parent);
    let trial0 = trial_run(&before, "0").unwrap();
    let trial0_history = runtime
        .block_on(client.metric_history(&trial0, "epoch"))
        .unwrap();

    let (second, done) = take_over(&url, &id, &first);
    let log = second.log();
    assert!(
        log.contains("trial 0: finished by an earlier attempt"),
        "{log}"
    );
    assert!(log.contains("trial 1: resuming from"), "{log}");
    let after = children(&parent);
    assert_eq!(after.len(), 2, "one child run per trial: {after:#?}");
    assert_eq!(
        runtime
            .block_on(client.metric_history(&trial0, "epoch"))
            .unwrap(),
        trial0_history,
        "the finished trial was not trained again"
    );
    let trial1 = trial_run(&after, "1").unwrap();
    let history = runtime
        .block_on(client.metric_history(&trial1, "epoch"))
        .unwrap();
    let mut epochs_logged: Vec<i64> = history.iter().map(|m| m.value as i64).collect();
    epochs_logged.dedup();
    assert_eq!(
        epochs_logged,
        (1..=epochs).collect::<Vec<_>>(),
        "{history:?}"
    );
    let result = done.result.unwrap();
    assert_eq!(result["model"], "digits-resumed");
    assert_eq!(result["version"], "1");
    let best = run_metric(&url, &parent, "best_val_accuracy");
    assert!(best > 0.9, "{best}");
}

/// Cancel stops a running job within seconds; a GPU job on a worker without one fails with a
/// clear error; a bad job file is refused naming its field; a sweep trains every trial as a child
/// run and registers the best.
#[test]
fn cancel_failures_and_sweeps() {
    let Some(data) = sklearn_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (registry, _) = start_registry(dir.path());
    let url = registry.base_url();
    let worker = WorkerProcess::start(&url, &["--gpu-grace-seconds", "0"]);
    let digits = sklearn::digits_parquet(&data, dir.path());

    // Cancel a running job.
    let long = digits_job(&digits)
        .replace("epochs = 30", "epochs = 10000")
        .replace("batch_size = 64", "batch_size = 2")
        .replace("register_as = \"digits\"\n", "");
    let long_file = write(dir.path(), "long.toml", &long);
    let (ok, stdout, stderr) = train(&url, &["submit", long_file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let id = stdout.trim().to_string();
    wait_job(&url, &id, Duration::from_secs(60), |j| {
        j.status == JobStatus::Running && j.progress.is_some()
    });
    let asked = Instant::now();
    let (ok, stdout, stderr) = train(&url, &["cancel", &id]);
    assert!(ok, "{stdout}{stderr}");
    let cancelled = wait_job(&url, &id, Duration::from_secs(15), |j| {
        j.status.is_terminal()
    });
    assert_eq!(cancelled.status, JobStatus::Cancelled, "{cancelled:#?}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let run = runtime()
        .block_on(client(&url).get_run(cancelled.run_id.as_deref().unwrap()))
        .unwrap();
    assert_eq!(serde_json::to_value(run.info.status).unwrap(), "KILLED");

    // A GPU job on a worker without one.
    let gpu = digits_job(&digits).replace("device = \"cpu\"", "device = \"cuda:0\"");
    let gpu_file = write(dir.path(), "gpu.toml", &gpu);
    let (ok, stdout, stderr) = train(&url, &["submit", gpu_file.to_str().unwrap(), "--wait"]);
    assert!(!ok, "a GPU job on a CPU worker must fail:\n{stdout}");
    assert!(
        stderr.contains("FAILED") && stderr.contains("CUDA"),
        "{stderr}"
    );

    // A bad job file is refused before anything is queued, naming the field.
    let bad = write(
        dir.path(),
        "bad.toml",
        &digits_job(&digits).replace("learning_rate = 0.001", "learning_rate = -1"),
    );
    let (ok, _, stderr) = train(&url, &["submit", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("train.learning_rate"), "{stderr}");
    // ... and by the REST API, with MLflow's error shape.
    let refused: Value = runtime().block_on(async {
        let response = http_client()
            .post(format!("{url}/api/2.0/cerulean/jobs/submit"))
            .json(&json!({"name": "bad", "spec": {"name": "bad", "dataset": {"uri": "file:///x"}, "model": {"family": "mlp"}, "train": {"epochs": 0}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        response.json().await.unwrap()
    });
    assert_eq!(
        refused["error_code"], "INVALID_PARAMETER_VALUE",
        "{refused}"
    );

    // A sweep: four trials, two at a time, each a child run; the best is registered.
    let sweep = digits_job(&digits)
        .replace("register_as = \"digits\"", "register_as = \"digits-sweep\"")
        .replace("hidden = [64, 32]", "hidden = [[16], [64, 32]]")
        .replace("epochs = 30", "epochs = 8")
        .replace("learning_rate = 0.001", "learning_rate = [0.001, 0.01]")
        + "\n[sweep]\nstrategy = \"grid\"\nparallel = 2\n";
    let sweep_file = write(dir.path(), "sweep.toml", &sweep);
    let (ok, stdout, stderr) = train(&url, &["submit", sweep_file.to_str().unwrap(), "--wait"]);
    assert!(ok, "{stdout}\n{stderr}\n--- worker\n{}", worker.log());
    let id = stdout.lines().next().unwrap().trim().to_string();
    let job = runtime().block_on(client(&url).get_job(&id)).unwrap();
    let result = job.result.unwrap();
    assert_eq!(result["model"], "digits-sweep");
    let parent = job.run_id.unwrap();
    let children = runtime().block_on(async {
        let search = json!({
            "experiment_ids": [runtime_experiment(&url, &parent).await],
            "filter": format!("tags.mlflow.parentRunId = '{parent}'"),
        });
        common::post_json(&format!("{url}/api/2.0/mlflow/runs/search"), &search).await
    });
    let children = children["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(children.len(), 4, "{children:?}");
    let best = run_metric(&url, &parent, "best_val_accuracy");
    let trial_accuracies: Vec<f64> = children
        .iter()
        .filter_map(|run| {
            run["data"]["metrics"]
                .as_array()?
                .iter()
                .find(|m| m["key"] == "val_accuracy")?["value"]
                .as_f64()
        })
        .collect();
    assert_eq!(trial_accuracies.len(), 4);
    let top = trial_accuracies.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        (best - top).abs() < 1e-9,
        "best {best} vs trials {trial_accuracies:?}"
    );
}

/// The experiment of a run.
async fn runtime_experiment(url: &str, run_id: &str) -> String {
    client(url)
        .get_run(run_id)
        .await
        .unwrap()
        .info
        .experiment_id
}

/// `cerulean up` trains too: its in-process worker runs a job submitted over gRPC, and the model
/// it registers is served on the same port.
#[test]
fn up_trains_in_process_and_serves_the_model() {
    let Some(data) = sklearn_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (home, _guard) = common::home();
    let server = Server::start(
        "up",
        &[
            "--backend-store-uri",
            &format!("sqlite://{}", dir.path().join("registry.db").display()),
            "--artifacts-destination",
            dir.path().join("artifacts").to_str().unwrap(),
        ],
        &[("CERULEAN_HOME", home.as_path())],
    );
    let cancer = sklearn::breast_cancer_parquet(&data, dir.path());
    let spec = format!(
        "name = \"cancer-up\"\nregister_as = \"cancer-up\"\n[dataset]\nuri = \"file://{}\"\n\
         format = \"parquet\"\nlabel = \"target\"\n[model]\nfamily = \"logistic\"\n\
         [train]\nepochs = 20\nbatch_size = 32\nlearning_rate = 0.01\n",
        cancer.display()
    );
    let runtime = runtime();
    let job_id = runtime.block_on(async {
        let mut jobs = JobServiceClient::connect(format!("http://{}", server.grpc))
            .await
            .unwrap();
        let reply = jobs
            .submit_job(SubmitJobRequest {
                spec: Some(submit_job_request::Spec::SpecToml(spec)),
            })
            .await
            .unwrap()
            .into_inner();
        reply.job.unwrap().job_id
    });
    let done = wait_job(&server.base_url(), &job_id, Duration::from_secs(120), |j| {
        j.status.is_terminal()
    });
    assert_eq!(
        done.status,
        JobStatus::Succeeded,
        "{done:#?}\n{}",
        server.log()
    );
    server.wait_model_ready("cancer-up", Duration::from_secs(30));
    let text = std::fs::read_to_string(data.join("breast_cancer.csv")).unwrap();
    let rows = sklearn::parse_rows(text.split_once('\n').unwrap().1);
    let features: Vec<Vec<f64>> = rows.iter().take(32).map(|r| r[..30].to_vec()).collect();
    let response = infer(&server.http, "cancer-up", &features);
    let predicted = response["outputs"][0]["data"].as_array().unwrap();
    let right = predicted
        .iter()
        .zip(&rows)
        .filter(|(p, r)| p.as_f64() == Some(r[30]))
        .count();
    assert!(right >= 28, "{right}/32 right: {response}");

    // A text classifier on the prebuilt MiniLM encoder, through the same worker: served with
    // text in, labels out.
    let texts = write(dir.path(), "sentiment.jsonl", &sentiment::jsonl());
    let spec = format!(
        "name = \"sentiment-up\"\nregister_as = \"sentiment-up\"\n[dataset]\nuri = \"file://{}\"\n\
         format = \"jsonl\"\nlabel = \"label\"\ntext_column = \"text\"\n[model]\n\
         family = \"text-classifier\"\n[train]\nepochs = 40\nbatch_size = 16\nlearning_rate = 0.01\n",
        texts.display()
    );
    let spec_file = write(dir.path(), "sentiment.toml", &spec);
    let (ok, stdout, stderr) = train(
        &server.base_url(),
        &["submit", spec_file.to_str().unwrap(), "--wait"],
    );
    assert!(ok, "{stdout}\n{stderr}\n{}", server.log());
    server.wait_model_ready("sentiment-up", Duration::from_secs(30));
    let body = json!({
        "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [2, 1],
                    "data": ["What a wonderful, delightful day, I loved every minute.",
                             "This was awful, broken and a complete waste of money."]}],
        "outputs": [{"name": "label"}],
    });
    // Both classifiers' labels for the two sentences.
    let labels_of = |model: &str| -> Value {
        runtime.block_on(common::post_json(
            &format!("http://{}/v2/models/{model}/infer", server.http),
            &body,
        ))
    };
    let labels = labels_of("sentiment-up");
    assert_eq!(
        labels["outputs"][0]["data"],
        json!(["positive", "negative"]),
        "{labels}"
    );

    // The same with the encoder fine-tuned: the registered version carries its encoder, tokenizer
    // and configuration, and the server's follower brings them down and serves it.
    let tuned = spec
        .replace("sentiment-up", "sentiment-tuned")
        .replace(
            "family = \"text-classifier\"\n",
            "family = \"text-classifier\"\nfine_tune_encoder = true\nmax_length = 32\n",
        )
        .replace("epochs = 40", "epochs = 8");
    let tuned_file = write(dir.path(), "tuned.toml", &tuned);
    let (ok, stdout, stderr) = train(
        &server.base_url(),
        &["submit", tuned_file.to_str().unwrap(), "--wait"],
    );
    assert!(ok, "{stdout}\n{stderr}\n{}", server.log());
    assert!(stdout.contains("all-MiniLM-L6-v2 fine-tuned"), "{stdout}");
    server.wait_model_ready("sentiment-tuned", Duration::from_secs(60));
    let labels = labels_of("sentiment-tuned");
    assert_eq!(
        labels["outputs"][0]["data"],
        json!(["positive", "negative"]),
        "{labels}"
    );
}
