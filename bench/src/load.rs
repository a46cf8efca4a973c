//! The load generator: closed-loop workers sending batch-1 v2 inference requests over HTTP/1.1
//! (JSON tensors or the binary tensor extension) or gRPC (`raw_input_contents`).
//!
//! Each worker owns one connection (HTTP: one HTTP/1.1 keep-alive connection per worker; gRPC:
//! workers share a few HTTP/2 channels) and sends its next request as soon as the previous answer
//! arrives. Request bodies are built once; a request costs the client a header write, a body
//! clone (a reference count) and the response read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use cerulean_proto::inference::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use cerulean_proto::inference::{ModelInferRequest, ModelInferResponse};
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpStream;

use crate::floor::input_data;
use crate::grpc_client::{GrpcConnection, encode_frame};
use crate::stats::{Summary, cpu_seconds, machine_busy_seconds, nanos};

/// Width of both benchmark models' output.
const OUTPUT_WIDTH: usize = 10;

/// A way of sending v2 inference requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// REST with JSON tensors (`"data": [...]`).
    HttpJson,
    /// REST with the binary tensor extension (JSON header + raw bytes, `Inference-Header-Content-Length`).
    HttpBinary,
    /// gRPC `ModelInfer` with `raw_input_contents`.
    Grpc,
    /// Diagnostic, no inference: `GET /v2/health/live`, the bare HTTP round trip of the server.
    HttpLive,
    /// JSON bodies POSTed to a route other than v2 infer (`/v1/embeddings`, the Azure routes);
    /// used by `cerulean-bench embeddings`.
    #[value(skip)]
    Route,
}

impl Transport {
    /// The name the tables print.
    pub fn label(self) -> &'static str {
        match self {
            Transport::HttpJson => "http-json",
            Transport::HttpBinary => "http-binary",
            Transport::Grpc => "grpc",
            Transport::HttpLive => "http-live",
            Transport::Route => "route",
        }
    }
}

/// Flags of `cerulean-bench load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The server's REST address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The server's gRPC address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub grpc: SocketAddr,
    /// The model to call.
    #[arg(long)]
    pub model: String,
    /// Width N of the model's input [1, N] [default: read from the model's metadata].
    #[arg(long)]
    pub input_width: Option<usize>,
    /// Transports to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "http-json,http-binary,grpc"
    )]
    pub transports: Vec<Transport>,
    /// Concurrency levels (closed-loop workers), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    #[command(flatten)]
    pub timing: Timing,
    /// A server process whose CPU time to report (its pid).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// How long each load point runs, and how the client connects.
#[derive(Args, Debug, Clone, Copy, Serialize)]
pub struct Timing {
    /// Seconds measured per load point.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// gRPC channels (HTTP/2 connections) shared by the workers.
    #[arg(long, default_value_t = 4)]
    pub grpc_channels: usize,
}

/// One load point to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Which server, for the tables.
    pub server: String,
    /// The model to call.
    pub model: String,
    /// Width of the model's input.
    pub input_width: usize,
    /// How requests travel.
    pub transport: Transport,
    /// Closed-loop workers.
    pub concurrency: usize,
    /// REST address.
    pub http: SocketAddr,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Durations and channels.
    pub timing: Timing,
    /// The server process, for its CPU time.
    pub server_pid: Option<u32>,
}

/// What one load point measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Which server.
    pub server: String,
    /// The model.
    pub model: String,
    /// How requests travelled.
    pub transport: Transport,
    /// Closed-loop workers.
    pub concurrency: usize,
    /// Successful requests completed in the measured window.
    pub requests: u64,
    /// Failed requests in the measured window.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Successful requests per second.
    pub requests_per_s: f64,
    /// Rows per second (each request carries one row).
    pub rows_per_s: f64,
    /// Latency of the successful requests, as the client saw it.
    pub latency: Summary,
    /// The server's CPU use over the window, in cores (1.0 = one core busy), when known.
    pub server_cpu: Option<f64>,
    /// The load generator's own CPU use over the window, in cores.
    pub client_cpu: Option<f64>,
    /// CPU used over the window by everything else on the machine, in cores (other processes
    /// disturbing the measurement when well above 0).
    pub other_cpu: Option<f64>,
}

