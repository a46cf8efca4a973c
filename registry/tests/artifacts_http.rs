//! The MLflow artifact proxy routes, served by a real `axum::serve` on 127.0.0.1:0 and driven with
//! reqwest (and raw HTTP/1.1 for paths reqwest would normalise).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cerulean_registry::artifacts::ArtifactStore;
use cerulean_registry::artifacts::http::{ArtifactHttpConfig, router};
use futures::stream;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

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

struct Server {
    addr: SocketAddr,
    base: String,
    root: PathBuf,
    _tmp: tempfile::TempDir,
    client: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        cerulean_registry::install_tls_provider();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let store = Arc::new(ArtifactStore::local(&root).unwrap());
        let app = router(store, ArtifactHttpConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            base: format!("http://{addr}/api/2.0/mlflow-artifacts"),
            root,
            _tmp: tmp,
            client: reqwest::Client::builder().build().unwrap(),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/{rest}", self.base)
    }

    /// Sends one raw HTTP/1.1 request (the target is not normalised) and returns status and body.
    async fn raw(&self, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
        let mut conn = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body).await.unwrap();
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_proxy_over_http() {
    let s = Server::start().await;
    let c = &s.client;

    // --- PUT: small, and 12 MiB streamed in 64 KiB chunks -----------------------------------------
    let r = c
        .put(s.url("artifacts/1/run1/artifacts/model/MLmodel"))
        .header("content-type", "text/plain")
        .body("flavors: {}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));
    let big = data(12 * MIB, 7);
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..big.len() / (64 * 1024))
        .map(|i| Ok(big.slice(i * 65536..(i + 1) * 65536)))
        .collect();
    let r = c
        .put(s.url("artifacts/1/run1/artifacts/model/data/weights%20v1.bin"))
        .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));
    assert!(
        s.root
            .join("1/run1/artifacts/model/data/weights v1.bin")
            .is_file()
    );

    // --- GET: byte-exact, headers --------------------------------------------------------------------
    let r = c
        .get(s.url("artifacts/1/run1/artifacts/model/data/weights%20v1.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(12 * MIB as u64));
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"weights v1.bin\""
    );
    assert!(r.headers().contains_key("last-modified"));
    assert!(r.bytes().await.unwrap() == big, "12 MiB download differs");
    let r = c
        .get(s.url("artifacts/1/run1/artifacts/model/MLmodel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "flavors: {}\n");

    // --- Range requests ---------------------------------------------------------------------------
    let weights = s.url("artifacts/1/run1/artifacts/model/data/weights%20v1.bin");
    let r = c
        .get(&weights)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-19/{}", 12 * MIB)
    );
    assert_eq!(r.bytes().await.unwrap(), big.slice(10..20));
    let r = c
        .get(&weights)
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), big.slice(big.len() - 5..));
    let r = c
        .get(&weights)
        .header("range", format!("bytes={}-", 12 * MIB))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", 12 * MIB)
    );
    assert_eq!(json_of(r).await.1["error_code"], "INVALID_PARAMETER_VALUE");

    // --- HEAD ---------------------------------------------------------------------------------------
    let r = c.head(&weights).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], (12 * MIB).to_string());

    // --- list ---------------------------------------------------------------------------------------
    let r = c
        .get(s.url("artifacts?path=1%2Frun1%2Fartifacts%2Fmodel"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await,
        (
            200,
            json!({"files": [{"path": "MLmodel", "is_dir": false, "file_size": 12}, {"path": "data", "is_dir": true}]})
        )
    );
    let r = c.get(s.url("artifacts")).send().await.unwrap();
    assert_eq!(
        json_of(r).await,
        (200, json!({"files": [{"path": "1", "is_dir": true}]}))
    );
    let r = c
        .get(s.url("artifacts?path=1%2Fnothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));

    // --- errors: missing file, directory ------------------------------------------------------------
    let (status, body) = json_of(
        c.get(s.url("artifacts/1/run1/artifacts/nope.txt"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("1/run1/artifacts/nope.txt")
    );
    let (status, body) = json_of(
        c.get(s.url("artifacts/1/run1/artifacts/model"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("directory"),
        "{body}"
    );

    // --- multipart upload, the way MLflow's client does it -------------------------------------------
    let mp = data(11 * MIB, 8);
    let (status, created) = json_of(
        c.post(s.url("mpu/create/1/run1/artifacts/big"))
            .json(&json!({"path": "/home/me/work/big.bin", "num_parts": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let upload_id = created["upload_id"].as_str().unwrap().to_owned();
    let credentials = created["credentials"].as_array().unwrap().clone();
    assert_eq!(credentials.len(), 3);
    let mut parts = Vec::new();
    for (i, credential) in credentials.iter().enumerate().rev() {
        assert_eq!(credential["part_number"], i + 1);
        assert_eq!(credential["headers"], json!({}));
        let url = credential["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!(
                "http://{}/api/2.0/mlflow-artifacts/mpu/part/1/run1/artifacts/big/big.bin?",
                s.addr
            )),
            "{url}"
        );
        let chunk = mp.slice(i * 5 * MIB..((i + 1) * 5 * MIB).min(mp.len()));
        let r = reqwest::Client::new()
            .put(url)
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        parts.push(json!({"part_number": i + 1, "etag": etag, "url": url}));
        // A tampered URL is refused.
        if i == 0 {
            let tampered = url.replace("part_number=1", "part_number=2");
            let r = reqwest::Client::new()
                .put(tampered)
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(json_of(r).await.0, 403);
        }
    }
    parts.reverse();
    let r = c
        .post(s.url("mpu/complete/1/run1/artifacts/big"))
        .json(&json!({"path": "/home/me/work/big.bin", "upload_id": upload_id, "parts": parts}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));
    let r = c
        .get(s.url("artifacts/1/run1/artifacts/big/big.bin"))
        .send()
        .await
        .unwrap();
    assert!(r.bytes().await.unwrap() == mp, "multipart download differs");

    // Abort.
    let (_, created) = json_of(
        c.post(s.url("mpu/create/1/run1/artifacts/big"))
            .json(&json!({"path": "C:\\Users\\me\\other.bin", "num_parts": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let url = created["credentials"][0]["url"].as_str().unwrap();
    assert!(url.contains("/big/other.bin?"), "{url}");
    reqwest::Client::new()
        .put(url)
        .body("partial")
        .send()
        .await
        .unwrap();
    let r = c
        .post(s.url("mpu/abort/1/run1/artifacts/big"))
        .json(&json!({"path": "C:\\Users\\me\\other.bin", "upload_id": created["upload_id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));
    let r = c
        .get(s.url("artifacts/1/run1/artifacts/big/other.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Bad requests.
    let r = c
        .post(s.url("mpu/create/1/run1"))
        .json(&json!({"num_parts": 1}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    let r = c
        .post(s.url("mpu/create/1/run1"))
        .json(&json!({"path": "x", "num_parts": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.0, 400);
    let r = c
        .post(s.url("mpu/create/1/run1"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.0, 400);

    // --- presigned (ranged download URL back to us) ---------------------------------------------------
    let (status, presigned) = json_of(
        c.get(s.url("presigned/1/run1/artifacts/big/big.bin"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(presigned["file_size"], 11 * MIB);
    let r = c
        .get(presigned["url"].as_str().unwrap())
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), mp.slice(0..4));

    // --- DELETE: a file, then a whole prefix -------------------------------------------------------
    let r = c
        .delete(s.url("artifacts/1/run1/artifacts/model/MLmodel"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));
    assert_eq!(
        c.get(s.url("artifacts/1/run1/artifacts/model/MLmodel"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = c.delete(s.url("artifacts/1/run1")).send().await.unwrap();
    assert_eq!(json_of(r).await, (200, json!({})));
    assert_eq!(
        json_of(c.get(s.url("artifacts")).send().await.unwrap()).await,
        (200, json!({}))
    );

    // The ajax-api mirror answers too.
    let r = c
        .get(format!(
            "http://{}/ajax-api/2.0/mlflow-artifacts/artifacts",
            s.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_attacks_are_refused_over_http() {
    let s = Server::start().await;
    std::fs::write(s.root.parent().unwrap().join("secret.txt"), "outside").unwrap();
    let a = "/api/2.0/mlflow-artifacts/artifacts";
    let attacks = [
        format!("{a}/../secret.txt"),
        format!("{a}/x/../../secret.txt"),
        format!("{a}/%2e%2e/secret.txt"),
        format!("{a}/%2E%2E/secret.txt"),
        format!("{a}/.%2e/secret.txt"),
        format!("{a}/..%2fsecret.txt"),
        format!("{a}/..%2Fsecret.txt"),
        format!("{a}/%2e%2e%2fsecret.txt"),
        format!("{a}/%252e%252e/secret.txt"),
        format!("{a}/%252e%252e%252fsecret.txt"),
        format!("{a}/..%5csecret.txt"),
        format!("{a}/..\\secret.txt"),
        format!("{a}/x%00.txt"),
        format!("{a}//etc/passwd"),
        format!("{a}/%2Fetc/passwd"),
        format!("{a}/C:/Windows/win.ini"),
        format!("{a}/x//y"),
        format!("{a}/x/./y"),
        format!("{a}/.cerulean-mpu/x"),
        format!("{a}/%C0%AE%C0%AE/secret.txt"),
    ];
    for target in &attacks {
        for method in ["GET", "PUT", "DELETE", "HEAD"] {
            let (status, body) = s.raw(method, target, b"pwned").await;
            assert_eq!(status, 400, "{method} {target} answered {status} {body}");
            if method != "HEAD" {
                assert_eq!(
                    body["error_code"], "INVALID_PARAMETER_VALUE",
                    "{method} {target}"
                );
                let message = body["message"].as_str().unwrap();
                assert!(message.starts_with("invalid artifact path"), "{message}");
            }
        }
    }
    // The message names the path.
    let (_, body) = s.raw("GET", &format!("{a}/x/../../secret.txt"), b"").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("x/../../secret.txt"),
        "{body}"
    );

    // Listing.
    for query in [
        "..",
        "../..",
        "x/../..",
        "%2Fetc",
        "/",
        "%252e%252e",
        "x%00",
        "..%5c",
        "a//b",
    ] {
        let (status, body) = s.raw("GET", &format!("{a}?path={query}"), b"").await;
        assert_eq!(status, 400, "list {query}: {body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    }

    // Multipart routes: the directory in the URL and the file name in the body.
    let mpu = "/api/2.0/mlflow-artifacts/mpu";
    for (target, body) in [
        (
            format!("{mpu}/create/../x"),
            json!({"path": "f.bin", "num_parts": 1}),
        ),
        (
            format!("{mpu}/create/%2e%2e/x"),
            json!({"path": "f.bin", "num_parts": 1}),
        ),
        (
            format!("{mpu}/create/ok"),
            json!({"path": "..", "num_parts": 1}),
        ),
        (
            format!("{mpu}/create/ok"),
            json!({"path": "/tmp/", "num_parts": 1}),
        ),
        (
            format!("{mpu}/complete/../x"),
            json!({"path": "f.bin", "upload_id": "0", "parts": []}),
        ),
        (
            format!("{mpu}/abort/%252e%252e"),
            json!({"path": "f.bin", "upload_id": "0"}),
        ),
        (
            format!("{mpu}/part/../x?upload_id=0&part_number=1&expires=0&signature=00"),
            json!({}),
        ),
    ] {
        let (status, response) = s
            .raw(
                if target.contains("/part/") {
                    "PUT"
                } else {
                    "POST"
                },
                &target,
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 400, "{target} {body}: {response}");
    }
    // A staged upload id that is not ours is refused rather than used as a directory name.
    let (status, _) = s
        .raw(
            "POST",
            &format!("{mpu}/abort/ok"),
            json!({"path": "f.bin", "upload_id": "../../x"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(status, 400);

    // Nothing escaped: the directory above the root holds only the root and our secret.
    let mut names: Vec<_> = std::fs::read_dir(s.root.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["root", "secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(s.root.parent().unwrap().join("secret.txt")).unwrap(),
        "outside"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_bodies_over_the_limit_are_refused() {
    cerulean_registry::install_tls_provider();
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(tmp.path()).unwrap();
    let mut limits = store.limits().clone();
    limits.max_artifact_bytes = 1024;
    let app = router(
        Arc::new(store.with_limits(limits)),
        ArtifactHttpConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/api/2.0/mlflow-artifacts/artifacts/x.bin");
    let r = reqwest::Client::new()
        .put(&url)
        .body(vec![0u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("1024"), "{body}");
    // Without a declared length (a stream) the limit is enforced while streaming.
    let body = reqwest::Body::wrap_stream(stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 512]))),
    ));
    let r = reqwest::Client::new()
        .put(&url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(!tmp.path().join("x.bin").exists());
}
