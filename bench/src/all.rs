//! `cerulean-bench all`: makes the models, runs the floors, starts `cerulean serve`, runs the whole
//! load matrix, optionally does the same against the KServe Python server, and prints the tables
//! and the ratios the targets name.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::floor::{FloorArgs, FloorResult, run_floor};
use crate::load::{LoadResult, LoadSpec, Timing, Transport, run_load};
use crate::procs::{ServerProcess, find_python, find_server_binary, free_addr, script};

/// The compute-bound model (512 → 2048 → 2048 → 10).
pub const COMPUTE: &str = "mlp_compute";
/// The overhead-bound model (64 → 256 → 256 → 10).
pub const OVERHEAD: &str = "mlp_overhead";
/// The concurrency at which the throughput targets are set.
const TARGET_CONCURRENCY: usize = 32;
/// KServe's requests per second at concurrency 32 quoted by the issue.
const KSERVE_QUOTED_RPS: f64 = 760.0;

/// Flags of `cerulean-bench all`.
#[derive(Args, Debug, Clone)]
pub struct AllArgs {
    /// The `cerulean` binary [default: next to this binary, then target/release/cerulean].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Extra arguments for `cerulean serve` (repeat, e.g. `--server-arg=--instances --server-arg=2`).
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// A model repository holding mlp_compute and mlp_overhead [default: made by
    /// bench/python/make_bench_models.py in the work directory].
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Extra arguments for make_bench_models.py (e.g. `--model-arg=--compute-delay-us=1000`).
    #[arg(long, allow_hyphen_values = true)]
    pub model_arg: Vec<String>,
    /// Python with onnx and numpy, for make_bench_models.py [default: ~/.cache/cerulean/venv's].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Where logs, the generated repository and results.json go [default: a new directory
    /// under the system's temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also start the KServe Python server (bench/python/kserve_server.py) and load it the same way.
    #[arg(long)]
    pub kserve: bool,
    /// Python of the KServe venv [default: ~/.cache/cerulean/kserve-venv's, made by bench/setup-kserve.sh].
    #[arg(long)]
    pub kserve_python: Option<PathBuf>,
    /// Run KServe with its default logging (a log line per request) instead of quiet.
    #[arg(long)]
    pub kserve_default_logging: bool,
    /// Models to load, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mlp_compute,mlp_overhead"
    )]
    pub models: Vec<String>,
    /// Transports, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "http-json,http-binary,grpc"
    )]
    pub transports: Vec<Transport>,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    #[command(flatten)]
    pub timing: Timing,
    /// Seconds measured per floor.
    #[arg(long, default_value_t = 5.0)]
    pub floor_duration: f64,
    /// Floor layouts at batch 32 as SESSIONSxTHREADS, comma-separated; the best is the floor.
    #[arg(long, value_delimiter = ',', default_value = "1x2,2x1")]
    pub floor_layouts: Vec<String>,
    /// The server's layout of mlp_compute as INSTANCESxTHREADS, for the same-threads floor
    /// [default: read from the repository's config.pbtxt].
    #[arg(long)]
    pub compute_layout: Option<String>,
    /// Intra-op threads of the batch-1 in-process reference call (the server's per-instance threads).
    #[arg(long, default_value_t = 1)]
    pub reference_threads: usize,
    /// Repeat a measurement when other processes used more than this many cores during it
    /// (the machine is shared); the least disturbed attempt is kept.
    #[arg(long, default_value_t = 0.1)]
    pub max_other_cpu: f64,
    /// Attempts per measurement under `--max-other-cpu`.
    #[arg(long, default_value_t = 3)]
    pub attempts: usize,
    /// Before each measurement, wait up to this many seconds for other processes to use at most
    /// `--max-other-cpu` cores.
    #[arg(long, default_value_t = 60.0)]
    pub quiet_wait: f64,
    /// The ONNX Runtime library (for the floors and the server).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub onnxruntime_library: Option<PathBuf>,
}

/// Everything `all` measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Floors and references.
    pub floors: Vec<FloorResult>,
    /// Every load point.
    pub loads: Vec<LoadResult>,
    /// The same-threads floor of the compute model measured just before and just after each of
    /// its loads at the target concurrency.
    pub adjacent_floors: Vec<AdjacentFloors>,
    /// The target checks.
    pub ratios: Vec<Ratio>,
}

