//! The plumbing of the MLflow REST handlers: reading a request's parameters (JSON body, or the
//! query string with repeated keys for lists), MLflow's error bodies, and JSON answers written
//! straight from the entities (no intermediate `serde_json::Value`).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::artifacts::ArtifactError;
use crate::auth::Principal;
use crate::error::RegistryError;
use crate::service::Registry;

/// The handlers' state.
pub(crate) type St = axum::extract::State<Arc<Registry>>;

/// Largest JSON request body the MLflow routes read (dataset profiles may be 16 MB).
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// A failure of a REST handler, answered as MLflow's `{"error_code", "message"}`.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// From the metadata layer.
    Registry(RegistryError),
    /// From the artifact store.
    Artifact(ArtifactError),
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::Registry(e)
    }
}

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        ApiError::Artifact(e)
    }
}

/// What a handler answers.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// An MLflow error body with its status.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error_code: &'a str,
        message: &'a str,
    }
    let mut response = json_bytes(serde_json::to_vec(&Body {
        error_code: code,
        message,
    }));
    *response.status_mut() = status;
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Registry(e) => {
                let status = StatusCode::from_u16(e.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if status.is_server_error() {
                    tracing::error!(error = %e, "registry request failed");
                }
                error_response(status, e.error_code(), &e.to_string())
            }
            ApiError::Artifact(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::error!(error = %e, "artifact request failed");
                }
                error_response(status, e.error_code(), &e.public_message())
            }
        }
    }
}

/// `INVALID_PARAMETER_VALUE`: "Missing value for required parameter 'X'." (MLflow's wording).
pub(crate) fn missing(name: &str) -> ApiError {
    RegistryError::invalid(format!("Missing value for required parameter '{name}'.")).into()
}

/// The value of a required string parameter.
pub(crate) fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing(name)),
    }
}

/// The caller, as the authentication layer recorded it (anonymous when it is off).
pub(crate) fn actor(principal: Option<axum::Extension<Principal>>) -> Principal {
    principal.map_or_else(Principal::anonymous, |p| p.0)
}

// ---- requests -------------------------------------------------------------------------------

/// A request's parameters: its JSON body when it has one, else its query string (GET requests,
/// and DELETE requests sent without a body). The `Content-Type` is not checked: MLflow clients
/// send `application/json`, others send nothing or `text/plain`.
pub(crate) struct Input {
    uri: Uri,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Input {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| {
                ApiError::Registry(RegistryError::BadRequest(format!(
                    "cannot read the request body (at most {MAX_BODY_BYTES} bytes): {e}"
                )))
            })?;
        Ok(Input {
            uri: parts.uri,
            body,
        })
    }
}

impl Input {
    /// The request's parameters as `T`.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !is_blank(&self.body) {
            return serde_json::from_slice(&self.body).map_err(|e| {
                let message = format!("Invalid JSON request: {e}");
                ApiError::Registry(match e.classify() {
                    serde_json::error::Category::Data => RegistryError::invalid(message),
                    _ => RegistryError::BadRequest(message),
                })
            });
        }
        let query = self.uri.query().unwrap_or_default();
        T::deserialize(QueryDeserializer::new(query))
            .map_err(|e| RegistryError::invalid(format!("Invalid query parameters: {e}")).into())
    }

    /// The size of the request body in bytes.
    pub(crate) fn body_len(&self) -> usize {
        self.body.len()
    }
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Deserializes a struct from a query string: each key is a field, a repeated key a list, and
/// every value is text that numbers, booleans and enums are parsed from (as MLflow's server reads
/// GET parameters).
pub(crate) struct QueryDeserializer<'a> {
    pairs: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>,
}

impl<'a> QueryDeserializer<'a> {
    pub(crate) fn new(query: &'a str) -> Self {
        let mut pairs: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = crate::service::percent_decode(k, true);
            let v = crate::service::percent_decode(v, true);
            match pairs.iter_mut().find(|(key, _)| *key == k) {
                Some((_, values)) => values.push(v),
                None => pairs.push((k, vec![v])),
            }
        }
        QueryDeserializer { pairs }
    }
}

impl<'de, 'a> Deserializer<'de> for QueryDeserializer<'a> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(de::value::MapDeserializer::new(
            self.pairs
                .into_iter()
                .map(|(k, v)| (k.into_deserializer(), QueryValue(v))),
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// The values of one query key.
struct QueryValue<'a>(Vec<Cow<'a, str>>);

impl<'de, 'a> IntoDeserializer<'de, de::value::Error> for QueryValue<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'a> QueryValue<'a> {
    fn last(&self) -> &str {
        self.0.last().map(|s| s.as_ref()).unwrap_or_default()
    }

    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, de::value::Error> {
        self.last()
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("{:?} is not {what}", self.last())))
    }
}

macro_rules! query_number {
    ($($method:ident $visit:ident $ty:ty),*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.$visit(self.number::<$ty>(concat!("a ", stringify!($ty)))?)
        })*
    };
}

