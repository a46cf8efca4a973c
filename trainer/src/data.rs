//! Datasets for training: streamed from the lake as Arrow record batches and gathered into one
//! in-memory, row-major F32 feature matrix plus the label column ([`LoadedDataset`]), with the
//! lake's [`DatasetVersion`] for lineage.

use std::collections::{BTreeSet, HashSet};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Schema};
use cerulean_lake::{DatasetVersion, LakeUri};
use futures::TryStreamExt;

use crate::error::{Result, TrainError};
use crate::images::ImageSet;
use crate::spec::DatasetSpec;

/// Rows per record batch read from the lake.
const READ_BATCH_ROWS: usize = 8192;
/// The most classes a classification label may have.
pub const MAX_CLASSES: usize = 10_000;

/// A dataset loaded for training.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    /// The dataset URI as given in the job.
    pub uri: String,
    /// The lake's version of the data read (content hash, schema, row count, objects).
    pub version: DatasetVersion,
    /// Rows read.
    pub rows: usize,
    /// The feature columns, in the model's input order.
    pub feature_names: Vec<String>,
    /// The features, row-major: row `r`, feature `f` is at `r * feature_names.len() + f`.
    pub features: Vec<f32>,
    /// The label column.
    pub label: LabelColumn,
    /// The text column (`dataset.text_column`), when the job names one.
    pub text: Option<TextColumn>,
    /// An image-folder dataset's images (its label is each image's class name).
    pub images: Option<ImageSet>,
}

/// The label (target) column.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelColumn {
    /// The column name.
    pub name: String,
    /// The Arrow data type, as Arrow displays it (e.g. `Int64`, `Utf8`).
    pub data_type: String,
    /// One value per row.
    pub values: LabelValues,
}

/// A label column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelValues {
    /// A numeric column (integers and decimals read as f64).
    Numeric {
        /// The values.
        values: Vec<f64>,
        /// Whether the column has an integer type.
        integer: bool,
    },
    /// A string or boolean column (booleans as `false` / `true`).
    Categorical(Vec<String>),
}

/// A text column.
#[derive(Debug, Clone, PartialEq)]
pub struct TextColumn {
    /// The column name.
    pub name: String,
    /// One text per row (nulls as empty texts).
    pub values: Vec<String>,
}

impl LabelValues {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            LabelValues::Numeric { values, .. } => values.len(),
            LabelValues::Categorical(values) => values.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The distinct values, counted up to `limit` (returns `limit + 1` when there are more).
    pub fn distinct_up_to(&self, limit: usize) -> usize {
        let mut seen = HashSet::new();
        match self {
            LabelValues::Numeric { values, .. } => {
                for v in values {
                    seen.insert(v.to_bits());
                    if seen.len() > limit {
                        break;
                    }
                }
            }
            LabelValues::Categorical(values) => {
                let mut strings = HashSet::new();
                for v in values {
                    strings.insert(v.as_str());
                    if strings.len() > limit {
                        break;
                    }
                }
                return strings.len();
            }
        }
        seen.len()
    }

    /// The class labels, sorted: numbers in numeric order written in their shortest form (`0`,
    /// `1`, `2.5`), strings in byte order; and each row's class index into that list.
    pub fn classes(&self) -> Result<(Vec<String>, Vec<u32>)> {
        let too_many = |n: usize| {
            TrainError::data(format!(
                "the label has more than {MAX_CLASSES} distinct values ({n}+); \
                 set model.task = \"regression\" if it is a number to predict"
            ))
        };
        match self {
            LabelValues::Numeric { values, .. } => {
                let mut distinct: Vec<f64> = values.clone();
                distinct.sort_by(f64::total_cmp);
                distinct.dedup();
                if distinct.len() > MAX_CLASSES {
                    return Err(too_many(distinct.len()));
                }
                let indices = values
                    .iter()
                    .map(|v| distinct.partition_point(|d| d < v) as u32)
                    .collect();
                Ok((distinct.iter().map(|v| v.to_string()).collect(), indices))
            }
            LabelValues::Categorical(values) => {
                let distinct: Vec<&str> = values
                    .iter()
                    .map(String::as_str)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if distinct.len() > MAX_CLASSES {
                    return Err(too_many(distinct.len()));
                }
                let indices = values
                    .iter()
                    .map(|v| distinct.partition_point(|d| *d < v.as_str()) as u32)
                    .collect();
                Ok((distinct.iter().map(|s| (*s).to_owned()).collect(), indices))
            }
        }
    }
}

