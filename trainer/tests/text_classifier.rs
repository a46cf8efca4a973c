//! The `text-classifier` family: trained on MiniLM embeddings of a small sentiment set, it
//! classifies held-out sentences, and its export, served by the serving crate's candle backend
//! with the cognitive crate's encoder, predicts what the trainer validated.
//!
//! Needs the prebuilt models (`cerulean models pull`, with `CERULEAN_HOME` pointing at them).

#[path = "common/sentiment.rs"]
mod sentiment;

use std::path::Path;
use std::sync::Arc;

use cerulean_cognitive::text_encoder::MiniLmProvider;
use cerulean_models::ModelStore;
use cerulean_serving::backend::candle::{Architecture, CandleModel, ModelSpec, bert};
use cerulean_serving::backend::text_encoder::TextEncoders;
use cerulean_serving::backend::{BackendOptions, BatchInput, ModelBackend};
use cerulean_serving::tensor::{BytesElements, encode_bytes_elements};
use cerulean_serving::{DataType, ServingError, Tensor};
use cerulean_trainer::{JobSpec, RecordingContext, load_dataset, train};

fn encoders() -> TextEncoders {
    let store = ModelStore::from_env();
    let provider =
        MiniLmProvider::from_store(&store, &BackendOptions::default()).unwrap_or_else(|e| {
            panic!(
                "{e}: run `cerulean models pull` first (or set CERULEAN_HOME to where they were \
                 pulled)"
            )
        });
    TextEncoders::new().with(Arc::new(provider))
}

fn job(path: &Path, model: &str) -> JobSpec {
    JobSpec::from_toml(&format!(
        r#"
name = "sentiment"
[dataset]
uri = "file://{}"
format = "jsonl"
label = "label"
text_column = "text"
validation_split = 0.25
[model]
family = "text-classifier"
{model}
[train]
seed = 3
epochs = 60
batch_size = 16
learning_rate = 0.01
"#,
        path.display()
    ))
    .unwrap()
}

fn serve(model: &CandleModel, texts: &[&str]) -> Vec<Tensor> {
    let spec = model.natural_signature().inputs[0].clone();
    assert_eq!(
        (spec.name.as_str(), spec.datatype, spec.dims.clone()),
        ("TEXT", DataType::Bytes, vec![-1, 1])
    );
    let bytes = encode_bytes_elements(texts.iter().map(|t| t.as_bytes()));
    let mut instance = model.create_instance().unwrap();
    instance
        .execute(&[BatchInput {
            spec: &spec,
            shape: vec![texts.len() as i64, 1],
            parts: vec![&bytes],
        }])
        .unwrap()
}

