//! Artifact paths: relative, `/`-separated, validated so that they can never leave the store's root.

use std::fmt;

use object_store::path::{Path as ObjectPath, PathPart};

use super::ArtifactError;

/// The first segment reserved for the store's own staging area (multipart parts on stores without
/// native multipart uploads). Artifact paths may not start with it.
pub(crate) const RESERVED_SEGMENT: &str = ".cerulean-mpu";

/// Longest accepted artifact path, in bytes (the limit of Azure Blob names and S3 keys).
pub const MAX_PATH_BYTES: usize = 1024;

/// Longest accepted single path segment, in bytes (the usual file-name limit of file systems).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A validated artifact path relative to the artifact root, e.g. `1/<run-id>/artifacts/model/MLmodel`.
///
/// Construction refuses everything that could escape the root or be interpreted differently by a
/// storage backend: `..` and `.` segments, absolute paths, Windows drive prefixes, backslashes,
/// NUL and other control characters, empty segments (`a//b`, trailing `/`), `#`, and any
/// remaining percent-encoded sequence (`%2e%2e`, `%2f`: the text given here is already decoded once,
/// so a `%XX` left in it means double encoding).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Validates an already-decoded path (from a query parameter, a JSON field or Rust code).
    pub fn parse(path: &str) -> Result<Self, ArtifactError> {
        validate(path).map_err(|reason| ArtifactError::invalid_path(path, reason))?;
        Ok(Self(path.to_owned()))
    }

    /// Validates a directory path for listing: like [`ArtifactPath::parse`], but an empty string
    /// means the root (`None`) and one trailing `/` is accepted.
    pub fn parse_dir(path: &str) -> Result<Option<Self>, ArtifactError> {
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return Ok(None);
        }
        if trimmed.is_empty() {
            return Err(ArtifactError::invalid_path(
                path,
                "absolute paths are not allowed",
            ));
        }
        validate(trimmed).map_err(|reason| ArtifactError::invalid_path(path, reason))?;
        Ok(Some(Self(trimmed.to_owned())))
    }

    /// Validates the raw, still percent-encoded tail of a request URL path (what follows
    /// `/mlflow-artifacts/artifacts/`). Encoded separators and dots (`%2F`, `%5C`, `%2E`), encoded
    /// NUL (`%00`) and double encoding (`%25XX`) are refused before the single decoding step.
    pub fn from_url_path(raw: &str) -> Result<Self, ArtifactError> {
        if let Some(reason) = raw_encoding_problem(raw) {
            return Err(ArtifactError::invalid_path(raw, reason));
        }
        let decoded =
            percent_decode(raw).map_err(|reason| ArtifactError::invalid_path(raw, reason))?;
        validate(&decoded).map_err(|reason| ArtifactError::invalid_path(&decoded, reason))?;
        Ok(Self(decoded))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// This path with one more segment, validated like the rest.
    pub fn join(&self, name: &str) -> Result<Self, ArtifactError> {
        Self::parse(&format!("{}/{}", self.0, name))
    }

    /// Joins an optional directory and a relative path.
    pub fn join_opt(dir: Option<&ArtifactPath>, rest: &str) -> Result<Self, ArtifactError> {
        match dir {
            Some(dir) => dir.join(rest),
            None => Self::parse(rest),
        }
    }

    /// The path percent-encoded for use in a URL path (each segment encoded, `/` kept).
    pub fn to_url_path(&self) -> String {
        self.segments()
            .map(percent_encode_segment)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The object-store key of this path below `prefix`. Characters that `object_store` does not
    /// allow in keys are percent-encoded by [`PathPart`]; [`decode_key_part`] reverses that.
    pub(crate) fn to_key(&self, prefix: &ObjectPath) -> ObjectPath {
        self.segments().fold(prefix.clone(), |key, segment| {
            key.join(PathPart::from(segment))
        })
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactPath({:?})", self.0)
    }
}

impl AsRef<str> for ArtifactPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Turns one key segment written by [`ArtifactPath::to_key`] back into the artifact name.
pub(crate) fn decode_key_part(part: &str) -> String {
    percent_decode(part).unwrap_or_else(|_| part.to_owned())
}

/// The last segment of a client-side file name, which may be a POSIX or a Windows path
/// (`/home/u/model.bin`, `C:\Users\u\model.bin`), as MLflow's multipart `path` field is.
pub fn client_file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn validate(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("the path is longer than 1024 bytes");
    }
    if path.contains('\0') {
        return Err("NUL characters are not allowed");
    }
    if path.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    if path.contains('\\') {
        return Err("backslashes are not allowed (use '/' as the separator)");
    }
    if path.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("drive-letter paths are not allowed");
    }
    if path.contains('#') {
        return Err("'#' is not allowed");
    }
    if contains_percent_escape(path) {
        return Err("percent-encoded sequences are not allowed (double-encoded path?)");
    }
    for (i, segment) in path.split('/').enumerate() {
        match segment {
            "" => return Err("empty path segments ('//' or a trailing '/') are not allowed"),
            "." => return Err("'.' segments are not allowed"),
            ".." => return Err("'..' segments are not allowed"),
            RESERVED_SEGMENT if i == 0 => return Err("this top-level name is reserved"),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err("a path segment is longer than 255 bytes");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Problems visible only in the raw (undecoded) URL text.
fn raw_encoding_problem(raw: &str) -> Option<&'static str> {
    let bytes = raw.as_bytes();
    (0..bytes.len()).find_map(|i| match escape_at(bytes, i)? {
        b'/' => Some("an encoded '/' (%2F) is not allowed"),
        b'\\' => Some("an encoded '\\' (%5C) is not allowed"),
        b'.' => Some("an encoded '.' (%2E) is not allowed"),
        0 => Some("an encoded NUL (%00) is not allowed"),
        b'%' if is_hex_pair(bytes, i + 3) => Some("double percent-encoding (%25XX) is not allowed"),
        _ => None,
    })
}

/// The byte `%XX` at `i` encodes, if there is one.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let h = hex_value(*bytes.get(i + 1)?)?;
    let l = hex_value(*bytes.get(i + 2)?)?;
    Some(h * 16 + l)
}