impl LoadedDataset {
    /// Features per row.
    pub fn feature_count(&self) -> usize {
        self.feature_names.len()
    }

    /// Builds a dataset from record batches already in memory (e.g. the output of a
    /// point-in-time join), selecting columns as `spec` says.
    pub fn from_batches(
        spec: &DatasetSpec,
        schema: &Schema,
        batches: impl IntoIterator<Item = RecordBatch>,
        version: DatasetVersion,
    ) -> Result<LoadedDataset> {
        let mut builder = DatasetBuilder::new(spec, schema)?;
        for batch in batches {
            builder.push(&batch)?;
        }
        builder.finish(spec.uri.clone(), version)
    }
}

/// Reads the tabular dataset `spec` names from the lake (a file or a prefix of files, streamed
/// batch by batch; only the selected columns are kept) and records its version.
///
/// Columns: the label (`dataset.label`), the features (`dataset.features`, or every numeric
/// column but the label and the text column, in schema order) and the text column if named.
/// Features may be any numeric or boolean type; null values are errors naming the column and row.
/// Image folders are read by [`crate::images::load_image_folder`].
pub async fn load_dataset(spec: &DatasetSpec) -> Result<LoadedDataset> {
    let Some(format) = spec.format.table_format() else {
        return crate::images::load_image_folder(spec).await;
    };
    let uri =
        LakeUri::parse(&spec.uri).map_err(|e| TrainError::spec("dataset.uri", e.to_string()))?;
    let mut table = cerulean_lake::open_table(&uri, format, READ_BATCH_ROWS).await?;
    let mut builder = DatasetBuilder::new(spec, &table.schema)?;
    while let Some(batch) = table.batches.try_next().await? {
        builder.push(&batch)?;
    }
    let version = DatasetVersion::from_parts(&table.objects, &table.schema, builder.rows as u64);
    builder.finish(spec.uri.clone(), version)
}

/// Gathers the selected columns of a stream of record batches.
struct DatasetBuilder {
    label: String,
    feature_names: Vec<String>,
    text_column: Option<String>,
    rows: usize,
    features: Vec<f32>,
    label_numeric: Vec<f64>,
    label_strings: Vec<String>,
    label_kind: LabelKind,
    label_type: String,
    text: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LabelKind {
    Numeric { integer: bool },
    Strings,
    Bools,
}

fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_feature_type(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Boolean
}

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_string_type(value),
        _ => false,
    }
}

