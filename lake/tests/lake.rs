//! Reads small Parquet, CSV and JSON-lines datasets written with Arrow's writers back through
//! `file://` URIs and plain paths; dataset versions; image folders.

use std::path::Path;

mod common;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use cerulean_lake::{
    LakeError, LakeUri, TableFormat, dataset_version, list_image_folder, open_table, split,
};
use common::{batch, encode, ext};
use futures::TryStreamExt;

fn write(path: &Path, format: TableFormat, data: &RecordBatch) {
    std::fs::write(path, encode(format, data)).unwrap();
}

/// Reads everything and returns the batch sizes and the ids, names and values in order.
async fn read(
    uri: &LakeUri,
    format: TableFormat,
    batch_size: usize,
) -> (Vec<usize>, Vec<i64>, Vec<String>, Vec<f64>) {
    let table = open_table(uri, format, batch_size).await.unwrap();
    let names: Vec<&str> = table
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "name", "value"]);
    let batches: Vec<RecordBatch> = table.batches.try_collect().await.unwrap();
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for b in &batches {
        assert_eq!(b.schema(), table.schema);
        out.0.push(b.num_rows());
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let values = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(ids.null_count(), 0);
        out.1.extend(ids.values().iter().copied());
        out.2.extend(names.iter().map(|s| s.unwrap().to_owned()));
        out.3.extend(values.values().iter().copied());
    }
    out
}

const FORMATS: [TableFormat; 3] = [
    TableFormat::Parquet,
    TableFormat::Csv,
    TableFormat::JsonLines,
];

#[tokio::test]
async fn single_file_through_file_uri_and_plain_path() {
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("data.{}", ext(format)));
        write(&path, format, &batch(0, 250));
        let file_uri = LakeUri::parse(&format!("file://{}", path.display())).unwrap();
        let plain = LakeUri::parse(path.to_str().unwrap()).unwrap();
        assert_eq!(file_uri, plain);
        for uri in [file_uri, plain] {
            let (sizes, ids, names, values) = read(&uri, format, 100).await;
            assert_eq!(sizes, [100, 100, 50], "{format}");
            assert_eq!(ids, (0..250).collect::<Vec<_>>(), "{format}");
            assert_eq!(names[7], "row-7");
            assert_eq!(values[7], 3.5);
        }
    }
}

#[tokio::test]
async fn prefix_of_several_files_in_lexical_order() {
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let e = ext(format);
        // Written out of order; read as part-0, part-1, part-2.
        write(
            &dir.path().join(format!("part-2.{e}")),
            format,
            &batch(20, 5),
        );
        write(
            &dir.path().join(format!("part-0.{e}")),
            format,
            &batch(0, 12),
        );
        write(
            &dir.path().join(format!("part-1.{e}")),
            format,
            &batch(12, 8),
        );
        std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
        std::fs::write(dir.path().join("README.txt"), b"not data").unwrap();
        let uri = LakeUri::parse(&format!("file://{}", dir.path().display())).unwrap();
        let (sizes, ids, _, _) = read(&uri, format, 10).await;
        assert_eq!(ids, (0..25).collect::<Vec<_>>(), "{format}");
        assert_eq!(sizes, [10, 2, 8, 5], "{format}");
        let version = dataset_version(&uri, format).await.unwrap();
        assert_eq!(version.row_count, 25, "{format}");
        assert_eq!(version.objects.len(), 3);
    }
}

#[tokio::test]
async fn empty_and_missing_datasets_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
    let uri = LakeUri::parse(dir.path().to_str().unwrap()).unwrap();
    let err = open_table(&uri, TableFormat::Parquet, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::Empty { .. }), "{err}");
    assert!(err.to_string().contains(".parquet"), "{err}");
    let missing = LakeUri::parse(dir.path().join("nope").to_str().unwrap()).unwrap();
    assert!(open_table(&missing, TableFormat::Csv, 10).await.is_err());
    assert!(matches!(
        open_table(&uri, TableFormat::Csv, 0).await.unwrap_err(),
        LakeError::InvalidArgument(_)
    ));
}

#[tokio::test]
async fn version_hash_changes_only_when_data_changes() {
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let e = ext(format);
        write(&dir.path().join(format!("a.{e}")), format, &batch(0, 30));
        write(&dir.path().join(format!("b.{e}")), format, &batch(30, 10));
        let uri = LakeUri::parse(dir.path().to_str().unwrap()).unwrap();
        let v1 = dataset_version(&uri, format).await.unwrap();
        assert_eq!(v1.row_count, 40);
        assert!(v1.content_hash.starts_with("sha256:"));
        assert!(v1.schema.contains("\"name\":\"id\""), "{}", v1.schema);
        let v2 = dataset_version(&uri, format).await.unwrap();
        assert_eq!(v1, v2, "{format}: unchanged data must keep its version");
        write(&dir.path().join(format!("b.{e}")), format, &batch(30, 11));
        let v3 = dataset_version(&uri, format).await.unwrap();
        assert_eq!(v3.row_count, 41);
        assert_ne!(v1.content_hash, v3.content_hash, "{format}");
        std::fs::remove_file(dir.path().join(format!("b.{e}"))).unwrap();
        let v4 = dataset_version(&uri, format).await.unwrap();
        assert_eq!(v4.row_count, 30);
        assert_ne!(v4.content_hash, v3.content_hash);
        assert_ne!(v4.content_hash, v1.content_hash);
    }
}

