//! Shared helpers for the end-to-end tests: start `cerulean` on free ports, find the Python
//! environment that `.ci/setup-python.sh` made, and run the Python client checks.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `CERULEAN_HOME` shared with the rest of the suite (`.ci/run` points it at a cache), so the
/// downloads happen once per machine; a private one (kept while the guard lives) when unset.
pub fn home() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("CERULEAN_HOME") {
        Some(home) if !home.is_empty() => (PathBuf::from(home), None),
        _ => {
            let dir = tempfile::tempdir().unwrap();
            (dir.path().to_path_buf(), Some(dir))
        }
    }
}

/// Runs `cerulean models pull` (every entry) into `home`, asserts that it succeeded, and returns
/// what it printed.
pub fn pull_models(home: &Path) -> String {
    let pull = cerulean()
        .args(["models", "pull", "--no-progress"])
        .env("CERULEAN_HOME", home)
        .output()
        .unwrap();
    assert!(
        pull.status.success(),
        "cerulean models pull failed:\n{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    String::from_utf8_lossy(&pull.stdout).into_owned()
}

/// The `cerulean` binary built for this test run.
pub fn cerulean() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cerulean"))
}

/// The Python interpreter of the test virtual environment (`.ci/setup-python.sh` creates it).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("CERULEAN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cache/cerulean/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash .ci/setup-python.sh` (or `bash .ci/run`) first",
        python.display()
    );
    python
}

/// The Python interpreter of the mlflow client environment (`.ci/setup-mlflow.sh` creates it).
pub fn mlflow_python() -> PathBuf {
    let venv = std::env::var_os("CERULEAN_MLFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cache/cerulean/mlflow-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash .ci/setup-mlflow.sh` (or `bash .ci/run`) first",
        python.display()
    );
    python
}

fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

/// An HTTP client (rustls needs its crypto provider installed first).
pub fn http_client() -> reqwest::Client {
    cerulean_registry::install_tls_provider();
    reqwest::Client::new()
}

/// POSTs `body` as JSON to `url` and returns the JSON answer (whatever its status).
pub async fn post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
    http_client()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a Python script from `tests/python` and returns its output, failing with that output shown
/// when it exits non-zero.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let output = Command::new(python())
        .arg(repo_root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    println!("{stdout}");
    output
}

/// Writes the fixture model repository (small ONNX models) into `dir`.
pub fn make_fixtures(dir: &Path) {
    run_python("make_fixtures.py", &[dir.to_str().unwrap()]);
}

/// A running `cerulean` process, killed when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT` of the REST endpoint.
    pub http: String,
    /// `127.0.0.1:PORT` of the gRPC endpoint.
    pub grpc: String,
    log: PathBuf,
    argv: Vec<String>,
    env: Vec<(String, PathBuf)>,
    ready_path: &'static str,
    _log_dir: tempfile::TempDir,
}

impl Server {
    /// Starts `cerulean <command> <args>` on free ports and waits until it reports ready.
    pub fn start(command: &str, args: &[&str], env: &[(&str, &Path)]) -> Server {
        Server::start_on(command, args, env, None)
    }

    /// Starts `cerulean registry <args>` (HTTP only) and waits until it answers `/health`.
    pub fn start_registry(args: &[&str], env: &[(&str, &Path)]) -> Server {
        Server::start_on(
            "registry",
            args,
            env,
            Some(format!("127.0.0.1:{}", free_port())),
        )
    }

    /// Restarts the same command on the same addresses (after [`Server::kill`]).
    pub fn restart(&mut self) {
        let mut cmd = cerulean();
        cmd.args(&self.argv).stdout(Stdio::null()).stderr(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&self.log)
                .unwrap(),
        );
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        self.child = cmd.spawn().expect("cerulean starts");
        self.wait_ready(Duration::from_secs(120));
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start_on(
        command: &str,
        args: &[&str],
        env: &[(&str, &Path)],
        registry_only: Option<String>,
    ) -> Server {
        // A free port found by binding port 0 can be taken by another test before the server binds
        // it: start again on new ports when that is why the server stopped.
        for attempt in 1.. {
            let mut server = Server::spawn_on(command, args, env, registry_only.clone());
            match server.try_wait_ready(Duration::from_secs(120)) {
                Ok(()) => return server,
                Err(log)
                    if attempt < 5
                        && registry_only.is_none()
                        && log.contains("Address already in use") =>
                {
                    continue;
                }
                Err(log) => panic!("cerulean did not become ready:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn spawn_on(
        command: &str,
        args: &[&str],
        env: &[(&str, &Path)],
        registry_only: Option<String>,
    ) -> Server {
        let http = registry_only
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        let grpc = format!("127.0.0.1:{}", free_port());
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut argv: Vec<String> = std::iter::once(command.to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .chain(["--http-addr".to_string(), http.clone()])
            .collect();
        if registry_only.is_none() {
            argv.extend(["--grpc-addr".to_string(), grpc.clone()]);
        }
        let env: Vec<(String, PathBuf)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_path_buf()))
            .collect();
        let mut cmd = cerulean();
        cmd.args(&argv).stdout(Stdio::null()).stderr(log_file);
        for (key, value) in &env {
            cmd.env(key, value);
        }
        let child = cmd.spawn().expect("cerulean starts");
        Server {
            child,
            http,
            grpc,
            log,
            argv,
            env,
            ready_path: if registry_only.is_some() {
                "/health"
            } else {
                "/v2/health/ready"
            },
            _log_dir: log_dir,
        }
    }

    fn wait_ready(&mut self, timeout: Duration) {
        if let Err(log) = self.try_wait_ready(timeout) {
            panic!("cerulean did not become ready:\n{log}");
        }
    }

    /// Waits until the server answers ready; on failure (it exited, or the time ran out) returns
    /// what it logged.
    fn try_wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early ({status}):\n{}", self.log()));
            }
            if let Ok((200, _)) = http_get(&self.http, self.ready_path) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("never became ready:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/v2/models/{model}/ready` answers 200, failing with the server's log after
    /// `timeout`.
    pub fn wait_model_ready(&self, model: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let path = format!("/v2/models/{model}/ready");
        while !matches!(http_get(&self.http, &path), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "{model} was not served within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 GET, for readiness polling without an async runtime.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

/// Logs `files` as the `model` artifact folder of a new run (through the MLflow artifact API) and
/// registers them as a new version of `name`; returns the version.
pub async fn register_model<F: AsRef<str>>(
    client: &cerulean_registry::client::RegistryClient,
    name: &str,
    files: &[(F, Vec<u8>)],
) -> String {
    let experiment = client
        .ensure_experiment("registered-by-tests")
        .await
        .unwrap();
    let run = client
        .create_run(&experiment, "train", 0, &[])
        .await
        .unwrap();
    let root = run
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .unwrap_or_else(|| panic!("artifact URI {}", run.info.artifact_uri))
        .to_string();
    for (file, bytes) in files {
        client
            .upload_artifact(&format!("{root}/model/{}", file.as_ref()), bytes.clone())
            .await
            .unwrap();
    }
    client.ensure_registered_model(name).await.unwrap();
    let run_id = run.info.run_id.clone();
    client
        .create_model_version(
            name,
            &format!("runs:/{run_id}/model"),
            Some(&run_id),
            "",
            &[],
        )
        .await
        .unwrap()
        .version
}
