//! The artifact store suite, run against the local file system, Azurite and an S3-compatible
//! server (moto). The cloud tests connect to the services that `.ci/services.sh` starts and fail,
//! never skip, when those are not running.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use cerulean_registry::artifacts::{
    ArtifactError, ArtifactPath, ArtifactStore, ByteRange, CompletedPart, FileInfo,
};
use futures::{StreamExt, TryStreamExt, stream};

const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const MIB: usize = 1024 * 1024;

fn p(s: &str) -> ArtifactPath {
    ArtifactPath::parse(s).unwrap()
}

/// Deterministic, incompressible test bytes.
fn data(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `bytes` as a stream of `chunk`-sized pieces (like an HTTP body).
fn chunked(
    bytes: Bytes,
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let pieces: Vec<_> = (0..bytes.len().div_ceil(chunk))
        .map(|i| Ok(bytes.slice(i * chunk..((i + 1) * chunk).min(bytes.len()))))
        .collect();
    stream::iter(pieces)
}

async fn read_all(store: &ArtifactStore, path: &ArtifactPath, range: Option<ByteRange>) -> Vec<u8> {
    let download = store.get(path, range).await.unwrap();
    let chunks: Vec<Bytes> = download.body.try_collect().await.unwrap();
    chunks.concat()
}

fn file(name: &str, size: usize) -> FileInfo {
    FileInfo {
        path: name.into(),
        is_dir: false,
        file_size: Some(size as u64),
    }
}

fn dir(name: &str) -> FileInfo {
    FileInfo {
        path: name.into(),
        is_dir: true,
        file_size: None,
    }
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

/// The whole suite against one store (an empty root).
async fn suite(store: &ArtifactStore) {
    // --- small put / get --------------------------------------------------------------------
    let small = Bytes::from_static(b"hello, artifacts\n");
    let outcome = store
        .put_stream(&p("run/artifacts/a.txt"), chunked(small.clone(), 5))
        .await
        .unwrap();
    assert_eq!(outcome.size, small.len() as u64);
    assert_eq!(
        read_all(store, &p("run/artifacts/a.txt"), None).await,
        small
    );
    assert_eq!(
        store.head(&p("run/artifacts/a.txt")).await.unwrap().size,
        small.len() as u64
    );
    // Overwrite.
    let small2 = Bytes::from_static(b"second version");
    store
        .put_bytes(&p("run/artifacts/a.txt"), small2.clone())
        .await
        .unwrap();
    assert_eq!(
        read_all(store, &p("run/artifacts/a.txt"), None).await,
        small2
    );
    // Empty file.
    store
        .put_bytes(&p("run/artifacts/empty"), Bytes::new())
        .await
        .unwrap();
    assert_eq!(read_all(store, &p("run/artifacts/empty"), None).await, b"");

    // --- 12 MiB streamed put (multipart underneath), byte-exact get, ranges ---------------------
    let big = data(12 * MIB, 1);
    let outcome = store
        .put_stream(
            &p("run/artifacts/model/data/weights.bin"),
            chunked(big.clone(), 64 * 1024),
        )
        .await
        .unwrap();
    assert_eq!(outcome.size, big.len() as u64);
    let got = read_all(store, &p("run/artifacts/model/data/weights.bin"), None).await;
    assert!(got == big, "12 MiB round trip differs");
    let weights = p("run/artifacts/model/data/weights.bin");
    assert_eq!(
        read_all(store, &weights, Some(ByteRange::FromTo(100, 199))).await,
        big[100..200]
    );
    assert_eq!(
        read_all(store, &weights, Some(ByteRange::Suffix(1000))).await,
        big[big.len() - 1000..]
    );
    let d = store
        .get(&weights, Some(ByteRange::From(12 * MIB as u64 - 10)))
        .await
        .unwrap();
    assert!(d.partial);
    assert_eq!(d.range, (12 * MIB as u64 - 10)..12 * MIB as u64);
    assert_eq!(d.meta.size, 12 * MIB as u64);
    match store
        .get(&weights, Some(ByteRange::From(12 * MIB as u64)))
        .await
    {
        Err(ArtifactError::RangeNotSatisfiable { size, .. }) => assert_eq!(size, 12 * MIB as u64),
        other => panic!("expected RangeNotSatisfiable, got {other:?}"),
    }

    // --- listing --------------------------------------------------------------------------------
    store
        .put_bytes(
            &p("run/artifacts/model/MLmodel"),
            Bytes::from_static(b"flavors: {}\n"),
        )
        .await
        .unwrap();
    store
        .put_bytes(
            &p("run/artifacts/weird/a b[1]%.txt"),
            Bytes::from_static(b"w"),
        )
        .await
        .unwrap();
    assert_eq!(store.list(None).await.unwrap(), vec![dir("run")]);
    assert_eq!(
        store.list(Some(&p("run"))).await.unwrap(),
        vec![dir("artifacts")]
    );
    assert_eq!(
        store.list(Some(&p("run/artifacts"))).await.unwrap(),
        vec![
            file("a.txt", small2.len()),
            file("empty", 0),
            dir("model"),
            dir("weird")
        ]
    );
    assert_eq!(
        store.list(Some(&p("run/artifacts/model"))).await.unwrap(),
        vec![file("MLmodel", 12), dir("data")]
    );
    assert_eq!(
        store.list(Some(&p("run/artifacts/weird"))).await.unwrap(),
        vec![file("a b[1]%.txt", 1)]
    );
    assert_eq!(
        read_all(store, &p("run/artifacts/weird/a b[1]%.txt"), None).await,
        b"w"
    );
    // A file path and a missing path list as empty.
    assert!(
        store
            .list(Some(&p("run/artifacts/a.txt")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list(Some(&p("nothing/here")))
            .await
            .unwrap()
            .is_empty()
    );
    // Prefixes are segment-wise: `run/art` is not `run/artifacts`.
    assert!(store.list(Some(&p("run/art"))).await.unwrap().is_empty());

    // --- missing files --------------------------------------------------------------------------
    assert!(matches!(
        store.get(&p("run/artifacts/missing.bin"), None).await,
        Err(ArtifactError::NotFound { .. })
    ));
    assert!(matches!(
        store.head(&p("run/artifacts/missing.bin")).await,
        Err(ArtifactError::NotFound { .. })
    ));

    // --- delete a file, a prefix, nothing ---------------------------------------------------------
    assert_eq!(store.delete(&p("run/artifacts/a.txt")).await.unwrap(), 1);
    assert!(matches!(
        store.get(&p("run/artifacts/a.txt"), None).await,
        Err(ArtifactError::NotFound { .. })
    ));
    assert_eq!(store.delete(&p("run/artifacts/model")).await.unwrap(), 2);
    assert_eq!(
        store.list(Some(&p("run/artifacts"))).await.unwrap(),
        vec![file("empty", 0), dir("weird")]
    );
    assert_eq!(store.delete(&p("run/artifacts/model")).await.unwrap(), 0);
    assert_eq!(store.delete(&p("never/was")).await.unwrap(), 0);

    // --- multipart upload: parts out of order and concurrently, then complete ------------------------
    let target = p("mpu/big.bin");
    let upload_id = store.create_multipart(&target).await.unwrap();
    assert!(!upload_id.is_empty());
    let mp_data = data(12 * MIB, 2);
    let bounds = [
        (1u32, 0, 5 * MIB),
        (2, 5 * MIB, 10 * MIB),
        (3, 10 * MIB, 12 * MIB),
    ];
    let uploads = [2usize, 0, 1].map(|i| {
        let (number, a, b) = bounds[i];
        let body = chunked(mp_data.slice(a..b), 256 * 1024);
        let upload_id = upload_id.clone();
        let target = target.clone();
        async move {
            let etag = store
                .upload_part(&target, &upload_id, number, body)
                .await
                .unwrap();
            CompletedPart {
                part_number: number,
                etag,
            }
        }
    });
    let mut parts = futures::future::join_all(uploads).await;
    // A gap and an unknown etag are refused before anything is written.
    let gap: Vec<_> = parts
        .iter()
        .filter(|p| p.part_number != 2)
        .cloned()
        .collect();
    assert!(matches!(
        store.complete_multipart(&target, &upload_id, &gap).await,
        Err(ArtifactError::InvalidParameter(m)) if m.contains("part 2 is missing")
    ));
    let mut forged = parts.clone();
    forged[0].etag = "\"not-ours\"".into();
    assert!(
        store
            .complete_multipart(&target, &upload_id, &forged)
            .await
            .is_err()
    );
    parts.sort_by_key(|p| p.part_number);
    let outcome = store
        .complete_multipart(&target, &upload_id, &parts)
        .await
        .unwrap();
    assert_eq!(outcome.size, mp_data.len() as u64);
    assert!(
        read_all(store, &target, None).await == mp_data,
        "multipart result differs"
    );
    assert_eq!(
        store.list(Some(&p("mpu"))).await.unwrap(),
        vec![file("big.bin", 12 * MIB)]
    );

    // --- multipart abort ------------------------------------------------------------------------
    let aborted = p("mpu/aborted.bin");
    let upload_id = store.create_multipart(&aborted).await.unwrap();
    store
        .upload_part(&aborted, &upload_id, 1, chunked(data(1000, 3), 100))
        .await
        .unwrap();
    store.abort_multipart(&aborted, &upload_id).await.unwrap();
    assert!(matches!(
        store.head(&aborted).await,
        Err(ArtifactError::NotFound { .. })
    ));
    // Part numbers outside 1..=10000 are refused.
    assert!(matches!(
        store
            .upload_part(&aborted, &upload_id, 0, chunked(Bytes::new(), 1))
            .await,
        Err(ArtifactError::InvalidParameter(_))
    ));
    // The root listing shows no staging area.
    assert_eq!(
        store.list(None).await.unwrap(),
        vec![dir("mpu"), dir("run")]
    );

    // --- path attacks never reach the store ---------------------------------------------------------
    for attack in [
        "../escape",
        "/abs",
        "a/../../b",
        "a\\..\\b",
        "a\0b",
        "a//b",
        "%2e%2e/x",
        ".cerulean-mpu/x",
    ] {
        let err = ArtifactPath::parse(attack).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{attack:?}");
        assert_eq!(err.error_code(), "INVALID_PARAMETER_VALUE");
    }
    for raw in ["%2e%2e/x", "..%2fx", "%252e%252e/x", "a%00", "%5c..%5cx"] {
        assert!(ArtifactPath::from_url_path(raw).is_err(), "{raw:?}");
    }
}

/// Byte limits are enforced while streaming.
async fn limits(store: ArtifactStore) {
    let mut limits = store.limits().clone();
    limits.max_artifact_bytes = 1000;
    limits.max_part_bytes = 100;
    let store = store.with_limits(limits);
    let err = store
        .put_stream(&p("limits/too-big"), chunked(data(1001, 4), 10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::TooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    assert!(err.to_string().contains("1000"));
    let id = store.create_multipart(&p("limits/part")).await.unwrap();
    let err = store
        .upload_part(&p("limits/part"), &id, 1, chunked(data(101, 5), 10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::TooLarge { limit: 100, .. }),
        "{err:?}"
    );
    store.abort_multipart(&p("limits/part"), &id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = ArtifactStore::open(
        &format!("file://{}", root.display()),
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    suite(&store).await;
    limits(store.clone()).await;
    // Nothing was written outside the root, and no staging leftovers remain.
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("root")]);
    let staging = root.join(".cerulean-mpu");
    let leftovers: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging leftovers: {leftovers:?}");

    // Staged uploads that were never finished are purged by age.
    let stale = p("stale/x.bin");
    let id = store.create_multipart(&stale).await.unwrap();
    store
        .upload_part(&stale, &id, 1, chunked(data(10, 9), 5))
        .await
        .unwrap();
    assert_eq!(
        store
            .purge_stale_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_stale_uploads(Duration::ZERO).await.unwrap(), 1);
    assert!(!root.join(".cerulean-mpu").exists());

    // A plain path works too.
    let plain = ArtifactStore::local(tmp.path().join("plain")).unwrap();
    plain
        .put_bytes(&p("x"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert!(tmp.path().join("plain/x").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    suite(&ArtifactStore::memory()).await;
    limits(ArtifactStore::memory()).await;
}

fn azurite_url() -> String {
    std::env::var("CERULEAN_TEST_AZURITE_URL").unwrap_or_else(|_| "http://127.0.0.1:10000".into())
}

async fn azurite_store(container: &str) -> ArtifactStore {
    let url = azurite_url();
    require_service("Azurite", &url);
    let store = ArtifactStore::open(
        &format!("az://{container}/some/prefix"),
        [
            ("account_name", "devstoreaccount1".to_owned()),
            ("access_key", AZURITE_KEY.to_owned()),
            ("endpoint", format!("{url}/devstoreaccount1")),
            ("allow_http", "true".to_owned()),
        ],
    )
    .unwrap();
    assert!(
        store.ensure_container().await.unwrap(),
        "a fresh container is created"
    );
    assert!(
        !store.ensure_container().await.unwrap(),
        "an existing container is kept"
    );
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite() {
    let container = format!("cerulean-{}", uuid::Uuid::new_v4().simple());
    let store = azurite_store(&container).await;
    suite(&store).await;
    let other = azurite_store(&format!("{container}-limits")).await;
    limits(other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_container_helper() {
    let url = azurite_url();
    require_service("Azurite", &url);
    let container = format!("cerulean-helper-{}", uuid::Uuid::new_v4().simple());
    let target = cerulean_registry::artifacts::AzureContainerTarget::emulator(&url, &container);
    assert!(
        cerulean_registry::artifacts::create_azure_container(&target)
            .await
            .unwrap()
    );
    assert!(
        !cerulean_registry::artifacts::create_azure_container(&target)
            .await
            .unwrap()
    );
    let mut wrong = target.clone();
    wrong.access_key = Some("d3Jvbmcga2V5".into());
    wrong.container = format!("{container}-x");
    wrong.container_url = format!("{}-x", target.container_url);
    let err = cerulean_registry::artifacts::create_azure_container(&wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

fn s3_endpoint() -> String {
    std::env::var("CERULEAN_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

async fn s3_store() -> ArtifactStore {
    let endpoint = s3_endpoint();
    require_service("The S3 server (moto)", &endpoint);
    let bucket =
        std::env::var("CERULEAN_TEST_S3_BUCKET").unwrap_or_else(|_| "cerulean-test".into());
    let store = ArtifactStore::open(
        &format!("s3://{bucket}/{}", uuid::Uuid::new_v4().simple()),
        [
            ("endpoint", endpoint.clone()),
            ("allow_http", "true".to_owned()),
            ("access_key_id", "testing".to_owned()),
            ("secret_access_key", "testing".to_owned()),
            ("region", "us-east-1".to_owned()),
        ],
    )
    .unwrap();
    if let Err(e) = store.ensure_container().await {
        panic!(
            "bucket {bucket:?} is not usable at {endpoint} ({e}); `bash .ci/services.sh` creates it"
        );
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3() {
    suite(&s3_store().await).await;
    limits(s3_store().await).await;
}

#[test]
fn locations_are_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = |loc: &str, opts: Vec<(&str, &str)>| match ArtifactStore::open(loc, opts) {
        Err(ArtifactError::Location { reason, .. }) => reason,
        other => panic!("{loc}: expected a location error, got {other:?}"),
    };
    assert!(bad("ftp://x/y", vec![]).contains("unsupported"));
    assert!(bad("file:relative", vec![]).contains("three slashes"));
    assert!(bad(&tmp.path().display().to_string(), vec![("endpoint", "x")]).contains("no options"));
    assert!(bad("az://c/p", vec![("no_such_option", "1")]).contains("no_such_option"));
    assert!(bad("s3://b/p", vec![("no_such_option", "1")]).contains("no_such_option"));
    let s3 = ArtifactStore::open(
        "s3://bucket/a/b",
        [("region", "us-east-1"), ("endpoint", "http://127.0.0.1:1")],
    )
    .unwrap();
    assert_eq!(s3.object_store().1.as_ref(), "a/b");
    let az = ArtifactStore::open(
        "abfss://fs@acct.dfs.core.windows.net/x/y",
        [("access_key", AZURITE_KEY)],
    )
    .unwrap();
    assert_eq!(az.object_store().1.as_ref(), "x/y");
    assert_eq!(az.kind(), cerulean_registry::artifacts::StoreKind::Azure);
    let local = ArtifactStore::open(
        &format!("file://{}/sub", tmp.path().display()),
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    assert_eq!(local.kind(), cerulean_registry::artifacts::StoreKind::Local);
    assert!(tmp.path().join("sub").is_dir());
}

#[tokio::test]
async fn failed_bodies_leave_nothing_behind() {
    // A body that fails half-way is reported as a body error and leaves nothing behind.
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(tmp.path()).unwrap();
    let body = chunked(data(20 * MIB, 6), MIB)
        .take(12)
        .chain(stream::iter([Err(std::io::Error::other(
            "client went away",
        ))]));
    let err = store.put_stream(&p("broken.bin"), body).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::Body(ref m) if m.contains("client went away")),
        "{err:?}"
    );
    assert!(matches!(
        store.head(&p("broken.bin")).await,
        Err(ArtifactError::NotFound { .. })
    ));
    assert!(store.list(None).await.unwrap().is_empty());
}