/// `GET http://{addr}{path}` on a new connection: the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(http::StatusCode, Bytes)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Reads the width N of a model's `[-1, N]` input from `GET /v2/models/{model}`.
pub async fn input_width_from_metadata(http: SocketAddr, model: &str) -> anyhow::Result<usize> {
    let path = format!("/v2/models/{model}");
    let (status, body) = http_get(http, &path).await?;
    ensure!(status.is_success(), "GET {path}: HTTP {status}");
    let metadata: serde_json::Value = serde_json::from_slice(&body)?;
    metadata["inputs"][0]["shape"]
        .as_array()
        .and_then(|shape| shape.last())
        .and_then(serde_json::Value::as_i64)
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| anyhow!("{path} gives no input shape; pass --input-width"))
}

/// The request bodies, built once and shared by every worker.
struct Payload {
    model: String,
    json_body: Bytes,
    binary_body: Bytes,
    binary_header_len: usize,
    /// The `ModelInfer` request as one gRPC frame (length prefix + message), encoded once.
    grpc_frame: Bytes,
}

impl Payload {
    fn new(model: &str, width: usize) -> anyhow::Result<Payload> {
        let data = input_data(width, 7);
        let json_body = serde_json::to_vec(&json!({
            "inputs": [{"name": "INPUT0", "shape": [1, width], "datatype": "FP32", "data": data}],
        }))?;
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let header = serde_json::to_vec(&json!({
            "inputs": [{
                "name": "INPUT0", "shape": [1, width], "datatype": "FP32",
                "parameters": {"binary_data_size": raw.len()},
            }],
            "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}],
        }))?;
        let binary_header_len = header.len();
        let mut binary_body = header;
        binary_body.extend_from_slice(&raw);
        let grpc_request = ModelInferRequest {
            model_name: model.to_string(),
            inputs: vec![InferInputTensor {
                name: "INPUT0".into(),
                datatype: "FP32".into(),
                shape: vec![1, width as i64],
                ..Default::default()
            }],
            outputs: vec![InferRequestedOutputTensor {
                name: "OUTPUT0".into(),
                ..Default::default()
            }],
            raw_input_contents: vec![Bytes::from(raw)],
            ..Default::default()
        };
        Ok(Payload {
            model: model.to_string(),
            json_body: Bytes::from(json_body),
            binary_body: Bytes::from(binary_body),
            binary_header_len,
            grpc_frame: encode_frame(&grpc_request),
        })
    }
}

/// What an HTTP connection sends.
enum HttpBody {
    /// The v2 payload of the connection's transport.
    V2(Arc<Payload>),
    /// JSON bodies sent in turn, starting at the index given.
    Route(Arc<Vec<Bytes>>, usize),
}

/// One HTTP/1.1 keep-alive connection.
struct HttpConn {
    addr: SocketAddr,
    host: String,
    path: String,
    transport: Transport,
    body: HttpBody,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConn {
    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    async fn infer(&mut self, verify: bool) -> anyhow::Result<()> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().context("not connected")?;
        let request =
            http::Request::post(self.path.as_str()).header(http::header::HOST, self.host.as_str());
        let request = match (&mut self.body, self.transport) {
            (HttpBody::Route(bodies, next), _) => {
                let body = bodies[*next % bodies.len()].clone();
                *next += 1;
                request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))?
            }
            (HttpBody::V2(payload), Transport::HttpBinary) => request
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .header("Inference-Header-Content-Length", payload.binary_header_len)
                .body(Full::new(payload.binary_body.clone()))?,
            (HttpBody::V2(_), Transport::HttpLive) => {
                let mut live = request.body(Full::new(Bytes::new()))?;
                *live.method_mut() = http::Method::GET;
                live
            }
            (HttpBody::V2(payload), _) => request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(payload.json_body.clone()))?,
        };
        let sent = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok((parts, body))
        }
        .await;
        let (parts, body) = match sent {
            Ok(answer) => answer,
            Err(err) => {
                // Reconnect on the next call: the server may have closed the connection.
                self.sender = None;
                return Err(err);
            }
        };
        if parts.status != http::StatusCode::OK {
            bail!(
                "HTTP {}: {}",
                parts.status,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        if matches!(self.transport, Transport::HttpLive | Transport::Route) {
            ensure!(
                self.transport == Transport::HttpLive || !body.is_empty(),
                "empty response body"
            );
            return Ok(());
        }
        ensure!(!body.is_empty(), "empty response body");
        if verify {
            if self.transport == Transport::HttpBinary {
                verify_binary_response(&parts.headers, &body)?;
            } else {
                verify_json_response(&body)?;
            }
        }
        Ok(())
    }
}