/// The compute model's same-threads floor around one load. A VM's speed can drift by a third
/// within minutes (run 5 saw the 1×1 floor at 13.1 k rows/s and, 20 minutes later, 9.7 k), so the
/// load is also compared with floors taken at the same time as it.
#[derive(Debug, Serialize)]
pub struct AdjacentFloors {
    /// The load's transport.
    pub transport: Transport,
    /// The floor measured just before the load.
    pub before: FloorResult,
    /// The floor measured just after it.
    pub after: FloorResult,
}

impl AdjacentFloors {
    /// The mean of the two floors' rows per second.
    pub fn rows_per_s(&self) -> f64 {
        (self.before.rows_per_s + self.after.rows_per_s) / 2.0
    }
}

/// One target check.
#[derive(Debug, Serialize)]
pub struct Ratio {
    /// What is compared.
    pub what: String,
    /// The measured value.
    pub value: f64,
    /// The target, as text.
    pub target: String,
    /// Whether the target is met.
    pub met: bool,
}

fn parse_layout(text: &str) -> anyhow::Result<(usize, usize)> {
    let (s, t) = text
        .split_once(['x', 'X', '×'])
        .with_context(|| format!("floor layout '{text}' is not SESSIONSxTHREADS"))?;
    Ok((s.trim().parse()?, t.trim().parse()?))
}

