//! Quality on real data: scikit-learn's digits and breast-cancer datasets, converted to Parquet and
//! trained through the lake. Skipped (with a message) when scikit-learn's data files cannot be
//! found: set `CERULEAN_SKLEARN_DATA` to its `sklearn/datasets/data` folder, or have scikit-learn
//! in `${CERULEAN_VENV:-$HOME/.cache/cerulean/venv}`.

mod common;

use cerulean_trainer::{RecordingContext, Task, train};

#[test]
fn digits_mlp_reaches_95_percent() {
    let Some(data_dir) = common::sklearn_data() else {
        println!(
            "skipped: scikit-learn's data files not found (set CERULEAN_SKLEARN_DATA or CERULEAN_VENV)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = common::digits_parquet(&data_dir, dir.path());
    let spec = cerulean_trainer::JobSpec::from_toml(&format!(
        r#"
name = "digits-mlp"
experiment = "digits"
register_as = "digits"
[dataset]
uri = "file://{}"
format = "parquet"
label = "target"
validation_split = 0.2
[model]
family = "mlp"
hidden = [64, 32]
[train]
epochs = 30
batch_size = 64
learning_rate = 0.001
device = "cpu"
seed = 42
"#,
        path.display()
    ))
    .unwrap();
    let data = common::load(&spec);
    assert_eq!(data.rows, 1797);
    assert_eq!(data.feature_count(), 64);
    assert_eq!(data.version.row_count, 1797);
    assert!(data.version.content_hash.starts_with("sha256:"));
    let mut ctx = RecordingContext::new();
    let outcome = train(&spec, &data, None, &mut ctx).unwrap();
    assert_eq!(outcome.task, Task::Classification);
    let accuracy = outcome.metrics["val_accuracy"];
    println!(
        "digits mlp [64, 32], 30 epochs: held-out accuracy {accuracy:.4}, macro-F1 {:.4}, last epoch {}",
        outcome.metrics["val_macro_f1"],
        ctx.lines[ctx.lines.len() - 2]
    );
    assert!(accuracy >= 0.95, "{accuracy}");
}

#[test]
fn breast_cancer_logistic_reaches_95_percent() {
    let Some(data_dir) = common::sklearn_data() else {
        println!(
            "skipped: scikit-learn's data files not found (set CERULEAN_SKLEARN_DATA or CERULEAN_VENV)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = common::breast_cancer_parquet(&data_dir, dir.path());
    let spec = common::job(
        &path,
        "target",
        "logistic",
        "",
        "epochs = 30\nbatch_size = 32\nlearning_rate = 0.01",
    );
    let data = common::load(&spec);
    let outcome = train(&spec, &data, None, &mut RecordingContext::new()).unwrap();
    let accuracy = outcome.metrics["val_accuracy"];
    println!(
        "breast cancer logistic, 30 epochs: held-out accuracy {accuracy:.4}, macro-F1 {:.4}",
        outcome.metrics["val_macro_f1"]
    );
    assert!(accuracy >= 0.95, "{accuracy}");
}
