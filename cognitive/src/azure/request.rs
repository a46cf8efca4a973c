//! Reading requests: the body (size limit, JSON with the failing field named), query parameters,
//! kinds, string index types and documents.

use axum::body::Body;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Limits;
use super::error::{
    AzureError, INVALID_PARAMETER_VALUE, INVALID_REQUEST_BODY_FORMAT, MODEL_VERSION_INCORRECT,
};

/// A synchronous task kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    LanguageDetection,
    SentimentAnalysis,
    KeyPhraseExtraction,
    EntityRecognition,
    PiiEntityRecognition,
}

impl Kind {
    /// Every kind, in the order error messages list them.
    pub(crate) const ALL: [Kind; 5] = [
        Kind::LanguageDetection,
        Kind::SentimentAnalysis,
        Kind::KeyPhraseExtraction,
        Kind::EntityRecognition,
        Kind::PiiEntityRecognition,
    ];

    /// The kind a request names (`kind` is case-sensitive in Azure's schema; matched exactly).
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The request's `kind`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::LanguageDetection => "LanguageDetection",
            Kind::SentimentAnalysis => "SentimentAnalysis",
            Kind::KeyPhraseExtraction => "KeyPhraseExtraction",
            Kind::EntityRecognition => "EntityRecognition",
            Kind::PiiEntityRecognition => "PiiEntityRecognition",
        }
    }

    /// The response's `kind`.
    pub(crate) fn results_name(self) -> &'static str {
        match self {
            Kind::LanguageDetection => "LanguageDetectionResults",
            Kind::SentimentAnalysis => "SentimentAnalysisResults",
            Kind::KeyPhraseExtraction => "KeyPhraseExtractionResults",
            Kind::EntityRecognition => "EntityRecognitionResults",
            Kind::PiiEntityRecognition => "PiiEntityRecognitionResults",
        }
    }

    /// Documents one request may hold.
    pub(crate) fn max_documents(self, limits: &Limits) -> usize {
        match self {
            Kind::LanguageDetection => limits.language_detection_documents,
            Kind::SentimentAnalysis => limits.sentiment_documents,
            Kind::KeyPhraseExtraction => limits.key_phrase_documents,
            Kind::EntityRecognition => limits.entity_documents,
            Kind::PiiEntityRecognition => limits.pii_documents,
        }
    }

    /// Whether documents carry a `language` the pipeline must support (all but detection).
    pub(crate) fn needs_language(self) -> bool {
        self != Kind::LanguageDetection
    }
}

/// How offsets and lengths are counted in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringIndexType {
    /// Extended grapheme clusters (`TextElements_v8`, Azure's default).
    TextElements,
    /// Unicode code points (`UnicodeCodePoint`, what the Python SDK sends).
    CodePoints,
    /// UTF-16 code units (`Utf16CodeUnit`).
    Utf16,
}

impl StringIndexType {
    /// Reads a `stringIndexType` value (case-insensitive; both the Language API's
    /// `TextElements_v8` and v3.1's `TextElement_v8`).
    pub(crate) fn parse(value: &str) -> Result<StringIndexType, AzureError> {
        match value.to_ascii_lowercase().as_str() {
            "textelements_v8" | "textelement_v8" => Ok(StringIndexType::TextElements),
            "unicodecodepoint" => Ok(StringIndexType::CodePoints),
            "utf16codeunit" => Ok(StringIndexType::Utf16),
            _ => Err(AzureError::bad_request(
                INVALID_PARAMETER_VALUE,
                format!(
                    "Invalid value for stringIndexType: '{value}'. Supported values: \
                     TextElements_v8, UnicodeCodePoint, Utf16CodeUnit."
                ),
            )),
        }
    }
}

/// One input document as sent.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawDocument {
    pub(crate) id: String,
    /// Absent or `null` text is treated as empty (a per-document error).
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) language: Option<String>,
    // Language detection's `countryHint` is accepted and ignored (unknown fields are skipped).
}

/// One document, ready for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) language: Option<String>,
}

impl From<RawDocument> for Document {
    fn from(raw: RawDocument) -> Self {
        Document {
            id: raw.id,
            text: raw.text.unwrap_or_default(),
            language: raw.language,
        }
    }
}

/// Reads the body, refusing more than `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, AzureError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let inner = err.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            AzureError::BodyTooLarge { limit }
        } else {
            AzureError::bad_request(
                INVALID_REQUEST_BODY_FORMAT,
                format!("The request body could not be read: {inner}"),
            )
        }
    })
}

/// Parses JSON, naming the field that does not fit (`analysisInput.documents[1].id: ...`).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AzureError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AzureError::bad_request(
            INVALID_REQUEST_BODY_FORMAT,
            "The request body is empty.",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let at = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!(" at '{path}'")
        };
        AzureError::bad_request(
            INVALID_REQUEST_BODY_FORMAT,
            format!("The request body is not valid JSON for this operation{at}: {inner}."),
        )
    })?;
    deserializer.end().map_err(|err| {
        AzureError::bad_request(
            INVALID_REQUEST_BODY_FORMAT,
            format!("The request body has trailing characters after the JSON value: {err}."),
        )
    })?;
    Ok(value)
}

/// Query parameters, names matched case-insensitively.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string (`None` when the URI has none).
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// The last value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`false`, any case), `default` when absent.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, AzureError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_bool(name, v),
        }
    }
}

/// `true` or `false`, any case.
pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, AzureError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(AzureError::bad_request(
            INVALID_PARAMETER_VALUE,
            format!("Invalid value for {name}: '{value}'. Expected true or false."),
        ))
    }
}

/// Checks a requested `modelVersion`: `latest` (any case), empty, or the version served.
pub(crate) fn check_model_version(requested: Option<&str>, served: &str) -> Result<(), AzureError> {
    match requested.map(str::trim) {
        None | Some("") => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("latest") || v == served => Ok(()),
        Some(v) => Err(AzureError::bad_request(
            MODEL_VERSION_INCORRECT,
            format!("Invalid model version '{v}'. Possible values are: latest,{served}."),
        )),
    }
}

/// Checks a PII `domain`: `none` (default) or `phi` (accepted; adds no categories here).
pub(crate) fn check_domain(domain: Option<&str>) -> Result<(), AzureError> {
    match domain {
        None => Ok(()),
        Some(d)
            if d.is_empty() || d.eq_ignore_ascii_case("none") || d.eq_ignore_ascii_case("phi") =>
        {
            Ok(())
        }
        Some(d) => Err(AzureError::bad_request(
            INVALID_PARAMETER_VALUE,
            format!("Invalid value for domain: '{d}'. Supported values: none, phi."),
        )),
    }
}