fn is_hex_pair(bytes: &[u8], i: usize) -> bool {
    matches!(
        (bytes.get(i), bytes.get(i + 1)),
        (Some(a), Some(b)) if hex_value(*a).is_some() && hex_value(*b).is_some()
    )
}

fn contains_percent_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && hex_value(w[1]).is_some() && hex_value(w[2]).is_some())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes once. A `%` not followed by two hex digits stays as it is (like Python's
/// `urllib.parse.unquote`); the result must be UTF-8.
pub(crate) fn percent_decode(s: &str) -> Result<String, &'static str> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(b) = escape_at(bytes, i) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the decoded path is not valid UTF-8")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &str) -> String {
        match ArtifactPath::parse(path) {
            Ok(p) => panic!("{path:?} was accepted as {p:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("invalid artifact path"), "{msg}");
                msg
            }
        }
    }

    fn refused_raw(raw: &str) -> String {
        match ArtifactPath::from_url_path(raw) {
            Ok(p) => panic!("raw {raw:?} was accepted as {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a",
            "1/abc/artifacts/model/MLmodel",
            "dir/file with spaces.txt",
            "unicode/données/模型.bin",
            "x/.hidden",
            "x/...",
            "x/a..b",
            "100%.txt",
            "a%zz",
            "weird/[1]{2}~^|.bin",
            "colon:inside",
        ] {
            let parsed = ArtifactPath::parse(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            assert_eq!(parsed.as_str(), p);
        }
    }

    #[test]
    fn refuses_dot_dot_and_dot() {
        for p in ["..", "../x", "a/../b", "a/..", "a/./b", ".", "./a"] {
            let msg = refused(p);
            assert!(
                msg.contains(&format!("{p:?}")),
                "message names the path: {msg}"
            );
        }
    }

    #[test]
    fn refuses_absolute_and_drive_paths() {
        assert!(refused("/etc/passwd").contains("absolute"));
        assert!(refused("/").contains("absolute"));
        assert!(refused("C:/Windows").contains("drive"));
        assert!(refused("c:foo").contains("drive"));
    }

    #[test]
    fn refuses_backslashes() {
        assert!(refused("a\\b").contains("backslash"));
        assert!(refused("..\\..\\x").contains("backslash"));
        assert!(refused("\\\\server\\share").contains("backslash"));
    }

    #[test]
    fn refuses_nul_and_control_characters() {
        assert!(refused("a\0b").contains("NUL"));
        assert!(refused("a\nb").contains("control"));
        assert!(refused("a\u{7f}").contains("control"));
    }

    #[test]
    fn refuses_empty_segments_and_empty_path() {
        assert!(refused("").contains("empty"));
        assert!(refused("a//b").contains("empty path segments"));
        assert!(refused("a/").contains("empty path segments"));
    }

    #[test]
    fn refuses_hash_reserved_and_overlong() {
        assert!(refused("a#b").contains('#'));
        assert!(refused(".cerulean-mpu/x").contains("reserved"));
        ArtifactPath::parse("x/.cerulean-mpu").unwrap();
        assert!(refused(&"a".repeat(256)).contains("255"));
        assert!(refused(&["a"; 600].join("/")).contains("1024"));
    }

    #[test]
    fn refuses_percent_encoded_leftovers_in_decoded_text() {
        for p in [
            "%2e%2e/x", "a/%2E%2E", "a%2fb", "a%2Fb", "%5c", "%00", "a%252e", "%41",
        ] {
            assert!(refused(p).contains("percent-encoded"), "{p}");
        }
    }

    #[test]
    fn raw_url_paths_decode_once() {
        let p = ArtifactPath::from_url_path("dir/a%20b.txt").unwrap();
        assert_eq!(p.as_str(), "dir/a b.txt");
        let p = ArtifactPath::from_url_path("d%C3%A9j%C3%A0/x").unwrap();
        assert_eq!(p.as_str(), "déjà/x");
        let p = ArtifactPath::from_url_path("100%25.txt").unwrap();
        assert_eq!(p.as_str(), "100%.txt");
    }

    #[test]
    fn raw_url_paths_refuse_encoded_traversal() {
        assert!(refused_raw("%2e%2e/secret").contains("%2E"));
        assert!(refused_raw("%2E%2E%2Fsecret").contains("%2"));
        assert!(refused_raw("a/%2e%2e/b").contains("encoded '.'"));
        assert!(refused_raw(".%2e/b").contains("encoded '.'"));
        assert!(refused_raw("a%2fb").contains("encoded '/'"));
        assert!(refused_raw("a%2Fb").contains("encoded '/'"));
        assert!(refused_raw("..%2f..%2fetc").contains("encoded '/'"));
        assert!(refused_raw("a%5cb").contains("encoded '\\'"));
        assert!(refused_raw("a%00b").contains("NUL"));
        assert!(refused_raw("%252e%252e/x").contains("double"));
        assert!(refused_raw("%25%32%65").contains("encoded"));
        assert!(refused_raw("..").contains("'..'"));
        assert!(refused_raw("a/../b").contains("'..'"));
        assert!(refused_raw("/abs").contains("absolute"));
        assert!(refused_raw("%2Fabs").contains("encoded '/'"));
        assert!(refused_raw("a//b").contains("empty"));
        assert!(refused_raw("a%5C..%5Cb").contains("encoded '\\'"));
        assert!(refused_raw("%ff%fe").contains("UTF-8"));
        // `%25` + `2e` split across a decode step is still a leftover escape after decoding.
        assert!(refused_raw("%2525").contains("double"));
    }

    #[test]
    fn list_dirs_accept_root_and_one_trailing_slash() {
        assert_eq!(ArtifactPath::parse_dir("").unwrap(), None);
        assert_eq!(
            ArtifactPath::parse_dir("a/b/").unwrap().unwrap().as_str(),
            "a/b"
        );
        assert!(ArtifactPath::parse_dir("/").is_err());
        assert!(ArtifactPath::parse_dir("a//").is_err());
        assert!(ArtifactPath::parse_dir("../").is_err());
    }

    #[test]
    fn keys_round_trip_through_object_store_encoding() {
        let prefix = ObjectPath::from("root/pre");
        let p = ArtifactPath::parse("dir/a[1]%.txt").unwrap();
        let key = p.to_key(&prefix);
        let last = key.parts().next_back().unwrap();
        assert_eq!(decode_key_part(last.as_ref()), "a[1]%.txt");
        assert!(key.as_ref().starts_with("root/pre/dir/"));
    }

    #[test]
    fn url_encoding_and_client_file_names() {
        let p = ArtifactPath::parse("a b/c%d/é").unwrap();
        assert_eq!(p.to_url_path(), "a%20b/c%25d/%C3%A9");
        assert_eq!(ArtifactPath::from_url_path(&p.to_url_path()).unwrap(), p);
        assert_eq!(client_file_name("/home/u/model.bin"), "model.bin");
        assert_eq!(client_file_name("C:\\Users\\u\\model.bin"), "model.bin");
        assert_eq!(client_file_name("model.bin"), "model.bin");
    }
}
