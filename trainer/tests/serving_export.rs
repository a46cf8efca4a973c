//! Exported models load in the serving crate's candle backend and serve the same predictions the
//! trainer validated: the served class indices give exactly the trainer's validation accuracy,
//! and the served regression values its validation RMSE.

mod common;

use std::path::Path;

use cerulean_serving::backend::candle::{CandleModel, ModelSpec};
use cerulean_serving::backend::{BatchInput, ModelBackend};
use cerulean_serving::{DataType, Tensor};
use cerulean_trainer::{LabelValues, LoadedDataset, RecordingContext, TrainOutcome, train};

fn write_files(outcome: &TrainOutcome, dir: &Path) {
    let names: Vec<&str> = outcome.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["model.safetensors", "model.json"]);
    for (name, bytes) in &outcome.files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // Serving's own type reads every field the trainer wrote, and writes the same JSON back.
    let ours: serde_json::Value = serde_json::from_slice(&outcome.files[1].1).unwrap();
    let theirs: ModelSpec = serde_json::from_value(ours.clone()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&serde_json::to_vec(&theirs).unwrap()).unwrap();
    assert_eq!(written, ours);
}

/// Serves the raw (unstandardized) features of `rows` and returns the outputs.
fn serve(dir: &Path, data: &LoadedDataset, rows: &[usize]) -> Vec<Tensor> {
    let model = CandleModel::load(&dir.join("model.safetensors")).unwrap();
    let d = data.feature_count();
    let mut bytes = Vec::with_capacity(rows.len() * d * 4);
    for &r in rows {
        for v in &data.features[r * d..(r + 1) * d] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    let spec = model.natural_signature().inputs[0].clone();
    assert_eq!(spec.name, "features");
    assert_eq!(spec.dims, vec![-1, d as i64]);
    let mut instance = model.create_instance().unwrap();
    instance
        .execute(&[BatchInput {
            spec: &spec,
            shape: vec![rows.len() as i64, d as i64],
            parts: vec![&bytes],
        }])
        .unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn a_served_classifier_predicts_what_the_trainer_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 600);
    let spec = common::job(
        &path,
        "target",
        "mlp",
        "hidden = [16, 8]",
        "epochs = 8\nbatch_size = 32",
    );
    let data = common::load(&spec);
    let outcome = train(&spec, &data, None, &mut RecordingContext::new()).unwrap();
    let model_dir = tempfile::tempdir().unwrap();
    write_files(&outcome, model_dir.path());

    let (_, val_rows) = cerulean_lake::split(data.rows, 0.2, 7).unwrap();
    let (labels, truth) = data.label.values.classes().unwrap();
    assert_eq!(labels, ["0", "1", "2"]);
    let out = serve(model_dir.path(), &data, &val_rows);
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["probabilities", "class_index", "label"]);
    assert_eq!(out[0].datatype, DataType::Fp32);
    assert_eq!(out[0].shape, vec![val_rows.len() as i64, 3]);
    let probabilities = f32s(&out[0]);
    let class_index: Vec<i64> = out[1]
        .data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let served_labels: Vec<&[u8]> = out[2].bytes_elements().collect();
    let mut correct = 0;
    for (i, &r) in val_rows.iter().enumerate() {
        let row = &probabilities[i * 3..i * 3 + 3];
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let argmax = (0..3).fold(0, |b, c| if row[c] > row[b] { c } else { b });
        assert_eq!(class_index[i], argmax as i64);
        assert_eq!(served_labels[i], labels[argmax].as_bytes());
        correct += usize::from(argmax as u32 == truth[r]);
    }
    let served_accuracy = correct as f64 / val_rows.len() as f64;
    assert_eq!(served_accuracy, outcome.metrics["val_accuracy"]);
    assert!(served_accuracy > 0.8);
}

#[test]
fn a_served_regression_predicts_in_the_labels_units() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::linear_data(dir.path(), 500, 0.5);
    let spec = common::job(
        &path,
        "y",
        "mlp",
        "hidden = [8]\ntask = \"regression\"",
        "epochs = 40\nbatch_size = 16\nlearning_rate = 0.01",
    );
    let data = common::load(&spec);
    let outcome = train(&spec, &data, None, &mut RecordingContext::new()).unwrap();
    let model_dir = tempfile::tempdir().unwrap();
    write_files(&outcome, model_dir.path());

    let (_, val_rows) = cerulean_lake::split(data.rows, 0.2, 7).unwrap();
    let LabelValues::Numeric { values, .. } = &data.label.values else {
        panic!("numeric label")
    };
    let out = serve(model_dir.path(), &data, &val_rows);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "prediction");
    assert_eq!(out[0].shape, vec![val_rows.len() as i64, 1]);
    let predicted = f32s(&out[0]);
    let se: f64 = val_rows
        .iter()
        .zip(&predicted)
        .map(|(&r, &p)| (f64::from(p) - f64::from(values[r] as f32)).powi(2))
        .sum();
    let served_rmse = (se / val_rows.len() as f64).sqrt();
    let trained_rmse = outcome.metrics["val_rmse"];
    assert!(
        (served_rmse - trained_rmse).abs() <= 1e-4 * trained_rmse.max(1.0),
        "served {served_rmse} trained {trained_rmse}"
    );
    assert!(trained_rmse < 0.75, "{trained_rmse}");
}
