//! Tabular datasets (Parquet, CSV, JSON lines) read as streams of Arrow record batches.

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::{Buf, Bytes};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
// `ParquetObjectReader` is deprecated in parquet 60 in favour of a hand-written `AsyncFileReader`;
// it still works (also against Azure, given the file size) and is kept until that reader is written.
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;

use crate::version::schema_json;
use crate::{LakeError, LakeUri, Result, open_store};

/// Bytes read from the start of the first file to infer a CSV or JSON-lines schema.
const INFER_BYTES: u64 = 1 << 20;
/// Rows read from the start of the first file to infer a CSV or JSON-lines schema.
const INFER_ROWS: usize = 1000;

/// The file format of a tabular dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFormat {
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    JsonLines,
}

impl TableFormat {
    /// The file extensions (lower case, without the dot) of this format's objects in a prefix.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Parquet => &["parquet", "pq"],
            Self::Csv => &["csv"],
            Self::JsonLines => &["jsonl", "ndjson", "json"],
        }
    }

    fn describe(self) -> String {
        let exts: Vec<String> = self.extensions().iter().map(|e| format!(".{e}")).collect();
        format!("{self} files ({})", exts.join(", "))
    }
}

impl FromStr for TableFormat {
    type Err = LakeError;

    /// Parses `parquet`, `csv` or `jsonl` (also `json`, `ndjson`, `json-lines`), ignoring case.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            "jsonl" | "json" | "ndjson" | "json-lines" | "jsonlines" => Ok(Self::JsonLines),
            _ => Err(LakeError::UnknownFormat(s.to_owned())),
        }
    }
}

impl fmt::Display for TableFormat {
    /// Writes `parquet`, `csv` or `jsonl`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
        })
    }
}

