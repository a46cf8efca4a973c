//! Calling a text pipeline's v2 model from a route: documents in as one `TEXT` tensor per chunk of
//! the model's `max_batch_size` (the chunks run concurrently through the model's batch queue),
//! outputs back as one row per document.

use bytes::Bytes;
use cerulean_serving::inference::{InferRequest, RequestedOutput};
use cerulean_serving::server::InferenceServer;
use cerulean_serving::tensor::{BytesElements, encode_bytes_elements};
use cerulean_serving::{DataType, ServingError, Tensor};

use crate::pipeline::TEXT_INPUT;

/// A failed call to a v2 model.
#[derive(Debug, thiserror::Error)]
pub(crate) enum V2Error {
    /// The server refused or failed the request.
    #[error("model '{model}': {source}")]
    Serving {
        /// The model.
        model: String,
        /// The serving error.
        #[source]
        source: ServingError,
    },
    /// The model answered in a shape that breaks the pipeline contract.
    #[error("model '{model}' answered with {message}")]
    Output {
        /// The model.
        model: String,
        /// What is wrong with its answer.
        message: String,
    },
}

/// A model's outputs for a list of documents, one row per document.
#[derive(Debug)]
pub(crate) struct Outputs {
    model: String,
    rows: usize,
    tensors: Vec<Tensor>,
    /// The version that answered (the first part's, when parts were split; empty for no texts).
    version: String,
}

/// Runs `texts` through `model` and returns the named `outputs` (every output when empty).
pub(crate) async fn infer_texts(
    server: &InferenceServer,
    model: &str,
    texts: &[&str],
    outputs: &[&str],
) -> Result<Outputs, V2Error> {
    infer_texts_at(server, model, None, texts, outputs).await
}

/// [`infer_texts`] against `version` of `model` (its default version when `None`).
pub(crate) async fn infer_texts_at(
    server: &InferenceServer,
    model: &str,
    version: Option<&str>,
    texts: &[&str],
    outputs: &[&str],
) -> Result<Outputs, V2Error> {
    let serving = |source: ServingError| V2Error::Serving {
        model: model.to_string(),
        source,
    };
    if texts.is_empty() {
        return Ok(Outputs {
            model: model.to_string(),
            rows: 0,
            tensors: Vec::new(),
            version: String::new(),
        });
    }
    let chunk = server
        .model(model, version)
        .map_err(serving)?
        .max_batch_size();
    let chunk = chunk.max(1);
    let parts: Vec<&[&str]> = texts.chunks(chunk).collect();
    let requests = parts.iter().map(|part| {
        let data = encode_bytes_elements(part.iter().map(|t| t.as_bytes()));
        let request = Tensor::new(
            TEXT_INPUT,
            DataType::Bytes,
            vec![part.len() as i64, 1],
            Bytes::from(data),
        )
        .map(|input| InferRequest {
            inputs: vec![input],
            outputs: outputs.iter().map(|o| RequestedOutput::named(*o)).collect(),
            ..Default::default()
        });
        async move { server.infer(model, version, request?).await }
    });
    let responses = futures::future::try_join_all(requests)
        .await
        .map_err(serving)?;
    let served = responses
        .first()
        .map(|r| r.model_version.clone())
        .unwrap_or_default();
    let mut merged: Vec<(Tensor, Vec<u8>)> = Vec::new();
    for (part, response) in parts.iter().zip(responses) {
        let expected_rows = part.len();
        for tensor in response.outputs {
            if tensor.shape.first().copied() != Some(expected_rows as i64) {
                return Err(V2Error::Output {
                    model: model.to_string(),
                    message: format!(
                        "output '{}' of shape {:?} for {expected_rows} documents",
                        tensor.name, tensor.shape
                    ),
                });
            }
            match merged.iter_mut().find(|(t, _)| t.name == tensor.name) {
                Some((first, data)) => {
                    if first.datatype != tensor.datatype || first.shape[1..] != tensor.shape[1..] {
                        return Err(V2Error::Output {
                            model: model.to_string(),
                            message: format!(
                                "output '{}' whose type or shape changes between batches",
                                tensor.name
                            ),
                        });
                    }
                    first.shape[0] += tensor.shape[0];
                    data.extend_from_slice(&tensor.data);
                }
                None => {
                    let data = tensor.data.to_vec();
                    merged.push((tensor, data));
                }
            }
        }
    }
    let tensors = merged
        .into_iter()
        .map(|(mut tensor, data)| {
            tensor.data = Bytes::from(data);
            tensor
        })
        .collect();
    Ok(Outputs {
        model: model.to_string(),
        rows: texts.len(),
        tensors,
        version: served,
    })
}