#[test]
fn splits_are_deterministic() {
    let (train, val) = split(500, 0.2, 42).unwrap();
    assert_eq!((train.len(), val.len()), (400, 100));
    assert_eq!(split(500, 0.2, 42).unwrap(), (train, val.clone()));
    assert_ne!(split(500, 0.2, 7).unwrap().1, val);
}

#[tokio::test]
async fn image_folder_lists_classes_sorted() {
    let dir = tempfile::tempdir().unwrap();
    for (class, file) in [
        ("zebra", "1.jpg"),
        ("cat", "b.PNG"),
        ("cat", "a.jpeg"),
        ("dog", "x.webp"),
        ("dog", "notes.txt"),
        ("empty", ".hidden.png"),
    ] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        std::fs::write(dir.path().join(class).join(file), b"img").unwrap();
    }
    std::fs::write(dir.path().join("top.png"), b"img").unwrap();
    std::fs::create_dir_all(dir.path().join("dog/nested")).unwrap();
    std::fs::write(dir.path().join("dog/nested/deep.png"), b"img").unwrap();

    let uri = LakeUri::parse(&format!("file://{}", dir.path().display())).unwrap();
    let folder = list_image_folder(&uri).await.unwrap();
    assert_eq!(folder.classes, ["cat", "dog", "zebra"]);
    let items: Vec<(String, usize)> = folder
        .items
        .iter()
        .map(|i| (i.location.filename().unwrap().to_owned(), i.class))
        .collect();
    assert_eq!(
        items,
        [
            ("a.jpeg".to_owned(), 0),
            ("b.PNG".to_owned(), 0),
            ("x.webp".to_owned(), 1),
            ("1.jpg".to_owned(), 2)
        ]
    );
    assert_eq!(folder.version.row_count, 4);
    assert!(folder.version.content_hash.starts_with("sha256:"));

    // The reader fetches the bytes in listing order; rewriting an image changes the version.
    let reader = cerulean_lake::open_image_folder(&uri).await.unwrap();
    assert_eq!(reader.total_bytes(), 12);
    let read: Vec<(usize, Vec<u8>)> = reader
        .read(2)
        .map_ok(|(i, b)| (i, b.to_vec()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 4);
    assert!(
        read.iter()
            .enumerate()
            .all(|(i, (j, b))| i == *j && b == b"img")
    );
    std::fs::write(dir.path().join("cat/a.jpeg"), b"image").unwrap();
    let again = list_image_folder(&uri).await.unwrap();
    assert_ne!(again.version.content_hash, folder.version.content_hash);
}

#[test]
fn uris_parse_and_display() {
    let az = LakeUri::parse("az://data/digits/train.parquet").unwrap();
    assert_eq!(
        az,
        LakeUri::Azure {
            container: "data".into(),
            path: "digits/train.parquet".into()
        }
    );
    assert_eq!(az.to_string(), "az://data/digits/train.parquet");
    let s3 = LakeUri::parse("s3://bucket/prefix/").unwrap();
    assert_eq!(s3.to_string(), "s3://bucket/prefix");
    assert_eq!(
        LakeUri::parse("s3://bucket").unwrap().to_string(),
        "s3://bucket/"
    );
    let local = LakeUri::parse("file:///tmp/x.csv").unwrap();
    assert_eq!(local, LakeUri::Local("/tmp/x.csv".into()));
    assert_eq!(local.to_string(), "file:///tmp/x.csv");
    assert!(
        matches!(LakeUri::parse("relative/x.csv").unwrap(), LakeUri::Local(p) if p.is_absolute())
    );
    for (bad, needle) in [
        ("file://tmp/x", "absolute"),
        ("file:x", "three slashes"),
        ("gs://b/x", "unsupported scheme"),
        ("az:///x", "container"),
        ("s3://", "bucket"),
        ("", "empty"),
    ] {
        let err = LakeUri::parse(bad).unwrap_err().to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
    assert_eq!(
        "JSONL".parse::<TableFormat>().unwrap(),
        TableFormat::JsonLines
    );
    assert!("xlsx".parse::<TableFormat>().is_err());
}