/// `instance_group` count × `intra_op_thread_count` of a config.pbtxt (1 where absent).
fn configured_layout(config: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let number_after = |key: &str, field: &str| -> Option<usize> {
        let rest = &text[text.find(key)? + key.len()..];
        let rest = &rest[rest.find(field)? + field.len()..];
        let digits: String = rest
            .trim_start_matches(|c: char| c.is_whitespace() || c == '"')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    (
        number_after("instance_group", "count:").unwrap_or(1),
        number_after("intra_op_thread_count", "string_value:").unwrap_or(1),
    )
}

fn model_file(repo: &Path, model: &str) -> PathBuf {
    repo.join(model).join("1").join("model.onnx")
}

fn input_width(model: &str) -> usize {
    if model == COMPUTE { 512 } else { 64 }
}

/// Runs the whole benchmark.
pub async fn run_all(args: AllArgs) -> anyhow::Result<Report> {
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("cerulean-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    eprintln!("work directory: {}", work_dir.display());
    let ort_lib = crate::floor::find_onnxruntime(args.onnxruntime_library.as_deref())?;
    let server_bin = find_server_binary(args.server_bin.as_deref())?;
    let repo = match &args.repo {
        Some(repo) => repo.clone(),
        None => make_models(&args, &work_dir.join("repository"))?,
    };
    let models: Vec<&str> = args.models.iter().map(String::as_str).collect();
    for model in &models {
        let file = model_file(&repo, model);
        if !file.is_file() {
            bail!("{} is missing", file.display());
        }
    }

    let compute_layout = match &args.compute_layout {
        Some(layout) => parse_layout(layout)?,
        None => configured_layout(&repo.join(COMPUTE).join("config.pbtxt")),
    };

    // Floors first, with nothing else running.
    let mut floors = Vec::new();
    for model in &models {
        let mut layouts = vec![(32, compute_layout)];
        for layout in &args.floor_layouts {
            let layout = (32, parse_layout(layout)?);
            if !layouts.contains(&layout) {
                layouts.push(layout);
            }
        }
        layouts.push((1, (1, args.reference_threads)));
        for (batch, (sessions, threads)) in layouts {
            let floor_args = FloorArgs {
                model: model_file(&repo, model),
                batch,
                threads,
                sessions,
                duration: args.floor_duration,
                warmup: 1.0,
                onnxruntime_library: Some(ort_lib.clone()),
            };
            wait_quiet(&args);
            let mut floor = run_floor(&floor_args)?;
            for _ in 1..args.attempts {
                if floor.other_cpu.unwrap_or(0.0) <= args.max_other_cpu {
                    break;
                }
                eprintln!(
                    "  (other processes used {} cores: measuring again)",
                    cpu(floor.other_cpu)
                );
                wait_quiet(&args);
                let again = run_floor(&floor_args)?;
                if again.other_cpu.unwrap_or(0.0) < floor.other_cpu.unwrap_or(0.0) {
                    floor = again;
                }
            }
            eprintln!(
                "floor {model} batch {batch} {}: {:.0} rows/s, p50 {:.1} µs/call, other CPU {}",
                floor.layout(),
                floor.rows_per_s,
                floor.latency.p50_us,
                cpu(floor.other_cpu)
            );
            floors.push(floor);
        }
    }

    let adjacent_floor = FloorArgs {
        model: model_file(&repo, COMPUTE),
        batch: 32,
        threads: compute_layout.1,
        sessions: compute_layout.0,
        duration: args.floor_duration,
        warmup: 1.0,
        onnxruntime_library: Some(ort_lib.clone()),
    };
    let mut loads = Vec::new();
    let mut adjacent_floors = Vec::new();
    {
        let (http, grpc) = (free_addr()?, free_addr()?);
        let mut command = Command::new(&server_bin);
        command
            .arg("serve")
            .arg("--model-repository")
            .arg(&repo)
            .arg("--http-addr")
            .arg(http.to_string())
            .arg("--grpc-addr")
            .arg(grpc.to_string())
            .arg("--onnxruntime-library")
            .arg(&ort_lib)
            .args(&args.server_arg);
        if std::env::var_os("CERULEAN_HOME").is_none()
            && let Some(home) = std::env::var_os("HOME")
        {
            command.env(
                "CERULEAN_HOME",
                PathBuf::from(home).join(".cache/cerulean/home"),
            );
        }
        eprintln!("starting {command:?}");
        let mut server = ServerProcess::spawn(
            "cerulean",
            command,
            work_dir.join("cerulean.log"),
            http,
            grpc,
        )?;
        server.wait_ready(&models, Duration::from_secs(120)).await?;
        for model in &models {
            let adjacent = (*model == COMPUTE).then_some(&adjacent_floor);
            let (model_loads, floors) =
                run_matrix(&args, "cerulean", &server, model, adjacent).await?;
            loads.extend(model_loads);
            adjacent_floors.extend(floors);
        }
        server.stop();
    }

    if args.kserve && models.contains(&OVERHEAD) {
        let python = find_python(args.kserve_python.as_deref(), "kserve-venv");
        let (http, grpc) = (free_addr()?, free_addr()?);
        let mut command = Command::new(&python);
        command
            .arg(script("kserve_server.py"))
            .arg("--model-file")
            .arg(model_file(&repo, OVERHEAD))
            .args(["--model_name", OVERHEAD])
            .args(["--http_port", &http.port().to_string()])
            .args(["--grpc_port", &grpc.port().to_string()]);
        if !args.kserve_default_logging {
            command.arg("--quiet");
        }
        eprintln!("starting {command:?}");
        let mut server =
            ServerProcess::spawn("kserve", command, work_dir.join("kserve.log"), http, grpc)?;
        server
            .wait_ready(&[OVERHEAD], Duration::from_secs(120))
            .await?;
        loads.extend(
            run_matrix(&args, "kserve", &server, OVERHEAD, None)
                .await?
                .0,
        );
        server.stop();
    }

    let ratios = ratios(
        &floors,
        &loads,
        &adjacent_floors,
        compute_layout,
        args.reference_threads,
    );
    let report = Report {
        floors,
        loads,
        adjacent_floors,
        ratios,
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(work_dir.join("results.json"), json)?;
    eprintln!("results: {}", work_dir.join("results.json").display());
    Ok(report)
}

/// Every transport × concurrency for one model on one server. A transport whose first request
/// fails (say, one the server does not support) is reported as such and skipped. With
/// `adjacent_floor`, each load at the target concurrency (32) is bracketed by that floor, measured
/// just before and just after it (the server idles meanwhile).
async fn run_matrix(
    args: &AllArgs,
    server_name: &str,
    server: &ServerProcess,
    model: &str,
    adjacent_floor: Option<&FloorArgs>,
) -> anyhow::Result<(Vec<LoadResult>, Vec<AdjacentFloors>)> {
    let mut results = Vec::new();
    let mut adjacent = Vec::new();
    for &transport in &args.transports {
        for &concurrency in &args.concurrency {
            let spec = LoadSpec {
                server: server_name.to_string(),
                model: model.to_string(),
                input_width: input_width(model),
                transport,
                concurrency,
                http: server.http,
                grpc: server.grpc,
                timing: args.timing,
                server_pid: Some(server.pid()),
            };
            let bracket = adjacent_floor.filter(|_| concurrency == TARGET_CONCURRENCY);
            let before = bracket.map(|floor| quiet_floor(args, floor)).transpose()?;
            wait_quiet(args);
            match run_load(&spec).await {
                Ok(mut result) => {
                    eprintln!("{}", load_line(&result));
                    for _ in 1..args.attempts {
                        if result.other_cpu.unwrap_or(0.0) <= args.max_other_cpu {
                            break;
                        }
                        eprintln!(
                            "  (other processes used {} cores: measuring again)",
                            cpu(result.other_cpu)
                        );
                        wait_quiet(args);
                        let again = run_load(&spec).await?;
                        eprintln!("{}", load_line(&again));
                        if again.other_cpu.unwrap_or(0.0) < result.other_cpu.unwrap_or(0.0) {
                            result = again;
                        }
                    }
                    results.push(result);
                    if let (Some(floor), Some(before)) = (bracket, before) {
                        let after = quiet_floor(args, floor)?;
                        adjacent.push(AdjacentFloors {
                            transport,
                            before,
                            after,
                        });
                    }
                }
                Err(err) => {
                    eprintln!(
                        "{server_name} {model} {}: skipped: {err:#}",
                        transport.label()
                    );
                    break;
                }
            }
        }
    }
    Ok((results, adjacent))
}

/// Runs a floor once the machine is quiet, and prints it.
fn quiet_floor(args: &AllArgs, floor_args: &FloorArgs) -> anyhow::Result<FloorResult> {
    wait_quiet(args);
    let floor = run_floor(floor_args)?;
    eprintln!(
        "  adjacent floor batch {} {}: {:.0} rows/s, other CPU {}",
        floor.batch,
        floor.layout(),
        floor.rows_per_s,
        cpu(floor.other_cpu)
    );
    Ok(floor)
}

/// One line per load point, for progress output.
pub fn load_line(r: &LoadResult) -> String {
    format!(
        "{} {} {} c={}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, errors {}, CPU server {} client {} other {}{}",
        r.server,
        r.model,
        r.transport.label(),
        r.concurrency,
        r.requests_per_s,
        r.latency.p50_us,
        r.latency.p99_us,
        r.errors,
        cpu(r.server_cpu),
        cpu(r.client_cpu),
        cpu(r.other_cpu),
        r.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    )
}

/// Waits for the machine to be quiet (see `--quiet-wait`), saying so when it does not become so.
fn wait_quiet(args: &AllArgs) {
    let max_wait = Duration::from_secs_f64(args.quiet_wait.max(0.0));
    if !crate::stats::wait_until_quiet(args.max_other_cpu, max_wait) {
        eprintln!(
            "  (other processes kept using over {} cores for {max_wait:?}: measuring anyway)",
            args.max_other_cpu
        );
    }
}

fn make_models(args: &AllArgs, out: &Path) -> anyhow::Result<PathBuf> {
    let python = find_python(args.python.as_deref(), "venv");
    // Its progress lines go to stderr, so that stdout holds only the tables.
    let output = Command::new(&python)
        .arg(script("make_bench_models.py"))
        .arg(out)
        .args(&args.model_arg)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} make_bench_models.py", python.display()))?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!("make_bench_models.py failed ({})", output.status);
    }
    Ok(out.to_path_buf())
}

fn find_load<'a>(
    loads: &'a [LoadResult],
    server: &str,
    model: &str,
    transport: Transport,
    concurrency: usize,
) -> Option<&'a LoadResult> {
    loads.iter().find(|r| {
        r.server == server
            && r.model == model
            && r.transport == transport
            && r.concurrency == concurrency
    })
}