impl Outputs {
    fn wrong(&self, message: String) -> V2Error {
        V2Error::Output {
            model: self.model.clone(),
            message,
        }
    }

    fn tensor(&self, name: &str) -> Result<&Tensor, V2Error> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| self.wrong(format!("no output '{name}'")))
    }

    /// The version of the model that answered.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Whether the model returned an output called `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.tensors.iter().any(|t| t.name == name)
    }

    /// A `BYTES` output with one UTF-8 string per document.
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<&str>, V2Error> {
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        let tensor = self.tensor(name)?;
        if tensor.datatype != DataType::Bytes {
            return Err(self.wrong(format!("output '{name}' of type {}", tensor.datatype)));
        }
        let elements: Vec<&[u8]> = BytesElements::new(&tensor.data).collect();
        if elements.len() != self.rows {
            return Err(self.wrong(format!(
                "{} elements in output '{name}' for {} documents",
                elements.len(),
                self.rows
            )));
        }
        elements
            .into_iter()
            .map(|e| {
                std::str::from_utf8(e)
                    .map_err(|err| self.wrong(format!("non-UTF-8 text in output '{name}': {err}")))
            })
            .collect()
    }

    /// An `FP32` output with `width` values per document.
    pub(crate) fn fp32(&self, name: &str, width: usize) -> Result<Vec<Vec<f32>>, V2Error> {
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        let tensor = self.tensor(name)?;
        if tensor.datatype != DataType::Fp32 {
            return Err(self.wrong(format!("output '{name}' of type {}", tensor.datatype)));
        }
        if tensor.data.len() != self.rows * width * 4 {
            return Err(self.wrong(format!(
                "output '{name}' of shape {:?} where {} rows of {width} were expected",
                tensor.shape, self.rows
            )));
        }
        let values: Vec<f32> = tensor
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(values.chunks(width.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// The per-document width of an output (the product of its non-batch dimensions).
    pub(crate) fn width(&self, name: &str) -> Result<usize, V2Error> {
        let tensor = self.tensor(name)?;
        tensor.shape[1..].iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d)
                .ok()
                .and_then(|d| acc.checked_mul(d))
                .ok_or_else(|| self.wrong(format!("output '{name}' of shape {:?}", tensor.shape)))
        })
    }

    /// A one-value-per-document integer output (`INT32`, `INT64` or `FP32`), when the model has it.
    pub(crate) fn counts(&self, name: &str) -> Option<Vec<u64>> {
        let tensor = self.tensors.iter().find(|t| t.name == name)?;
        let size = match tensor.datatype {
            DataType::Int32 | DataType::Fp32 => 4,
            DataType::Int64 => 8,
            _ => return None,
        };
        if tensor.data.len() != self.rows * size {
            return None;
        }
        let values = tensor
            .data
            .chunks_exact(size)
            .map(|c| match tensor.datatype {
                DataType::Int32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]).max(0) as u64,
                DataType::Fp32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]).max(0.0) as u64,
                _ => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(c);
                    i64::from_le_bytes(bytes).max(0) as u64
                }
            });
        Some(values.collect())
    }
}
