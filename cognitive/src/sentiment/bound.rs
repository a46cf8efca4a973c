//! The `sentiment` v2 model answered by a bound text classifier (see [`super::binding`]).
//!
//! [`BoundSentiment`] is the binding plus the server it calls the classifier through. The server
//! does not exist yet when the builtin models are made, so it is attached later
//! ([`BoundSentiment::attach`], which [`crate::services::LanguageServices::router`] does). Each
//! batch of the `sentiment` model then goes, as documents and their sentences, to the classifier's
//! own v2 model (its batch queue, its instances) and comes back in the pipeline's contract:
//! `SENTIMENT`, `SCORES` [3] and `SENTENCES` (JSON), as the Azure routes read them.

use std::sync::{Arc, OnceLock, Weak};

use cerulean_serving::server::InferenceServer;
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, ServingError, Tensor};
use tokio::runtime::Handle;

use super::{SCORES_OUTPUT, SENTENCES_OUTPUT, SENTIMENT_OUTPUT, SentimentBinding};
use crate::azure::AzureError;
use crate::error::{CognitiveError, Result};
use crate::pipeline::{TextPipeline, TextRunner, bytes_rows, fp32_rows};

/// The server to call and the runtime to call it on.
type Attached = (Weak<InferenceServer>, Handle);

/// A sentiment binding and, once attached, the server that serves its classifier.
#[derive(Debug, Clone)]
pub struct BoundSentiment {
    binding: SentimentBinding,
    server: Arc<OnceLock<Attached>>,
}

impl BoundSentiment {
    /// `binding`, not attached to a server yet.
    pub fn new(binding: SentimentBinding) -> BoundSentiment {
        BoundSentiment {
            binding,
            server: Arc::new(OnceLock::new()),
        }
    }

    /// The binding.
    pub fn binding(&self) -> &SentimentBinding {
        &self.binding
    }

    /// Calls the classifier through `server` from now on, on the current tokio runtime (call it
    /// from async code). Later calls change nothing; outside a runtime it does nothing and the
    /// model keeps answering UNAVAILABLE.
    pub fn attach(&self, server: &Arc<InferenceServer>) {
        match Handle::try_current() {
            Ok(handle) => {
                let _ = self.server.set((Arc::downgrade(server), handle));
            }
            Err(e) => tracing::warn!("the sentiment binding cannot call its model: {e}"),
        }
    }

    /// The `sentiment` pipeline over the bound classifier.
    pub fn pipeline(&self) -> Arc<dyn TextPipeline> {
        Arc::new(self.clone())
    }
}

impl TextPipeline for BoundSentiment {
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new(SENTIMENT_OUTPUT, DataType::Bytes, vec![1]),
            TensorSpec::new(SCORES_OUTPUT, DataType::Fp32, vec![3]),
            TensorSpec::new(SENTENCES_OUTPUT, DataType::Bytes, vec![1]),
        ]
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        Ok(Box::new(self.clone()))
    }
}

/// The serving layer's error for an Azure-route error.
fn serving_error(e: AzureError) -> CognitiveError {
    let message = e.to_string();
    CognitiveError::Serving(match e {
        AzureError::ModelUnavailable { .. } => ServingError::Unavailable(message),
        AzureError::Busy { .. } => ServingError::QueueFull(message),
        AzureError::ModelRejected { .. } => ServingError::BadRequest(message),
        _ => ServingError::Internal(message),
    })
}

impl TextRunner for BoundSentiment {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        let (server, handle) = self
            .server
            .get()
            .and_then(|(server, handle)| Some((server.upgrade()?, handle.clone())))
            .ok_or_else(|| {
                CognitiveError::Serving(ServingError::Unavailable(format!(
                    "the sentiment binding {} is not attached to a running server",
                    self.binding
                )))
            })?;
        // A serving worker thread, outside the runtime: wait for the classifier's answer.
        let (documents, _) = handle
            .block_on(crate::azure::bound::classify(&server, &self.binding, texts))
            .map_err(serving_error)?;
        let mut labels = Vec::with_capacity(documents.len());
        let mut scores = Vec::with_capacity(documents.len() * 3);
        let mut sentences = Vec::with_capacity(documents.len());
        for doc in &documents {
            labels.push(doc.sentiment);
            scores.extend(
                [doc.scores.positive, doc.scores.neutral, doc.scores.negative].map(|v| v as f32),
            );
            sentences.push(
                serde_json::to_vec(&doc.sentences)
                    .map_err(|e| CognitiveError::Runtime(format!("sentences as JSON: {e}")))?,
            );
        }
        Ok(vec![
            bytes_rows(SENTIMENT_OUTPUT, &labels)?,
            fp32_rows(SCORES_OUTPUT, texts.len(), &[3], &scores)?,
            bytes_rows(SENTENCES_OUTPUT, &sentences)?,
        ])
    }
}