/// An opened tabular dataset: its schema, its objects and a stream of its record batches.
pub struct Table {
    /// The schema every batch has.
    pub schema: SchemaRef,
    /// The objects read, in reading (lexical) order.
    pub objects: Vec<ObjectMeta>,
    /// The record batches, file after file, each of at most the requested batch size.
    pub batches: BoxStream<'static, Result<RecordBatch>>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("schema", &self.schema)
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

/// Lists the objects of a dataset: the object at `location` itself when it exists, otherwise every
/// object below the prefix `location` whose extension is one of `extensions` (ignoring case), in
/// lexical order of their paths. Names starting with `.` or `_` (e.g. `_SUCCESS`) are skipped.
pub async fn list_dataset_objects(
    store: &dyn ObjectStore,
    location: &Path,
    extensions: &[&str],
) -> Result<Vec<ObjectMeta>> {
    if !location.as_ref().is_empty() {
        match store.head(location).await {
            Ok(meta) => return Ok(vec![meta]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let prefix = (!location.as_ref().is_empty()).then_some(location);
    let mut objects: Vec<ObjectMeta> = store
        .list(prefix)
        .try_filter(|meta| {
            let keep = meta.location.filename().is_some_and(|name| {
                !name.starts_with('.')
                    && !name.starts_with('_')
                    && name.rsplit_once('.').is_some_and(|(_, ext)| {
                        extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
                    })
            });
            futures::future::ready(keep)
        })
        .try_collect()
        .await?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(objects)
}

/// Opens the tabular dataset at `uri` (one file, or a prefix holding several files of `format`,
/// read in lexical order) and returns its schema and a stream of record batches of at most
/// `batch_size` rows. Nothing is loaded whole: Parquet is read by row groups through ranged
/// reads; CSV and JSON lines are decoded from the object's byte stream as it arrives.
///
/// The schema of CSV and JSON lines is inferred from the first rows (up to 1000 rows or 1 MiB) of
/// the first file, with a header row for CSV; later files are decoded with that schema. Every
/// Parquet file must have the first file's schema.
pub async fn open_table(uri: &LakeUri, format: TableFormat, batch_size: usize) -> Result<Table> {
    let (store, location) = open_store(uri)?;
    open_table_in(store, &location, &uri.to_string(), format, batch_size).await
}

/// [`open_table`] over an already opened store; `uri` is used in error messages.
pub async fn open_table_in(
    store: Arc<dyn ObjectStore>,
    location: &Path,
    uri: &str,
    format: TableFormat,
    batch_size: usize,
) -> Result<Table> {
    if batch_size == 0 {
        return Err(LakeError::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    let objects = list_dataset_objects(store.as_ref(), location, format.extensions()).await?;
    let Some(first) = objects.first() else {
        return Err(LakeError::Empty {
            uri: uri.to_owned(),
            what: format.describe(),
        });
    };
    let schema = match format {
        TableFormat::Parquet => parquet_builder(&store, first).await?.schema().clone(),
        TableFormat::Csv | TableFormat::JsonLines => {
            infer_schema(store.as_ref(), first, format).await?
        }
    };
    let batches = batch_stream(store, objects.clone(), schema.clone(), format, batch_size);
    Ok(Table {
        schema,
        objects,
        batches,
    })
}

/// A Parquet stream builder for one object (its footer read with ranged GETs).
#[allow(deprecated)]
pub(crate) async fn parquet_builder(
    store: &Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
    // Azure has no suffix range GET: the reader must know the size to find the footer.
    let reader =
        ParquetObjectReader::new(store.clone(), meta.location.clone()).with_file_size(meta.size);
    Ok(ParquetRecordBatchStreamBuilder::new(reader).await?)
}

/// Infers a CSV (with header) or JSON-lines schema from the first rows of `meta`.
async fn infer_schema(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    format: TableFormat,
) -> Result<SchemaRef> {
    let end = meta.size.min(INFER_BYTES);
    let mut head = if end == 0 {
        Bytes::new()
    } else {
        store.get_range(&meta.location, 0..end).await?
    };
    if end < meta.size {
        // Drop the partial last line.
        if let Some(newline) = head.iter().rposition(|&b| b == b'\n') {
            head.truncate(newline + 1);
        }
    }
    let schema = match format {
        TableFormat::Csv => {
            arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(Cursor::new(head), Some(INFER_ROWS))?
                .0
        }
        TableFormat::JsonLines => {
            arrow::json::reader::infer_json_schema(Cursor::new(head), Some(INFER_ROWS))?.0
        }
        TableFormat::Parquet => unreachable!("parquet schemas are read from the footer"),
    };
    Ok(Arc::new(schema))
}

/// The batches of every object, one after another.
fn batch_stream(
    store: Arc<dyn ObjectStore>,
    objects: Vec<ObjectMeta>,
    schema: SchemaRef,
    format: TableFormat,
    batch_size: usize,
) -> BoxStream<'static, Result<RecordBatch>> {
    stream::iter(objects)
        .then(move |meta| {
            let store = store.clone();
            let schema = schema.clone();
            async move { object_batches(store, meta, schema, format, batch_size).await }
        })
        .try_flatten()
        .boxed()
}

/// The batches of one object.
async fn object_batches(
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
    schema: SchemaRef,
    format: TableFormat,
    batch_size: usize,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    match format {
        TableFormat::Parquet => {
            let builder = parquet_builder(&store, &meta).await?;
            if builder.schema().fields() != schema.fields() {
                return Err(LakeError::SchemaMismatch {
                    path: meta.location.to_string(),
                    expected: schema_json(&schema),
                    found: schema_json(builder.schema()),
                });
            }
            let stream = builder.with_batch_size(batch_size).build()?;
            Ok(stream.map_err(LakeError::from).boxed())
        }
        TableFormat::Csv => {
            let decoder = arrow::csv::ReaderBuilder::new(schema)
                .with_header(true)
                .with_batch_size(batch_size)
                .build_decoder();
            let bytes = byte_stream(&store, &meta).await?;
            Ok(decode_stream(
                bytes,
                decoder,
                |d, b| d.decode(b),
                |d| d.flush(),
            ))
        }
        TableFormat::JsonLines => {
            let decoder = arrow::json::ReaderBuilder::new(schema)
                .with_batch_size(batch_size)
                .build_decoder()?;
            let bytes = byte_stream(&store, &meta).await?;
            Ok(decode_stream(
                bytes,
                decoder,
                |d, b| d.decode(b),
                |d| d.flush(),
            ))
        }
    }
}

async fn byte_stream(
    store: &Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
) -> Result<BoxStream<'static, Result<Bytes>>> {
    let result = store.get(&meta.location).await?;
    Ok(result.into_stream().map_err(LakeError::from).boxed())
}

/// Feeds an object's byte stream to a push decoder (arrow-csv's or arrow-json's) and yields a
/// batch whenever the decoder is full or the input ends.
fn decode_stream<D: Send + 'static>(
    input: BoxStream<'static, Result<Bytes>>,
    decoder: D,
    decode: fn(&mut D, &[u8]) -> Result<usize, arrow::error::ArrowError>,
    flush: fn(&mut D) -> Result<Option<RecordBatch>, arrow::error::ArrowError>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let state = (input.fuse(), decoder, Bytes::new());
    stream::try_unfold(
        state,
        move |(mut input, mut decoder, mut buffered)| async move {
            loop {
                if buffered.is_empty() {
                    match input.next().await {
                        Some(chunk) => buffered = chunk?,
                        None => {
                            // An empty slice tells the decoder that the input ended, so that it
                            // finishes a last record without a line end.
                            decode(&mut decoder, &[])?;
                            break;
                        }
                    }
                }
                let consumed = decode(&mut decoder, &buffered)?;
                buffered.advance(consumed);
                if consumed == 0 && !buffered.is_empty() {
                    // The decoder holds a full batch.
                    break;
                }
            }
            Ok(flush(&mut decoder)?.map(|batch| (batch, (input, decoder, buffered))))
        },
    )
    .boxed()
}
