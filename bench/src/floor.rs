//! The in-process floor: the same ONNX file called straight through `ort`, with no server, no
//! network and no serialisation. What a server can at best reach with the same threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use serde::Serialize;

use crate::stats::{Summary, cpu_seconds, machine_busy_seconds, nanos};

/// Flags of `cerulean-bench floor`.
#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// The ONNX file (one FP32 input of shape [-1, N]).
    #[arg(long)]
    pub model: PathBuf,
    /// Rows per call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// ONNX Runtime intra-op threads per session.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Sessions calling in parallel, each from its own thread (like a server's model instances).
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// The ONNX Runtime library [default: $ORT_DYLIB_PATH, then $CERULEAN_HOME's, then
    /// ~/.cache/cerulean/home's].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub onnxruntime_library: Option<PathBuf>,
}

/// One floor measurement.
#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    /// File name of the model's directory (e.g. `mlp_compute`), or the file name.
    pub model: String,
    /// Rows per call.
    pub batch: usize,
    /// Parallel sessions.
    pub sessions: usize,
    /// Intra-op threads per session.
    pub threads: usize,
    /// Calls completed in the measured window, all sessions together.
    pub calls: u64,
    /// Calls per second.
    pub calls_per_s: f64,
    /// Rows per second.
    pub rows_per_s: f64,
    /// Per-call latency.
    pub latency: Summary,
    /// CPU used over the window by other processes, in cores (a disturbed measurement when well
    /// above 0).
    pub other_cpu: Option<f64>,
}

impl FloorResult {
    /// `sessions×threads`, as the tables print it.
    pub fn layout(&self) -> String {
        format!("{}×{}", self.sessions, self.threads)
    }
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The ONNX Runtime library to load: the flag, then `$CERULEAN_HOME`'s, then the default home's.
pub fn find_onnxruntime(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    let file = "models/onnxruntime/libonnxruntime.so.1.31.1";
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("CERULEAN_HOME") {
        candidates.push(PathBuf::from(home).join(file));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/cerulean/home").join(file));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow!("no ONNX Runtime library found: pass --onnxruntime-library or set ORT_DYLIB_PATH")
    })
}

/// Loads ONNX Runtime once per process.
fn environment(library: &Path) -> anyhow::Result<Environment> {
    let env = ENVIRONMENT.get_or_init(|| {
        ort::init_from(library)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?
            .with_name("cerulean-bench")
            .build()
            .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))
    });
    env.clone().map_err(|e| anyhow!(e))
}

/// Opens a session with `threads` intra-op threads and one inter-op thread (as the server does).
fn open_session(env: &Environment, model: &Path, threads: usize) -> anyhow::Result<Session> {
    Session::builder(env)
        .map_err(|e| anyhow!("{e}"))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| anyhow!("{e}"))?
        .with_inter_threads(1)
        .map_err(|e| anyhow!("{e}"))?
        .commit_from_file(model)
        .map_err(|e| anyhow!("cannot load {}: {e}", model.display()))
}

/// The width of the model's only input, `[-1, width]`.
fn input_width(session: &Session) -> anyhow::Result<usize> {
    let input = session.inputs().first().context("the model has no input")?;
    match input.dtype() {
        ValueType::Tensor { shape, .. } if shape.len() == 2 && shape[1] > 0 => {
            Ok(shape[1] as usize)
        }
        other => bail!(
            "input '{}' is {other:?}, not a [-1, N] tensor",
            input.name()
        ),
    }
}

/// A deterministic pseudo-random vector in [-1, 1) (xorshift), so every run sends the same data.
pub fn input_data(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs the floor: `sessions` threads each call their own session in a loop with `batch` rows.
pub fn run_floor(args: &FloorArgs) -> anyhow::Result<FloorResult> {
    let library = find_onnxruntime(args.onnxruntime_library.as_deref())?;
    let env = environment(&library)?;
    let sessions = args.sessions.max(1);
    let batch = args.batch.max(1);
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let start_line = Arc::new(Barrier::new(sessions + 1));
    let clock = Arc::new(OnceLock::<Instant>::new());

    let workers = (0..sessions)
        .map(|i| {
            let env = env.clone();
            let model = args.model.clone();
            let threads = args.threads;
            let start_line = start_line.clone();
            let clock = clock.clone();
            std::thread::Builder::new()
                .name(format!("floor#{i}"))
                .spawn(move || -> anyhow::Result<Vec<u64>> {
                    let opened = open_session(&env, &model, threads)
                        .and_then(|s| input_width(&s).map(|w| (s, w)));
                    // Always reach the barrier, so that a failed session cannot hang the others.
                    start_line.wait();
                    let (mut session, width) = opened?;
                    let data = input_data(batch * width, 1 + i as u64);
                    let start = *clock.get().context("the floor's clock was not started")?;
                    let (measure_from, end) = (start + warmup, start + warmup + duration);
                    let mut latencies = Vec::new();
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        let input = TensorRef::from_array_view(([batch, width], &data[..]))
                            .map_err(|e| anyhow!("{e}"))?;
                        let outputs = session
                            .run(ort::inputs!["INPUT0" => input])
                            .map_err(|e| anyhow!("ONNX Runtime failed: {e}"))?;
                        drop(outputs);
                        let t1 = Instant::now();
                        if t1 >= measure_from && t1 < end {
                            latencies.push(nanos(t1 - t0));
                        }
                    }
                    Ok(latencies)
                })
                .context("cannot start a floor thread")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Sessions are opened before the clock starts, so loading never counts.
    let start = *clock.get_or_init(Instant::now);
    start_line.wait();
    std::thread::sleep((start + warmup).saturating_duration_since(Instant::now()));
    let sample = || {
        (
            machine_busy_seconds(),
            cpu_seconds(std::process::id()),
            Instant::now(),
        )
    };
    let before = sample();
    std::thread::sleep((start + warmup + duration).saturating_duration_since(Instant::now()));
    let after = sample();
    let wall = (after.2 - before.2).as_secs_f64();
    let other_cpu = match (before, after) {
        ((Some(mb), Some(ob), _), (Some(ma), Some(oa), _)) => {
            Some((((ma - mb) - (oa - ob)) / wall).max(0.0))
        }
        _ => None,
    };
    let mut all = Vec::new();
    for worker in workers {
        let latencies = worker
            .join()
            .map_err(|_| anyhow!("a floor thread panicked"))??;
        all.extend(latencies);
    }
    let calls = all.len() as u64;
    let seconds = duration.as_secs_f64();
    Ok(FloorResult {
        model: model_label(&args.model),
        batch,
        sessions,
        threads: args.threads.max(1),
        calls,
        calls_per_s: calls as f64 / seconds,
        rows_per_s: (calls * batch as u64) as f64 / seconds,
        latency: Summary::from_nanos(&mut all),
        other_cpu,
    })
}

/// `DIR/mlp_compute/1/model.onnx` → `mlp_compute`.
fn model_label(path: &Path) -> String {
    let parts: Vec<_> = path
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.len() {
        n if n >= 3 && parts[n - 2].chars().all(|c| c.is_ascii_digit()) => parts[n - 3].clone(),
        _ => path
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_repository_layout() {
        assert_eq!(
            model_label(Path::new("/r/mlp_compute/1/model.onnx")),
            "mlp_compute"
        );
        assert_eq!(model_label(Path::new("x.onnx")), "x.onnx");
    }

    #[test]
    fn input_data_is_deterministic_and_bounded() {
        let a = input_data(1000, 3);
        assert_eq!(a, input_data(1000, 3));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_ne!(a, input_data(1000, 4));
    }
}
