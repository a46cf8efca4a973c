//! Real datasets for the tests: scikit-learn's digits and breast cancer data files (shipped in
//! its wheel, found through the test virtual environment) converted to Parquet with the parquet
//! crate's ArrowWriter. Shared by the end-to-end tests and the trainer's tests
//! (`trainer/tests/common` includes this file), so the fixtures are written one way.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;

/// Writes `columns` as one Parquet file.
pub fn write_parquet(path: &Path, columns: Vec<(String, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(name, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Writes float feature columns `names` (row-major `features`) and an integer `target` column.
pub fn write_table(path: &Path, names: &[String], features: &[f64], target: &[i64]) {
    let d = names.len();
    let mut columns: Vec<(String, ArrayRef)> = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let col: Vec<f64> = features.iter().skip(j).step_by(d).copied().collect();
            (name.clone(), Arc::new(Float64Array::from(col)) as ArrayRef)
        })
        .collect();
    columns.push(("target".into(), Arc::new(Int64Array::from(target.to_vec()))));
    write_parquet(path, columns);
}

/// scikit-learn's `datasets/data` folder: `$CERULEAN_SKLEARN_DATA`, or asked of the Python in
/// `${CERULEAN_VENV:-$HOME/.cache/cerulean/venv}`; `None` when neither has it.
pub fn sklearn_data() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CERULEAN_SKLEARN_DATA") {
        let dir = PathBuf::from(dir);
        return dir.join("digits.csv.gz").exists().then_some(dir);
    }
    let venv = std::env::var_os("CERULEAN_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cerulean/venv"))
        })?;
    let output = std::process::Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sklearn, os; print(os.path.dirname(sklearn.__file__))",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim()).join("datasets/data");
    dir.join("digits.csv.gz").exists().then_some(dir)
}

/// Parses comma-separated numbers, one row per line.
pub fn parse_rows(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|v| v.trim().parse::<f64>().unwrap())
                .collect()
        })
        .collect()
}

/// Converts a scikit-learn CSV (features then an integer target per row) into Parquet.
pub fn rows_to_parquet(rows: &[Vec<f64>], prefix: &str, path: &Path) {
    let d = rows[0].len() - 1;
    let names: Vec<String> = (0..d).map(|j| format!("{prefix}{j}")).collect();
    let features: Vec<f64> = rows.iter().flat_map(|r| r[..d].iter().copied()).collect();
    let target: Vec<i64> = rows.iter().map(|r| r[d] as i64).collect();
    write_table(path, &names, &features, &target);
}

/// scikit-learn's digits (1797 rows, 64 pixels, target 0-9) as Parquet in `dir`.
pub fn digits_parquet(data: &Path, dir: &Path) -> PathBuf {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data.join("digits.csv.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let rows = parse_rows(&text);
    assert_eq!(rows.len(), 1797);
    assert_eq!(rows[0].len(), 65);
    let path = dir.join("digits.parquet");
    rows_to_parquet(&rows, "pixel_", &path);
    path
}

/// scikit-learn's breast cancer data (569 rows, 30 features `f0..f29`, target 0/1) as Parquet
/// in `dir`.
pub fn breast_cancer_parquet(data: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(data.join("breast_cancer.csv")).unwrap();
    // The first line is "n_samples,n_features,class names...".
    let (header, body) = text.split_once('\n').unwrap();
    assert!(header.starts_with("569,30,"), "{header}");
    let rows = parse_rows(body);
    assert_eq!(rows.len(), 569);
    let path = dir.join("breast_cancer.parquet");
    rows_to_parquet(&rows, "f", &path);
    path
}