impl DatasetBuilder {
    fn new(spec: &DatasetSpec, schema: &Schema) -> Result<DatasetBuilder> {
        let label = spec
            .label
            .clone()
            .ok_or_else(|| TrainError::spec("dataset.label", "is required"))?;
        let field = |name: &str, key: &str| {
            schema.field_with_name(name).map_err(|_| {
                TrainError::spec(
                    key,
                    format!(
                        "column '{name}' is not in the dataset; its columns are: {}",
                        column_names(schema)
                    ),
                )
            })
        };
        let label_field = field(&label, "dataset.label")?;
        let label_type = label_field.data_type();
        let label_kind = if label_type.is_numeric() {
            LabelKind::Numeric {
                integer: label_type.is_integer(),
            }
        } else if *label_type == DataType::Boolean {
            LabelKind::Bools
        } else if is_string_type(label_type) {
            LabelKind::Strings
        } else {
            return Err(TrainError::column(
                &label,
                format!("the label must be numeric, boolean or a string, not {label_type}"),
            ));
        };
        if let Some(text) = &spec.text_column {
            let t = field(text, "dataset.text_column")?.data_type();
            if !is_string_type(t) {
                return Err(TrainError::column(
                    text,
                    format!("the text column must hold strings, not {t}"),
                ));
            }
        }
        let feature_names = match &spec.features {
            Some(names) => {
                for (i, name) in names.iter().enumerate() {
                    let t = field(name, &format!("dataset.features[{i}]"))?.data_type();
                    if !is_feature_type(t) {
                        return Err(TrainError::column(
                            name,
                            format!("a feature must be numeric or boolean, not {t}"),
                        ));
                    }
                }
                names.clone()
            }
            None => schema
                .fields()
                .iter()
                .filter(|f| {
                    f.name() != &label
                        && Some(f.name()) != spec.text_column.as_ref()
                        && f.data_type().is_numeric()
                })
                .map(|f| f.name().clone())
                .collect(),
        };
        Ok(DatasetBuilder {
            label,
            feature_names,
            text_column: spec.text_column.clone(),
            rows: 0,
            features: Vec::new(),
            label_numeric: Vec::new(),
            label_strings: Vec::new(),
            label_kind,
            label_type: label_type.to_string(),
            text: Vec::new(),
        })
    }

