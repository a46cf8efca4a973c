//! Test data shared by the lake tests: a small table and its encodings with Arrow's writers.

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use cerulean_lake::TableFormat;

/// `rows` rows `{id: i64, name: utf8, value: f64}` starting at id `start`.
pub fn batch(start: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + rows as i64).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
    let values: Vec<f64> = ids.iter().map(|&i| i as f64 * 0.5).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .unwrap()
}

/// `data` encoded in `format` with Arrow's writers.
pub fn encode(format: TableFormat, data: &RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    match format {
        TableFormat::Parquet => {
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut buf, data.schema(), None).unwrap();
            w.write(data).unwrap();
            w.close().unwrap();
        }
        TableFormat::Csv => {
            let mut w = arrow::csv::Writer::new(&mut buf);
            w.write(data).unwrap();
        }
        TableFormat::JsonLines => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
            w.write(data).unwrap();
            w.finish().unwrap();
        }
    }
    buf
}

/// The extension files of `format` are written with.
pub fn ext(format: TableFormat) -> &'static str {
    format.extensions()[0]
}