#[test]
fn a_text_classifier_learns_sentiment_and_serves_it() {
    let encoders = encoders();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sentiment.jsonl");
    std::fs::write(&path, sentiment::jsonl()).unwrap();
    let spec = job(&path, "");
    let data = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(load_dataset(&spec.dataset))
        .unwrap();
    let mut ctx = RecordingContext::new();
    let outcome = train(&spec, &data, None, &mut ctx).unwrap();
    let accuracy = outcome.metrics["val_accuracy"];
    println!(
        "held-out accuracy {accuracy:.3} ({} epochs)",
        outcome.epochs_run
    );
    assert!(accuracy >= 0.8, "held-out accuracy {accuracy}");

    let model_dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &outcome.files {
        std::fs::write(model_dir.path().join(name), bytes).unwrap();
    }
    let spec_json: ModelSpec = serde_json::from_slice(&outcome.files[1].1).unwrap();
    let Architecture::TextClassifier {
        encoder,
        max_length,
        head,
        ..
    } = &spec_json.architecture
    else {
        panic!("{:?}", spec_json.architecture)
    };
    assert_eq!((encoder.as_str(), *max_length), ("all-MiniLM-L6-v2", 256));
    assert!(matches!(
        head.as_ref(),
        Architecture::Mlp {
            input_dim: 384,
            output_dim: 3,
            ..
        }
    ));
    assert_eq!(spec_json.labels, ["negative", "neutral", "positive"]);

    // Without an encoder the model cannot load, and says which one it needs.
    let weights = model_dir.path().join("model.safetensors");
    let err = CandleModel::load(&weights).err().unwrap();
    assert!(matches!(err, ServingError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("all-MiniLM-L6-v2"), "{err}");

    // Served, it gets exactly the trainer's validation accuracy on the validation rows.
    let model = CandleModel::load_with(&weights, &encoders).unwrap();
    let (_, val_rows) = cerulean_lake::split(data.rows, 0.25, 3).unwrap();
    let (labels, truth) = data.label.values.classes().unwrap();
    let texts = &data.text.as_ref().unwrap().values;
    let val_texts: Vec<&str> = val_rows.iter().map(|&r| texts[r].as_str()).collect();
    let out = serve(&model, &val_texts);
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["probabilities", "class_index", "label"]);
    let classes: Vec<i64> = out[1]
        .data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let served_labels: Vec<&[u8]> = BytesElements::new(&out[2].data).collect();
    let mut correct = 0;
    for ((&r, &c), label) in val_rows.iter().zip(&classes).zip(&served_labels) {
        assert_eq!(labels[c as usize].as_bytes(), *label);
        correct += usize::from(truth[r] as i64 == c);
    }
    let served_accuracy = correct as f64 / val_rows.len() as f64;
    assert!(
        (served_accuracy - accuracy).abs() < 1e-9,
        "served {served_accuracy}, trained {accuracy}"
    );
    // New sentences, too.
    let out = serve(
        &model,
        &[
            "This was a wonderful, delightful evening.",
            "The food was awful and the staff rude.",
        ],
    );
    let labels: Vec<&[u8]> = BytesElements::new(&out[2].data).collect();
    assert_eq!(labels, [b"positive".as_slice(), b"negative".as_slice()]);
}

#[test]
fn an_mlp_head_exports_its_layers_and_the_encoder_width_is_fixed() {
    encoders();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sentiment.jsonl");
    std::fs::write(&path, sentiment::jsonl()).unwrap();
    let spec = job(&path, "hidden = [32]\nmax_length = 64");
    assert_eq!(spec.hyperparameters().unwrap().hidden, [32]);
    let data = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(load_dataset(&spec.dataset))
        .unwrap();
    let outcome = train(&spec, &data, None, &mut RecordingContext::new()).unwrap();
    let exported: ModelSpec = serde_json::from_slice(&outcome.files[1].1).unwrap();
    let Architecture::TextClassifier {
        max_length, head, ..
    } = &exported.architecture
    else {
        panic!("{:?}", exported.architecture)
    };
    assert_eq!(*max_length, 64);
    assert!(matches!(head.as_ref(), Architecture::Mlp { hidden, .. } if hidden == &[32]));

    let wrong = job(&path, "embedding_dim = 64");
    let err = train(&wrong, &data, None, &mut RecordingContext::new())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.embedding_dim") && err.contains("384"),
        "{err}"
    );
}

