//! End to end, an image classifier as users run it: a folder of PNG files (one sub-folder per
//! class) → `cerulean train submit --wait` to a registry with a `cerulean worker` → a registered
//! version → `cerulean serve --registry` answering v2 requests that carry the PNG files
//! themselves (BYTES, with the binary-data extension), and refusing an undecodable image with a
//! 400 that names the tensor; for the small CNN and for transfer learning on EfficientNet-Lite0
//! (which needs `cerulean models pull` in the worker's `CERULEAN_HOME`).

mod common;

use std::io::Cursor;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Server, cerulean, free_port, http_client};
use serde_json::{Value, json};

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `per_class` 12x12 RGB PNG images of three patterns (vertical stripes, horizontal
/// stripes, a filled square) with seeded noise and colours into `root/<pattern>/<n>.png`;
/// returns every file with its class.
fn patterns(root: &Path, per_class: usize) -> Vec<(Vec<u8>, &'static str)> {
    let mut state = 11u64;
    let mut rand = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut out = Vec::new();
    for class in ["horizontal", "square", "vertical"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for n in 0..per_class {
            let colour = [rand() % 156 + 100, rand() % 156 + 100, rand() % 156 + 100];
            let phase = rand() % 2;
            let noise: Vec<u32> = (0..144).map(|_| rand() % 60).collect();
            let img = image::RgbImage::from_fn(12, 12, |x, y| {
                let on = match class {
                    "vertical" => (x + phase) % 4 < 2,
                    "horizontal" => (y + phase) % 4 < 2,
                    _ => (3..9).contains(&x) && (3..9).contains(&y),
                };
                let base = noise[(y * 12 + x) as usize];
                image::Rgb(std::array::from_fn(|c| {
                    (if on { colour[c] } else { 0 } + base).min(255) as u8
                }))
            });
            let mut png = Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png).unwrap();
            std::fs::write(root.join(format!("{class}/{n:03}.png")), png.get_ref()).unwrap();
            out.push((png.into_inner(), class));
        }
    }
    out
}

/// POSTs a v2 request whose single BYTES input carries `images`, as binary data.
fn infer_images(http: &str, model: &str, images: &[&[u8]]) -> (u16, Value) {
    let mut body = Vec::new();
    for image in images {
        body.extend_from_slice(&(image.len() as u32).to_le_bytes());
        body.extend_from_slice(image);
    }
    let header = json!({
        "inputs": [{
            "name": "image",
            "datatype": "BYTES",
            "shape": [images.len(), 1],
            "parameters": {"binary_data_size": body.len()},
        }],
        "outputs": [{"name": "label"}],
    })
    .to_string();
    let header_len = header.len();
    let mut payload = header.into_bytes();
    payload.extend_from_slice(&body);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let response = http_client()
                .post(format!("http://{http}/v2/models/{model}/infer"))
                .header("Content-Type", "application/octet-stream")
                .header("Inference-Header-Content-Length", header_len.to_string())
                .body(payload)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json().await.unwrap())
        })
}

/// A registry with one `cerulean worker`, in a temporary directory.
struct Pool {
    dir: tempfile::TempDir,
    registry: Server,
    worker_log: std::path::PathBuf,
    _worker: Killed,
}

impl Pool {
    fn start() -> Pool {
        let dir = tempfile::tempdir().unwrap();
        let registry = Server::start_registry(
            &[
                "--backend-store-uri",
                &format!("sqlite://{}", dir.path().join("registry.db").display()),
                "--artifacts-destination",
                dir.path().join("artifacts").to_str().unwrap(),
                "--grpc-addr",
                &format!("127.0.0.1:{}", free_port()),
            ],
            &[],
        );
        let worker_log = dir.path().join("worker.log");
        let worker = Killed(
            cerulean()
                .args(["worker", "--registry", &registry.base_url()])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&worker_log).unwrap())
                .spawn()
                .expect("cerulean worker starts"),
        );
        Pool {
            dir,
            registry,
            worker_log,
            _worker: worker,
        }
    }

    fn url(&self) -> String {
        self.registry.base_url()
    }

    /// `cerulean train submit JOB --wait`: asserts success, returns stdout and stderr.
    fn submit_and_wait(&self, job_toml: &str) -> (String, String) {
        let job = self.dir.path().join("job.toml");
        std::fs::write(&job, job_toml).unwrap();
        let output = cerulean()
            .args(["train", "submit", job.to_str().unwrap(), "--wait"])
            .args(["--registry", &self.url()])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert!(
            output.status.success(),
            "{stdout}\n{stderr}\n--- worker\n{}",
            std::fs::read_to_string(&self.worker_log).unwrap_or_default()
        );
        (stdout, stderr)
    }

    /// `cerulean serve --registry` with an empty home of its own, once `model` is ready.
    fn serve(&self, model: &str) -> (Server, tempfile::TempDir) {
        let home = tempfile::tempdir().unwrap();
        let serve = Server::start(
            "serve",
            &["--registry", &self.url()],
            &[("CERULEAN_HOME", home.path())],
        );
        serve.wait_model_ready(model, Duration::from_secs(60));
        (serve, home)
    }
}

