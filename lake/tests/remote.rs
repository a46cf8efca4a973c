//! Reads Parquet and CSV datasets and image folders through `az://` (Azurite) and `s3://` (moto)
//! URIs and records their versions. Connects the way registry/tests/artifacts.rs does (same
//! endpoints, account, keys, region, container creation and bucket) and fails, never skips, when a
//! service is not running: start them with `bash .ci/services.sh`.
//!
//! `open_store` configures the stores with object_store's `from_env` builders, so the registry
//! tests' options are set once, before any store is opened, as the equivalent environment
//! variables (all tests of this file run in one process).

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Once;
use std::time::Duration;

mod common;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use cerulean_lake::{LakeUri, TableFormat, dataset_version, open_store, open_table};
use common::{batch, encode, ext};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite_url() -> String {
    std::env::var("CERULEAN_TEST_AZURITE_URL").unwrap_or_else(|_| "http://127.0.0.1:10000".into())
}

fn s3_endpoint() -> String {
    std::env::var("CERULEAN_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

fn s3_bucket() -> String {
    std::env::var("CERULEAN_TEST_S3_BUCKET").unwrap_or_else(|_| "cerulean-test".into())
}

/// Panics with instructions when a service does not accept connections.
fn require_service(name: &str, endpoint: &str) {
    let host_port = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "{name} is not running at {endpoint}. Start the test services with `bash .ci/services.sh` \
         (or `source .ci/services.sh`); this test does not skip."
    );
}

/// Sets, once per process, the environment variables that `from_env` turns into the registry
/// tests' options: Azure `account_name`, `access_key`, `endpoint`, `allow_http`; S3 `endpoint`,
/// `allow_http`, `access_key_id`, `secret_access_key`, `region`.
fn configure_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let vars = [
            ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1".to_owned()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.to_owned()),
            (
                "AZURE_STORAGE_ENDPOINT",
                format!("{}/devstoreaccount1", azurite_url()),
            ),
            ("AZURE_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ENDPOINT", s3_endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ];
        for (key, value) in vars {
            // SAFETY: `Once` runs this before any test of this file reads the environment
            // (every test calls `configure_env` first, and `call_once` blocks the others).
            unsafe { std::env::set_var(key, value) };
        }
    });
}

/// Writes two files (ids 0..150 and 150..250) under `base/<format>/` through the store that
/// `open_store` opens for `base`, reads them back through `open_table` and checks the version.
async fn round_trip(base: &str) {
    for format in [TableFormat::Parquet, TableFormat::Csv] {
        let uri = LakeUri::parse(&format!("{base}/{}", ext(format))).unwrap();
        let (store, prefix) = open_store(&uri).unwrap();
        for (name, start, rows) in [("part-0", 0, 150), ("part-1", 150, 100)] {
            let key = Path::from(format!("{prefix}/{name}.{}", ext(format)));
            store
                .put(&key, PutPayload::from(encode(format, &batch(start, rows))))
                .await
                .unwrap_or_else(|e| panic!("writing {key} through {uri}: {e}"));
        }
        // A file of another format in the prefix is not part of the dataset.
        store
            .put(
                &Path::from(format!("{prefix}/notes.txt")),
                PutPayload::from_static(b"not data"),
            )
            .await
            .unwrap();

        let table = open_table(&uri, format, 100).await.unwrap();
        let names: Vec<&str> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "name", "value"], "{format}");
        assert_eq!(table.objects.len(), 2, "{format}");
        let schema = table.schema.clone();
        let batches: Vec<RecordBatch> = table.batches.try_collect().await.unwrap();
        let (mut ids, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for b in &batches {
            assert_eq!(b.schema(), schema);
            assert!(b.num_rows() <= 100, "{format}");
            let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let name = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let value = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
            assert_eq!(id.null_count(), 0);
            ids.extend(id.values().iter().copied());
            labels.extend(name.iter().map(|s| s.unwrap().to_owned()));
            values.extend(value.values().iter().copied());
        }
        assert_eq!(ids, (0..250).collect::<Vec<i64>>(), "{format}");
        assert_eq!(labels[0], "row-0", "{format}");
        assert_eq!(labels[249], "row-249", "{format}");
        assert_eq!(values[7], 3.5, "{format}");
        assert_eq!(values[200], 100.0, "{format}");

        let version = dataset_version(&uri, format).await.unwrap();
        assert_eq!(version.row_count, 250, "{format}");
        assert_eq!(version.objects.len(), 2, "{format}");
        assert!(
            version.objects[0]
                .path
                .ends_with(&format!("part-0.{}", ext(format)))
        );
        assert!(
            version.objects[1]
                .path
                .ends_with(&format!("part-1.{}", ext(format)))
        );
        assert!(version.content_hash.starts_with("sha256:"), "{format}");
        assert_eq!(version.content_hash.len(), "sha256:".len() + 64, "{format}");
        assert!(
            version.objects.iter().all(|o| o.e_tag.is_some()),
            "{format}: the service reports entity tags"
        );
        // Unchanged data, same version.
        let again = dataset_version(&uri, format).await.unwrap();
        assert_eq!(again.content_hash, version.content_hash, "{format}");
        assert_eq!(again.row_count, 250);
        // A rewritten object (one row more), a new version.
        let key = Path::from(format!("{prefix}/part-1.{}", ext(format)));
        store
            .put(&key, PutPayload::from(encode(format, &batch(150, 101))))
            .await
            .unwrap();
        let changed = dataset_version(&uri, format).await.unwrap();
        assert_eq!(changed.row_count, 251, "{format}");
        assert_ne!(changed.content_hash, version.content_hash, "{format}");
    }
}