/// Checks that a JSON response holds OUTPUT0 with shape [1, 10] and ten numbers.
fn verify_json_response(body: &[u8]) -> anyhow::Result<()> {
    let response: serde_json::Value =
        serde_json::from_slice(body).context("the response is not JSON")?;
    let output = &response["outputs"][0];
    let data = output["data"]
        .as_array()
        .context("the response has no outputs[0].data")?;
    ensure!(
        output["shape"] == json!([1, OUTPUT_WIDTH]) && data.len() == OUTPUT_WIDTH,
        "unexpected output: {output}"
    );
    Ok(())
}

/// Checks that a binary response has a JSON header and 40 bytes of OUTPUT0 after it.
fn verify_binary_response(headers: &http::HeaderMap, body: &[u8]) -> anyhow::Result<()> {
    let header_len: usize = headers
        .get("inference-header-content-length")
        .context(
            "the response has no Inference-Header-Content-Length: binary output not supported",
        )?
        .to_str()?
        .parse()?;
    ensure!(
        header_len <= body.len(),
        "Inference-Header-Content-Length exceeds the body"
    );
    let header: serde_json::Value = serde_json::from_slice(&body[..header_len])?;
    ensure!(
        body.len() - header_len == OUTPUT_WIDTH * 4,
        "expected {} bytes of binary output, got {} (header {header})",
        OUTPUT_WIDTH * 4,
        body.len() - header_len
    );
    Ok(())
}

/// Checks that a gRPC response holds ten FP32 values, raw or typed.
fn verify_grpc_response(response: &ModelInferResponse) -> anyhow::Result<()> {
    let raw = response.raw_output_contents.first().map_or(0, Bytes::len);
    let typed = response
        .outputs
        .first()
        .and_then(|o| o.contents.as_ref())
        .map_or(0, |c| c.fp32_contents.len());
    ensure!(
        raw == OUTPUT_WIDTH * 4 || typed == OUTPUT_WIDTH,
        "unexpected gRPC output ({raw} raw bytes, {typed} typed values)"
    );
    Ok(())
}

/// A worker's way of sending requests.
enum Conn {
    Http(HttpConn),
    Grpc(GrpcConnection, Arc<Payload>),
}

impl Conn {
    async fn infer(&mut self, verify: bool) -> anyhow::Result<()> {
        match self {
            Conn::Http(conn) => conn.infer(verify).await,
            Conn::Grpc(connection, payload) => {
                let response = connection.model_infer(&payload.grpc_frame, verify).await?;
                if let Some(response) = response {
                    verify_grpc_response(&response)?;
                }
                Ok(())
            }
        }
    }
}

/// What one worker recorded.
#[derive(Default)]
struct WorkerLog {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Opens the workers' connections and checks that each answers one correct request.
async fn open_connections(spec: &LoadSpec, payload: &Arc<Payload>) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(spec.concurrency);
    match spec.transport {
        Transport::Route => bail!("route loads are run by run_route_load"),
        Transport::HttpJson | Transport::HttpBinary | Transport::HttpLive => {
            let path = match spec.transport {
                Transport::HttpLive => "/v2/health/live".to_string(),
                _ => format!("/v2/models/{}/infer", payload.model),
            };
            for _ in 0..spec.concurrency {
                let mut conn = HttpConn {
                    addr: spec.http,
                    host: spec.http.to_string(),
                    path: path.clone(),
                    transport: spec.transport,
                    body: HttpBody::V2(payload.clone()),
                    sender: None,
                };
                conn.connect().await?;
                conns.push(Conn::Http(conn));
            }
        }
        Transport::Grpc => {
            let count = spec.timing.grpc_channels.clamp(1, spec.concurrency.max(1));
            let mut channels = Vec::with_capacity(count);
            for _ in 0..count {
                channels.push(GrpcConnection::connect(spec.grpc).await?);
            }
            for i in 0..spec.concurrency {
                conns.push(Conn::Grpc(channels[i % count].clone(), payload.clone()));
            }
        }
    }
    for conn in &mut conns {
        conn.infer(true).await.with_context(|| {
            format!(
                "{} {} over {}: the first request failed",
                spec.server,
                spec.model,
                spec.transport.label()
            )
        })?;
    }
    Ok(conns)
}

/// Runs one load point: `concurrency` closed-loop workers for warm-up + duration.
///
/// Every request that completes inside the measured window counts, with its full latency; requests
/// still in flight when the window closes are not counted.
pub async fn run_load(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let payload = Arc::new(Payload::new(&spec.model, spec.input_width)?);
    let conns = open_connections(spec, &payload).await?;
    drive(spec, conns).await
}