impl<'de, 'a> Deserializer<'de> for QueryValue<'a> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.len() == 1 {
            visitor.visit_str(self.last())
        } else {
            self.deserialize_seq(visitor)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(de::value::SeqDeserializer::new(
            self.0.into_iter().map(|s| s.into_deserializer()),
        ))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.last().to_ascii_lowercase().as_str() {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            other => Err(de::Error::custom(format!(
                "Invalid boolean value: {other}, must be 'true' or 'false'."
            ))),
        }
    }

    query_number!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64,
        deserialize_f32 visit_f32 f32, deserialize_f64 visit_f64 f64
    );

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let value: Cow<'_, str> = Cow::Owned(self.last().to_owned());
        value
            .into_deserializer()
            .deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// Serde helpers for MLflow's lenient request scalars.
pub(crate) mod lenient {
    use super::*;

    /// An optional string that may arrive as a number (model versions).
    pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(
            #[serde(deserialize_with = "crate::entities::json::deserialize_string_or_number")]
            String,
        );
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }

    /// An optional double: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`, or decimal text.
    pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(deserialize_with = "crate::entities::json::deserialize_f64")] f64);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }

    /// An optional boolean: `true`/`false`, or their text in any case.
    pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<bool>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v.to_ascii_lowercase().as_str() {
                    "true" => Ok(Some(true)),
                    "false" => Ok(Some(false)),
                    _ => Err(E::custom(format!(
                        "Invalid boolean value: {v}, must be 'true' or 'false'."
                    ))),
                }
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
        }
        d.deserialize_option(V)
    }
}

// ---- answers --------------------------------------------------------------------------------

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A 200 answer with a JSON body.
fn json_bytes(bytes: Result<Vec<u8>, serde_json::Error>) -> Response {
    match bytes {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an answer");
            let mut response = Response::new(Body::from(
                r#"{"error_code":"INTERNAL_ERROR","message":"cannot encode the answer"}"#,
            ));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
            response
        }
    }
}

/// `{}`: the answer of MLflow's endpoints that return nothing.
pub(crate) fn empty() -> Response {
    let mut response = Response::new(Body::from(Bytes::from_static(b"{}")));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    response
}

/// A JSON object written field by field, leaving out what protobuf's JSON printer leaves out
/// (unset optional fields, empty lists).
pub(crate) struct JsonObject {
    buf: Vec<u8>,
    error: Option<serde_json::Error>,
}

impl JsonObject {
    /// An empty object, with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(b'{');
        JsonObject { buf, error: None }
    }

    fn key(&mut self, key: &str) {
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// Adds `"key": value`.
    pub(crate) fn field<T: Serialize + ?Sized>(mut self, key: &str, value: &T) -> Self {
        self.key(key);
        if let Err(e) = serde_json::to_writer(&mut self.buf, value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Adds `"key": [...]` unless the list is empty.
    pub(crate) fn list<T: Serialize>(self, key: &str, items: &[T]) -> Self {
        if items.is_empty() {
            self
        } else {
            self.field(key, items)
        }
    }

    /// Adds `"key": value` when there is a value.
    pub(crate) fn opt<T: Serialize>(self, key: &str, value: Option<&T>) -> Self {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    /// The 200 answer.
    pub(crate) fn finish(mut self) -> Response {
        self.buf.push(b'}');
        json_bytes(match self.error {
            Some(e) => Err(e),
            None => Ok(self.buf),
        })
    }
}

/// `{"key": value}`.
pub(crate) fn object1<T: Serialize + ?Sized>(key: &str, value: &T) -> Response {
    JsonObject::with_capacity(512).field(key, value).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Q {
        name: String,
        order_by: Vec<String>,
        #[serde(deserialize_with = "crate::entities::json::deserialize_opt_i64")]
        max_results: Option<i64>,
        #[serde(deserialize_with = "lenient::opt_bool")]
        flag: Option<bool>,
        view_type: Option<crate::store::ViewType>,
        status: Option<crate::entities::RunStatus>,
        count: u32,
    }

    #[test]
    fn query_strings_deserialize_with_lists_numbers_and_enums() {
        let q: Q = Q::deserialize(QueryDeserializer::new(
            "name=a+b%2Fc&order_by=x+ASC&order_by=y&max_results=5&flag=True&view_type=ALL\
             &status=FINISHED&count=3&unknown=1",
        ))
        .unwrap();
        assert_eq!(
            q,
            Q {
                name: "a b/c".into(),
                order_by: vec!["x ASC".into(), "y".into()],
                max_results: Some(5),
                flag: Some(true),
                view_type: Some(crate::store::ViewType::All),
                status: Some(crate::entities::RunStatus::Finished),
                count: 3,
            }
        );
        let one: Q = Q::deserialize(QueryDeserializer::new("order_by=z")).unwrap();
        assert_eq!(one.order_by, vec!["z".to_string()]);
        assert!(Q::deserialize(QueryDeserializer::new("flag=maybe")).is_err());
        assert!(Q::deserialize(QueryDeserializer::new("count=x")).is_err());
        let empty: Q = Q::deserialize(QueryDeserializer::new("")).unwrap();
        assert_eq!(empty, Q::default());
    }

    #[test]
    fn objects_leave_out_empty_lists_and_unset_fields() {
        let response = JsonObject::with_capacity(16)
            .list::<i32>("a", &[])
            .list("b", &[1, 2])
            .opt::<String>("c", None)
            .opt("d", Some(&"x".to_string()))
            .finish();
        assert_eq!(response.status(), StatusCode::OK);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 100));
        assert_eq!(&body.unwrap()[..], br#"{"b":[1,2],"d":"x"}"#);
    }
}