/// Writes a two-class image folder under `base/images/` through the store, then lists it and
/// reads the images back through `open_image_folder`; rewriting an image changes the version.
async fn image_folder_round_trip(base: &str) {
    let uri = LakeUri::parse(&format!("{base}/images")).unwrap();
    let (store, prefix) = open_store(&uri).unwrap();
    for (name, bytes) in [
        ("cat/1.png", &b"cat one"[..]),
        ("cat/2.jpg", b"cat two"),
        ("dog/1.png", b"dog"),
        ("dog/readme.txt", b"not an image"),
    ] {
        store
            .put(
                &Path::from(format!("{prefix}/{name}")),
                PutPayload::from(bytes.to_vec()),
            )
            .await
            .unwrap_or_else(|e| panic!("writing {name} through {uri}: {e}"));
    }
    let reader = cerulean_lake::open_image_folder(&uri).await.unwrap();
    let folder = reader.folder().clone();
    assert_eq!(folder.classes, ["cat", "dog"]);
    assert_eq!(folder.items.len(), 3);
    assert!(folder.version.objects.iter().all(|o| o.e_tag.is_some()));
    let read: Vec<(usize, bytes::Bytes)> = reader.read(2).try_collect().await.unwrap();
    let read: Vec<&[u8]> = read.iter().map(|(_, b)| b.as_ref()).collect();
    assert_eq!(read, [&b"cat one"[..], b"cat two", b"dog"]);
    store
        .put(
            &Path::from(format!("{prefix}/dog/1.png")),
            PutPayload::from_static(b"another dog"),
        )
        .await
        .unwrap();
    let again = cerulean_lake::list_image_folder(&uri).await.unwrap();
    assert_ne!(again.version.content_hash, folder.version.content_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_parquet_and_csv() {
    configure_env();
    let url = azurite_url();
    require_service("Azurite", &url);
    // object_store cannot create containers; the registry's helper does (as its tests use it).
    let container = format!("cerulean-lake-{}", uuid::Uuid::new_v4().simple());
    let target = cerulean_registry::artifacts::AzureContainerTarget::emulator(&url, &container);
    assert!(
        cerulean_registry::artifacts::create_azure_container(&target)
            .await
            .unwrap(),
        "a fresh container is created"
    );
    round_trip(&format!("az://{container}/datasets/table")).await;
    image_folder_round_trip(&format!("az://{container}/datasets")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_parquet_and_csv() {
    configure_env();
    let endpoint = s3_endpoint();
    require_service("The S3 server (moto)", &endpoint);
    let bucket = s3_bucket();
    let base = format!("s3://{bucket}/{}", uuid::Uuid::new_v4().simple());
    // The bucket is created by `.ci/services.sh` (object_store cannot create it).
    let (store, prefix) = open_store(&LakeUri::parse(&base).unwrap()).unwrap();
    if let Err(e) = store.list_with_delimiter(Some(&prefix)).await {
        panic!(
            "bucket {bucket:?} is not usable at {endpoint} ({e}); `bash .ci/services.sh` creates it"
        );
    }
    round_trip(&format!("{base}/datasets/table")).await;
    image_folder_round_trip(&format!("{base}/datasets")).await;
}