    fn column<'a>(&self, batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
        batch
            .column_by_name(name)
            .ok_or_else(|| TrainError::column(name, "missing from a record batch"))
    }

    fn no_nulls(&self, array: &dyn Array, name: &str) -> Result<()> {
        if array.null_count() == 0 {
            return Ok(());
        }
        let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0) + self.rows;
        Err(TrainError::column(
            name,
            format!("row {row} is null; fill or drop null values before training"),
        ))
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let d = self.feature_names.len();
        let base = self.features.len();
        self.features.resize(base + n * d, 0.0);
        for (j, name) in self.feature_names.iter().enumerate() {
            let array = self.column(batch, name)?;
            self.no_nulls(array.as_ref(), name)?;
            let cast = arrow::compute::cast(array, &DataType::Float32)
                .map_err(|e| TrainError::column(name, format!("cannot read as numbers: {e}")))?;
            let values = cast.as_primitive::<Float32Type>().values();
            for (i, &v) in values.iter().enumerate() {
                self.features[base + i * d + j] = v;
            }
        }
        let label = self.label.clone();
        let array = self.column(batch, &label)?;
        self.no_nulls(array.as_ref(), &label)?;
        match self.label_kind {
            LabelKind::Numeric { .. } => {
                let cast = arrow::compute::cast(array, &DataType::Float64).map_err(|e| {
                    TrainError::column(&label, format!("cannot read as numbers: {e}"))
                })?;
                let values = cast.as_primitive::<Float64Type>().values();
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(TrainError::column(
                        &label,
                        format!("row {} is not a finite number", self.rows + i),
                    ));
                }
                self.label_numeric.extend_from_slice(values);
            }
            LabelKind::Bools => {
                let values = array.as_boolean();
                self.label_strings
                    .extend((0..n).map(|i| values.value(i).to_string()));
            }
            LabelKind::Strings => {
                let cast = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| {
                    TrainError::column(&label, format!("cannot read as strings: {e}"))
                })?;
                let values = cast.as_string::<i32>();
                self.label_strings
                    .extend((0..n).map(|i| values.value(i).to_owned()));
            }
        }
        if let Some(name) = self.text_column.clone() {
            let array = self.column(batch, &name)?;
            let cast = arrow::compute::cast(array, &DataType::Utf8)
                .map_err(|e| TrainError::column(&name, format!("cannot read as strings: {e}")))?;
            let values = cast.as_string::<i32>();
            self.text.extend((0..n).map(|i| {
                if values.is_null(i) {
                    String::new()
                } else {
                    values.value(i).to_owned()
                }
            }));
        }
        self.rows += n;
        Ok(())
    }

    fn finish(self, uri: String, version: DatasetVersion) -> Result<LoadedDataset> {
        if self.rows == 0 {
            return Err(TrainError::data(format!("{uri} has no rows")));
        }
        let values = match self.label_kind {
            LabelKind::Numeric { integer } => LabelValues::Numeric {
                values: self.label_numeric,
                integer,
            },
            LabelKind::Strings | LabelKind::Bools => LabelValues::Categorical(self.label_strings),
        };
        Ok(LoadedDataset {
            uri,
            version,
            rows: self.rows,
            feature_names: self.feature_names,
            features: self.features,
            label: LabelColumn {
                name: self.label,
                data_type: self.label_type,
                values,
            },
            text: self.text_column.map(|name| TextColumn {
                name,
                values: self.text,
            }),
            images: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, Int32Array, StringArray};
    use arrow::datatypes::Field;

    use crate::spec::DatasetFormat;

    fn spec(label: &str, features: Option<Vec<&str>>) -> DatasetSpec {
        DatasetSpec {
            uri: "file:///tmp/x.parquet".into(),
            format: DatasetFormat::Parquet,
            label: Some(label.into()),
            features: features.map(|f| f.into_iter().map(String::from).collect()),
            validation_split: 0.2,
            text_column: None,
        }
    }

    fn batch() -> (Arc<Schema>, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Int32, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("flag", DataType::Boolean, false),
            Field::new("y", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])),
                Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(3)])),
                Arc::new(StringArray::from(vec!["x", "y", "z"])),
                Arc::new(BooleanArray::from(vec![true, false, true])),
                Arc::new(Int32Array::from(vec![10, 2, 10])),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    fn version(schema: &Schema) -> DatasetVersion {
        DatasetVersion::from_parts(&[], schema, 3)
    }

    #[test]
    fn default_features_are_the_numeric_columns() {
        let (schema, batch) = batch();
        let d = LoadedDataset::from_batches(
            &spec("y", None),
            &schema,
            [batch.clone(), batch],
            version(&schema),
        )
        .unwrap();
        assert_eq!(d.feature_names, vec!["a", "b"]);
        assert_eq!(d.rows, 6);
        assert_eq!(&d.features[..6], &[1.5, 1.0, 2.5, 2.0, 3.5, 3.0]);
        let (classes, idx) = d.label.values.classes().unwrap();
        // Numeric order, not string order.
        assert_eq!(classes, vec!["2", "10"]);
        assert_eq!(&idx[..3], &[1, 0, 1]);
        assert_eq!(d.label.data_type, "Int32");
    }

    #[test]
    fn explicit_features_and_string_labels() {
        let (schema, batch) = batch();
        let d = LoadedDataset::from_batches(
            &spec("name", Some(vec!["flag", "a"])),
            &schema,
            [batch],
            version(&schema),
        )
        .unwrap();
        assert_eq!(d.features, vec![1.0, 1.5, 0.0, 2.5, 1.0, 3.5]);
        assert_eq!(
            d.label.values,
            LabelValues::Categorical(vec!["x".into(), "y".into(), "z".into()])
        );
    }

    #[test]
    fn bad_columns_are_named() {
        let (schema, batch) = batch();
        let e = LoadedDataset::from_batches(
            &spec("nope", None),
            &schema,
            [batch.clone()],
            version(&schema),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("dataset.label: column 'nope' is not in the dataset"),
            "{e}"
        );
        let e = LoadedDataset::from_batches(
            &spec("y", Some(vec!["name"])),
            &schema,
            [batch.clone()],
            version(&schema),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("dataset column 'name': a feature must be numeric"),
            "{e}"
        );
        let with_null = RecordBatch::try_new(
            schema.clone(),
            vec![
                batch.column(0).clone(),
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                batch.column(2).clone(),
                batch.column(3).clone(),
                batch.column(4).clone(),
            ],
        )
        .unwrap();
        let e = LoadedDataset::from_batches(
            &spec("y", None),
            &schema,
            [batch, with_null],
            version(&schema),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "dataset column 'b': row 4 is null; fill or drop null values before training"
        );
    }
}