/// With `fine_tune_encoder = true` the encoder trains with the head (candle's BERT over
/// all-MiniLM-L6-v2's FP32 weights); the exported model carries its encoder, so it serves with
/// no server-side encoder, predicting what the trainer validated.
#[test]
fn a_fine_tuned_encoder_learns_sentiment_and_is_carried_by_the_model() {
    // First, the candle BERT reproduces the prebuilt ONNX MiniLM (int8) on the same sentences.
    let store = ModelStore::from_env();
    let installed = |entry: &str, file: &str| {
        store.installed_file(entry, file).unwrap_or_else(|| {
            panic!("{entry}/{file}: run `cerulean models pull` first (or set CERULEAN_HOME)")
        })
    };
    let weights = installed("minilm-l6-v2-weights", "model.safetensors");
    let device = candle_core::Device::Cpu;
    let config = bert::read_config(
        &std::fs::read(installed("minilm-l6-v2-tokenizer", "config.json")).unwrap(),
    )
    .unwrap();
    let pretrained = candle_core::safetensors::load(&weights, &device).unwrap();
    let candle_bert = bert::BertEncoder::new(
        candle_nn::VarBuilder::from_tensors(pretrained.clone(), candle_core::DType::F32, &device),
        &config,
    )
    .unwrap();
    let tokenizer =
        bert::read_tokenizer(&installed("minilm-l6-v2-tokenizer", "tokenizer.json"), 64).unwrap();
    let sentences = [
        "The staff were friendly and the room was spotless.",
        "I will never order from this shop again.",
        "The meeting is moved to Thursday afternoon.",
    ];
    let ids = bert::token_ids(&tokenizer, &sentences, &device).unwrap();
    let ours: Vec<Vec<f32>> = candle_bert.embed(&ids).unwrap().to_vec2().unwrap();
    let onnx = encoders()
        .get("all-MiniLM-L6-v2")
        .unwrap()
        .create(64)
        .unwrap()
        .encode(&sentences)
        .unwrap();
    for (i, row) in ours.iter().enumerate() {
        let cosine: f32 = row
            .iter()
            .zip(&onnx[i * 384..(i + 1) * 384])
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            cosine > 0.97,
            "sentence {i}: cosine {cosine} with the ONNX encoder"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sentiment.jsonl");
    std::fs::write(&path, sentiment::jsonl()).unwrap();
    let spec = JobSpec::from_toml(&format!(
        r#"
name = "sentiment-fine-tuned"
[dataset]
uri = "file://{}"
format = "jsonl"
label = "label"
text_column = "text"
validation_split = 0.25
[model]
family = "text-classifier"
fine_tune_encoder = true
max_length = 64
[train]
seed = 3
epochs = 8
batch_size = 16
learning_rate = 0.01
"#,
        path.display()
    ))
    .unwrap();
    let data = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(load_dataset(&spec.dataset))
        .unwrap();
    let started = std::time::Instant::now();
    let mut ctx = RecordingContext::new();
    let outcome = train(&spec, &data, None, &mut ctx).unwrap_or_else(|e| {
        panic!(
            "{e}: run `cerulean models pull` first (or set CERULEAN_HOME to where they were pulled)"
        )
    });
    let accuracy = outcome.metrics["val_accuracy"];
    println!(
        "fine-tuned: held-out accuracy {accuracy:.3} after {} epochs in {:.1}s; {}",
        outcome.epochs_run,
        started.elapsed().as_secs_f64(),
        ctx.lines[0]
    );
    assert!(accuracy >= 0.8, "held-out accuracy {accuracy}");

    let names: Vec<&str> = outcome.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.safetensors",
            "model.json",
            "tokenizer.json",
            "encoder_config.json"
        ]
    );
    let model_dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &outcome.files {
        std::fs::write(model_dir.path().join(name), bytes).unwrap();
    }
    let spec_json: ModelSpec = serde_json::from_slice(&outcome.files[1].1).unwrap();
    assert!(matches!(
        spec_json.architecture,
        Architecture::TextClassifier {
            fine_tuned: true,
            ..
        }
    ));

    // The encoder changed: the exported weights differ from the pretrained ones.
    let exported = candle_core::safetensors::load(
        model_dir.path().join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let key = "encoder.layer.0.attention.self.query.weight";
    let before = &pretrained[key];
    let after = &exported[&format!("encoder.{key}")];
    let change = (after - before)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(change > 0.0, "the encoder was trained");

    // Served with no encoder registered: the model brings its own.
    let model = CandleModel::load(&model_dir.path().join("model.safetensors")).unwrap();
    let (_, val_rows) = cerulean_lake::split(data.rows, 0.25, 3).unwrap();
    let (_, truth) = data.label.values.classes().unwrap();
    let texts = &data.text.as_ref().unwrap().values;
    let val_texts: Vec<&str> = val_rows.iter().map(|&r| texts[r].as_str()).collect();
    let out = serve(&model, &val_texts);
    let classes: Vec<i64> = out[1]
        .data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let correct = val_rows
        .iter()
        .zip(&classes)
        .filter(|(r, c)| truth[**r] as i64 == **c)
        .count();
    let served_accuracy = correct as f64 / val_rows.len() as f64;
    assert!(
        (served_accuracy - accuracy).abs() < 1e-9,
        "served {served_accuracy}, trained {accuracy}"
    );
}