/// The ratios the targets name, for every transport measured.
///
/// The compute model is compared with floors at batch 32: the one with the server's own layout
/// (`compute_layout`, the same ONNX Runtime threads), measured first and measured around each load
/// (`adjacent`), and the best of all layouts measured.
pub fn ratios(
    floors: &[FloorResult],
    loads: &[LoadResult],
    adjacent: &[AdjacentFloors],
    compute_layout: (usize, usize),
    reference_threads: usize,
) -> Vec<Ratio> {
    let mut out = Vec::new();
    let transports = [Transport::HttpJson, Transport::HttpBinary, Transport::Grpc];
    let compute_floors = floors
        .iter()
        .filter(|f| f.model == COMPUTE && f.batch == 32);
    let same_threads = compute_floors
        .clone()
        .find(|f| (f.sessions, f.threads) == compute_layout);
    let best = compute_floors.max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s));
    let mut compared = Vec::new();
    if let Some(floor) = same_threads {
        compared.push(("same threads", floor));
    }
    if let Some(floor) = best.filter(|b| same_threads.is_none_or(|s| s.layout() != b.layout())) {
        compared.push(("best layout", floor));
    }
    for (kind, floor) in compared {
        for t in transports {
            if let Some(r) = find_load(loads, "cerulean", COMPUTE, t, TARGET_CONCURRENCY) {
                let value = r.rows_per_s / floor.rows_per_s;
                out.push(Ratio {
                    what: format!(
                        "{COMPUTE} {} c=32 rows/s ÷ floor ({kind}: batch 32, {}) = {:.0} ÷ {:.0}",
                        t.label(),
                        floor.layout(),
                        r.rows_per_s,
                        floor.rows_per_s
                    ),
                    value,
                    target: "≥ 0.90".into(),
                    met: value >= 0.9,
                });
            }
        }
    }
    for floors in adjacent {
        if let Some(r) = find_load(
            loads,
            "cerulean",
            COMPUTE,
            floors.transport,
            TARGET_CONCURRENCY,
        ) {
            let value = r.rows_per_s / floors.rows_per_s();
            out.push(Ratio {
                what: format!(
                    "{COMPUTE} {} c=32 rows/s ÷ same-threads floor measured around it = {:.0} ÷ {:.0} (before {:.0}, after {:.0})",
                    floors.transport.label(),
                    r.rows_per_s,
                    floors.rows_per_s(),
                    floors.before.rows_per_s,
                    floors.after.rows_per_s
                ),
                value,
                target: "≥ 0.90".into(),
                met: value >= 0.9,
            });
        }
    }
    for t in transports {
        let Some(ours) = find_load(loads, "cerulean", OVERHEAD, t, TARGET_CONCURRENCY) else {
            continue;
        };
        if let Some(theirs) = find_load(loads, "kserve", OVERHEAD, t, TARGET_CONCURRENCY) {
            let value = ours.requests_per_s / theirs.requests_per_s;
            out.push(Ratio {
                what: format!(
                    "{OVERHEAD} {} c=32 req/s ÷ KServe same transport = {:.0} ÷ {:.0}",
                    t.label(),
                    ours.requests_per_s,
                    theirs.requests_per_s
                ),
                value,
                target: "≥ 20".into(),
                met: value >= 20.0,
            });
        }
        let value = ours.requests_per_s / KSERVE_QUOTED_RPS;
        out.push(Ratio {
            what: format!(
                "{OVERHEAD} {} c=32 req/s ÷ KServe's quoted {KSERVE_QUOTED_RPS:.0} = {:.0} ÷ {KSERVE_QUOTED_RPS:.0}",
                t.label(),
                ours.requests_per_s
            ),
            value,
            target: "≥ 20".into(),
            met: value >= 20.0,
        });
    }
    let best_kserve = loads
        .iter()
        .filter(|r| r.server == "kserve" && r.concurrency == TARGET_CONCURRENCY)
        .max_by(|a, b| a.requests_per_s.total_cmp(&b.requests_per_s));
    let best_ours = loads
        .iter()
        .filter(|r| {
            r.server == "cerulean" && r.model == OVERHEAD && r.concurrency == TARGET_CONCURRENCY
        })
        .max_by(|a, b| a.requests_per_s.total_cmp(&b.requests_per_s));
    if let (Some(ours), Some(theirs)) = (best_ours, best_kserve) {
        let value = ours.requests_per_s / theirs.requests_per_s;
        out.push(Ratio {
            what: format!(
                "{OVERHEAD} c=32 best req/s ÷ KServe's best = {:.0} ({}) ÷ {:.0} ({})",
                ours.requests_per_s,
                ours.transport.label(),
                theirs.requests_per_s,
                theirs.transport.label()
            ),
            value,
            target: "≥ 20".into(),
            met: value >= 20.0,
        });
    }
    let reference = floors.iter().find(|f| {
        f.model == OVERHEAD && f.batch == 1 && f.sessions == 1 && f.threads == reference_threads
    });
    if let Some(reference) = reference {
        for t in transports {
            if let Some(r) = find_load(loads, "cerulean", OVERHEAD, t, 1) {
                let value = r.latency.p50_us - reference.latency.p50_us;
                out.push(Ratio {
                    what: format!(
                        "{OVERHEAD} {} c=1 p50 − in-process batch-1 p50 = {:.1} − {:.1} µs",
                        t.label(),
                        r.latency.p50_us,
                        reference.latency.p50_us
                    ),
                    value,
                    target: "≤ 150 µs".into(),
                    met: value <= 150.0,
                });
            }
        }
    }
    out
}