/// Runs one load point of JSON `bodies` POSTed to `path` (each worker cycles through them from its
/// own starting point); a request succeeds when it is answered 200 with a body.
pub async fn run_route_load(
    spec: &LoadSpec,
    path: &str,
    bodies: Arc<Vec<Bytes>>,
) -> anyhow::Result<LoadResult> {
    ensure!(!bodies.is_empty(), "no request bodies");
    let mut conns = Vec::with_capacity(spec.concurrency);
    for worker in 0..spec.concurrency {
        let mut conn = HttpConn {
            addr: spec.http,
            host: spec.http.to_string(),
            path: path.to_string(),
            transport: Transport::Route,
            body: HttpBody::Route(bodies.clone(), worker * 7),
            sender: None,
        };
        conn.connect().await?;
        conn.infer(true)
            .await
            .with_context(|| format!("{} POST {path}: the first request failed", spec.server))?;
        conns.push(Conn::Http(conn));
    }
    drive(spec, conns).await
}

/// Drives `conns` as closed-loop workers for warm-up + duration and summarises the window.
async fn drive(spec: &LoadSpec, conns: Vec<Conn>) -> anyhow::Result<LoadResult> {
    let warmup = Duration::from_secs_f64(spec.timing.warmup.max(0.0));
    let duration = Duration::from_secs_f64(spec.timing.duration.max(0.1));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;

    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut log = WorkerLog::default();
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let outcome = conn.infer(false).await;
                    let t1 = Instant::now();
                    if t1 < measure_from || t1 >= end {
                        continue;
                    }
                    match outcome {
                        Ok(()) => log.latencies.push(nanos(t1 - t0)),
                        Err(err) => {
                            log.errors += 1;
                            log.first_error.get_or_insert_with(|| format!("{err:#}"));
                        }
                    }
                }
                log
            })
        })
        .collect();

    let server_pid = spec.server_pid;
    let sampler = tokio::spawn(async move {
        let own = std::process::id();
        tokio::time::sleep_until(measure_from.into()).await;
        let sample = || {
            (
                server_pid.and_then(cpu_seconds),
                cpu_seconds(own),
                machine_busy_seconds(),
                Instant::now(),
            )
        };
        let before = sample();
        tokio::time::sleep_until(end.into()).await;
        let after = sample();
        let wall = (after.3 - before.3).as_secs_f64();
        let rate = |b: Option<f64>, a: Option<f64>| b.zip(a).map(|(b, a)| (a - b) / wall);
        let server = rate(before.0, after.0);
        let client = rate(before.1, after.1);
        let machine = rate(before.2, after.2);
        let other = machine.map(|m| (m - server.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
        (server, client, other)
    });

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for worker in workers {
        let log = worker
            .await
            .map_err(|e| anyhow!("a load worker failed: {e}"))?;
        latencies.extend(log.latencies);
        errors += log.errors;
        if first_error.is_none() {
            first_error = log.first_error;
        }
    }
    let (server_cpu, client_cpu, other_cpu) = sampler.await.unwrap_or((None, None, None));
    let requests = latencies.len() as u64;
    let seconds = duration.as_secs_f64();
    Ok(LoadResult {
        server: spec.server.clone(),
        model: spec.model.clone(),
        transport: spec.transport,
        concurrency: spec.concurrency,
        requests,
        errors,
        first_error,
        requests_per_s: requests as f64 / seconds,
        rows_per_s: requests as f64 / seconds,
        latency: Summary::from_nanos(&mut latencies),
        server_cpu,
        client_cpu,
        other_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn payloads_are_well_formed() {
        let payload = Payload::new("m", 64).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&payload.json_body).unwrap();
        assert_eq!(json["inputs"][0]["data"].as_array().unwrap().len(), 64);
        let header: serde_json::Value =
            serde_json::from_slice(&payload.binary_body[..payload.binary_header_len]).unwrap();
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 256);
        assert_eq!(payload.binary_body.len() - payload.binary_header_len, 256);
        let grpc = ModelInferRequest::decode(&payload.grpc_frame[5..]).unwrap();
        assert_eq!(grpc.raw_input_contents[0].len(), 256);
    }

    #[test]
    fn responses_are_checked() {
        let ok = json!({"outputs": [{"name": "OUTPUT0", "shape": [1, 10], "datatype": "FP32",
                                     "data": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]}]});
        verify_json_response(ok.to_string().as_bytes()).unwrap();
        assert!(verify_json_response(b"{\"outputs\": []}").is_err());
        let mut headers = http::HeaderMap::new();
        headers.insert("inference-header-content-length", "2".parse().unwrap());
        let mut body = b"{}".to_vec();
        body.extend_from_slice(&[0; 40]);
        verify_binary_response(&headers, &body).unwrap();
        assert!(verify_binary_response(&headers, &body[..30]).is_err());
    }
}
