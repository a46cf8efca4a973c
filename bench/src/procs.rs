//! Starting, waiting for and stopping the servers under test.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::load::http_get;

/// A server process started by the bench; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerProcess {
    /// What it is, for messages.
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Its REST address.
    pub http: SocketAddr,
    /// Its gRPC address.
    pub grpc: SocketAddr,
    child: Child,
}

impl ServerProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: PathBuf,
        http: SocketAddr,
        grpc: SocketAddr,
    ) -> anyhow::Result<ServerProcess> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(ServerProcess {
            name: name.to_string(),
            log,
            http,
            grpc,
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /v2/models/{m}/ready` answers 200 for every model, or fails with the end
    /// of the server's log when it exits or `timeout` passes.
    pub async fn wait_ready(&mut self, models: &[&str], timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<&str> = models.to_vec();
        while !pending.is_empty() {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after {timeout:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let path = format!("/v2/models/{}/ready", pending[0]);
            let probe =
                tokio::time::timeout(Duration::from_secs(2), http_get(self.http, &path)).await;
            match probe {
                Ok(Ok((status, _))) if status.is_success() => {
                    pending.remove(0);
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Ok(())
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server: SIGTERM, up to 10 s to finish, then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// The `cerulean` binary: the flag, else the one next to this binary, else `target/release/cerulean`
/// under `$CARGO_TARGET_DIR` or the workspace.
pub fn find_server_binary(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("cerulean"));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("release/cerulean"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/cerulean"));
    candidates.into_iter().find(|p| p.is_file()).context(
        "no cerulean binary found: build it with `cargo build --release -p cerulean` or pass --server-bin",
    )
}

/// A Python interpreter: the flag, else the venv at `~/.cache/cerulean/VENV`, else `python3`.
pub fn find_python(flag: Option<&Path>, venv: &str) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    std::env::var_os("HOME")
        .map(|home| {
            PathBuf::from(home)
                .join(".cache/cerulean")
                .join(venv)
                .join("bin/python")
        })
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The bench's Python scripts (`make_bench_models.py`, `kserve_server.py`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}