/// The share of `images` whose served label is their class, asked 20 files a request.
fn served_accuracy(http: &str, model: &str, images: &[(Vec<u8>, &str)]) -> f64 {
    let mut right = 0;
    for chunk in images.chunks(20) {
        let files: Vec<&[u8]> = chunk.iter().map(|(png, _)| png.as_slice()).collect();
        let (status, response) = infer_images(http, model, &files);
        assert_eq!(status, 200, "{response}");
        let labels = response["outputs"][0]["data"].as_array().unwrap();
        assert_eq!(labels.len(), chunk.len());
        right += labels
            .iter()
            .zip(chunk)
            .filter(|(label, (_, class))| label.as_str() == Some(*class))
            .count();
    }
    right as f64 / images.len() as f64
}

#[test]
fn an_image_folder_trains_registers_and_serves_png_files() {
    let pool = Pool::start();
    let folder = pool.dir.path().join("patterns");
    let images = patterns(&folder, 20);
    let url = pool.url();
    let (stdout, stderr) = pool.submit_and_wait(&format!(
        r#"
name = "patterns-cnn"
experiment = "patterns"
register_as = "patterns"
[dataset]
uri = "file://{}"
format = "image-folder"
validation_split = 0.2
[model]
family = "image-classifier"
image_size = 8
filters = [8, 16]
hidden = [16]
image_input = "encoded"
[train]
epochs = 8
batch_size = 8
learning_rate = 0.003
seed = 3
"#,
        folder.display()
    ));
    assert!(stdout.contains("48 training images x 3x8x8"), "{stdout}");
    assert!(stderr.contains("registered patterns version 1"), "{stderr}");

    // The folder registers as a dataset version, like a table.
    let register = cerulean()
        .args(["datasets", "register", "patterns"])
        .arg(format!("file://{}", folder.display()))
        .args(["--format", "image-folder", "--registry", &url])
        .output()
        .unwrap();
    let registered = String::from_utf8_lossy(&register.stdout);
    assert!(
        register.status.success() && registered.contains("patterns version 1:"),
        "{registered}{}",
        String::from_utf8_lossy(&register.stderr)
    );

    let (serve, _home) = pool.serve("patterns");
    let (status, metadata) = common::http_get(&serve.http, "/v2/models/patterns").unwrap();
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(
        metadata["inputs"],
        json!([{"name": "image", "datatype": "BYTES", "shape": [-1, 1]}])
    );

    let accuracy = served_accuracy(&serve.http, "patterns", &images);
    assert!(accuracy >= 0.8, "served accuracy {accuracy}");

    let (status, response) = infer_images(&serve.http, "patterns", &[b"not an image"]);
    assert_eq!(status, 400, "{response}");
    let error = response["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("input tensor 'image', element 0: cannot decode the image"),
        "{error}"
    );
}

/// Transfer learning as users run it: the worker reads EfficientNet-Lite0 from its model store
/// (`CERULEAN_HOME`, pulled by `cerulean models pull`), and the registered model carries the
/// backbone, so a server with an empty model store serves it.
#[test]
fn efficientnet_transfer_trains_registers_and_serves_from_an_empty_model_store() {
    let pool = Pool::start();
    let folder = pool.dir.path().join("patterns");
    let images = patterns(&folder, 20);
    let (stdout, stderr) = pool.submit_and_wait(&format!(
        r#"
name = "patterns-lite0"
register_as = "patterns-lite0"
[dataset]
uri = "file://{}"
format = "image-folder"
validation_split = 0.2
[model]
family = "image-classifier"
architecture = "efficientnet-lite0"
image_size = 32
image_input = "encoded"
[train]
epochs = 20
batch_size = 16
learning_rate = 0.01
seed = 3
"#,
        folder.display()
    ));
    assert!(
        stdout.contains("60 images through EfficientNet-Lite0 at 32x32 (1280 features)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("registered patterns-lite0 version 1"),
        "{stderr}"
    );

    let (serve, _home) = pool.serve("patterns-lite0");
    let (status, metadata) = common::http_get(&serve.http, "/v2/models/patterns-lite0").unwrap();
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(
        metadata["inputs"],
        json!([{"name": "image", "datatype": "BYTES", "shape": [-1, 1]}])
    );
    assert_eq!(metadata["outputs"][0]["shape"], json!([-1, 3]));
    let accuracy = served_accuracy(&serve.http, "patterns-lite0", &images);
    assert!(accuracy >= 0.8, "served accuracy {accuracy}");
}