fn cpu(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.2}"))
}

/// The report as Markdown tables.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Load (batch-1 requests, closed loop)\n");
    let _ = writeln!(
        s,
        "| server | model | transport | conc | req/s | rows/s | p50 µs | p99 µs | errors | server CPU | client CPU | other CPU |"
    );
    let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in &report.loads {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
            r.server,
            r.model,
            r.transport.label(),
            r.concurrency,
            r.requests_per_s,
            r.rows_per_s,
            r.latency.p50_us,
            r.latency.p99_us,
            r.errors,
            cpu(r.server_cpu),
            cpu(r.client_cpu),
            cpu(r.other_cpu)
        );
    }
    let _ = writeln!(s, "\n### In-process floor (`ort`, no server)\n");
    let _ = writeln!(
        s,
        "| model | batch | sessions×threads | rows/s | calls/s | p50 µs/call | p99 µs/call | other CPU |"
    );
    let _ = writeln!(s, "|---|--:|---|--:|--:|--:|--:|--:|");
    for f in &report.floors {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} |",
            f.model,
            f.batch,
            f.layout(),
            f.rows_per_s,
            f.calls_per_s,
            f.latency.p50_us,
            f.latency.p99_us,
            cpu(f.other_cpu)
        );
    }
    let _ = writeln!(s, "\n### Targets\n");
    let _ = writeln!(s, "| comparison | value | target | met |");
    let _ = writeln!(s, "|---|--:|---|---|");
    for r in &report.ratios {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {} | {} |",
            r.what,
            r.value,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    #[test]
    fn configured_layouts_are_read() {
        let dir = std::env::temp_dir().join(format!("cerulean-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.pbtxt");
        std::fs::write(
            &config,
            "instance_group [ { count: 2 kind: KIND_CPU } ]\n\
             parameters { key: \"intra_op_thread_count\" value: { string_value: \"3\" } }\n",
        )
        .unwrap();
        assert_eq!(configured_layout(&config), (2, 3));
        std::fs::write(&config, "max_batch_size: 8").unwrap();
        assert_eq!(configured_layout(&config), (1, 1));
        assert_eq!(configured_layout(&dir.join("missing")), (1, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn floor(rows_per_s: f64) -> FloorResult {
        FloorResult {
            model: COMPUTE.into(),
            batch: 32,
            sessions: 1,
            threads: 1,
            calls: 100,
            calls_per_s: rows_per_s / 32.0,
            rows_per_s,
            latency: Summary::default(),
            other_cpu: Some(0.0),
        }
    }

    fn compute_load(transport: Transport, rows_per_s: f64) -> LoadResult {
        LoadResult {
            server: "cerulean".into(),
            model: COMPUTE.into(),
            transport,
            concurrency: 32,
            requests: 1000,
            errors: 0,
            first_error: None,
            requests_per_s: rows_per_s,
            rows_per_s,
            latency: Summary::default(),
            server_cpu: None,
            client_cpu: None,
            other_cpu: Some(0.0),
        }
    }

    #[test]
    fn compute_loads_are_compared_with_the_floors_around_them() {
        // The first floor read fast; the machine then slowed, and the floors around the load say so.
        let floors = [floor(13_000.0)];
        let loads = [
            compute_load(Transport::HttpBinary, 9_000.0),
            compute_load(Transport::Grpc, 9_000.0),
        ];
        let adjacent = [AdjacentFloors {
            transport: Transport::HttpBinary,
            before: floor(10_200.0),
            after: floor(9_800.0),
        }];
        let ratios = ratios(&floors, &loads, &adjacent, (1, 1), 1);
        let first_floor: Vec<_> = ratios
            .iter()
            .filter(|r| r.what.contains("same threads"))
            .collect();
        assert_eq!(first_floor.len(), 2, "one per transport measured");
        assert!(
            first_floor
                .iter()
                .all(|r| !r.met && (r.value - 9.0 / 13.0).abs() < 1e-9)
        );
        let around: Vec<_> = ratios
            .iter()
            .filter(|r| r.what.contains("measured around it"))
            .collect();
        assert_eq!(around.len(), 1, "only the bracketed load");
        assert!(around[0].what.contains("http-binary"));
        assert!((around[0].value - 0.9).abs() < 1e-9 && around[0].met);
    }

    #[test]
    fn layouts_parse() {
        assert_eq!(parse_layout("1x2").unwrap(), (1, 2));
        assert_eq!(parse_layout("2×1").unwrap(), (2, 1));
        assert!(parse_layout("3").is_err());
    }
}
