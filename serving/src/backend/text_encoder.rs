//! The text-encoder seam: how a candle text classifier (`model.json` architecture
//! `text-classifier`) turns its `TEXT` input into the features its head reads.
//!
//! A text classifier names its encoder (e.g. `all-MiniLM-L6-v2`) instead of carrying it, and the
//! serving crate has no encoder of its own: the program that embeds the server registers
//! [`TextEncoderProvider`]s by name in [`TextEncoders`] (part of
//! [`BackendOptions`](crate::backend::BackendOptions)); `cerulean up` and `cerulean serve`
//! register the cognitive crate's ONNX MiniLM encoder. A text classifier whose encoder is not
//! registered loads as UNAVAILABLE with the reason.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;

/// One instance of an encoder, owned by one serving worker thread.
pub trait TextEncoder: Send {
    /// The embedding of each text, row-major: `texts.len()` rows of
    /// [`TextEncoderProvider::dimensions`] values.
    fn encode(&mut self, texts: &[&str]) -> Result<Vec<f32>>;
}

/// A named encoder that creates instances.
pub trait TextEncoderProvider: Send + Sync {
    /// The name models refer to it by, e.g. `all-MiniLM-L6-v2`.
    fn name(&self) -> &str;
    /// The length of one embedding.
    fn dimensions(&self) -> usize;
    /// A new instance that reads at most `max_tokens` tokens of each text.
    fn create(&self, max_tokens: usize) -> Result<Box<dyn TextEncoder>>;
}

/// The encoders a server provides, by name (none by default).
#[derive(Clone, Default)]
pub struct TextEncoders {
    providers: Vec<Arc<dyn TextEncoderProvider>>,
}

impl fmt::Debug for TextEncoders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl TextEncoders {
    /// No encoders.
    pub fn new() -> TextEncoders {
        TextEncoders::default()
    }

    /// These encoders plus `provider` (which replaces one of the same name).
    pub fn with(mut self, provider: Arc<dyn TextEncoderProvider>) -> TextEncoders {
        self.providers.retain(|p| p.name() != provider.name());
        self.providers.push(provider);
        self
    }

    /// The encoder called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn TextEncoderProvider>> {
        self.providers.iter().find(|p| p.name() == name).cloned()
    }

    /// The registered encoders' names.
    pub fn names(&self) -> Vec<&str> {
        self.providers.iter().map(|p| p.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataType;
    use crate::backend::candle::{Architecture, CandleModel, ModelSpec, SPEC_FILE, TensorSpecJson};
    use crate::backend::{BatchInput, ModelBackend};
    use crate::error::ServingError;
    use crate::tensor::{BytesElements, encode_bytes_elements};

    /// Three values per text: its length in bytes, its count of `!`, and 1.
    struct Counts;

    impl TextEncoder for Counts {
        fn encode(&mut self, texts: &[&str]) -> Result<Vec<f32>> {
            Ok(texts
                .iter()
                .flat_map(|t| [t.len() as f32, t.matches('!').count() as f32, 1.0])
                .collect())
        }
    }

    impl TextEncoderProvider for Counts {
        fn name(&self) -> &str {
            "counts"
        }

        fn dimensions(&self) -> usize {
            3
        }

        fn create(&self, _max_tokens: usize) -> Result<Box<dyn TextEncoder>> {
            Ok(Box::new(Counts))
        }
    }

    /// The candle tests' 3 → 4 → 2 MLP (labels `no`, `yes`) behind the `counts` encoder.
    fn write_text_classifier(dir: &std::path::Path) -> std::path::PathBuf {
        let weights = crate::backend::candle::tests::write_mlp(dir, true);
        let path = dir.join(SPEC_FILE);
        let mut spec = ModelSpec::read(&path).unwrap();
        spec.architecture = Architecture::TextClassifier {
            encoder: "counts".into(),
            max_length: 16,
            head: Box::new(spec.architecture),
            fine_tuned: false,
        };
        spec.inputs = vec![TensorSpecJson {
            name: "TEXT".into(),
            datatype: "BYTES".into(),
            shape: vec![-1, 1],
        }];
        std::fs::write(&path, serde_json::to_string(&spec).unwrap()).unwrap();
        weights
    }

    #[test]
    fn a_text_classifier_encodes_then_classifies() {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_text_classifier(dir.path());
        let err = CandleModel::load(&weights).err().unwrap();
        assert!(matches!(err, ServingError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("'counts'"), "{err}");

        let encoders = TextEncoders::new().with(Arc::new(Counts));
        assert_eq!(format!("{encoders:?}"), r#"["counts"]"#);
        let model = CandleModel::load_with(&weights, &encoders).unwrap();
        let params = model.parameters();
        assert_eq!(params[0], ("labels".into(), r#"["no","yes"]"#.into()));
        assert_eq!(params[1], ("text_encoder".into(), "counts".into()));
        let input = model.natural_signature().inputs[0].clone();
        assert_eq!(
            (input.datatype, input.dims.clone()),
            (DataType::Bytes, vec![-1, 1])
        );

        // The same texts as features through the plain MLP give the same scores.
        let texts = ["hello!", "a much longer text, without any bang"];
        let bytes = encode_bytes_elements(texts.iter().map(|t| t.as_bytes()));
        let mut instance = model.create_instance().unwrap();
        let out = instance
            .execute(&[BatchInput {
                spec: &input,
                shape: vec![2, 1],
                parts: vec![&bytes],
            }])
            .unwrap();
        let plain_dir = tempfile::tempdir().unwrap();
        let plain = CandleModel::load(&crate::backend::candle::tests::write_mlp(
            plain_dir.path(),
            true,
        ))
        .unwrap();
        let features = Counts.encode(&texts).unwrap();
        let feature_bytes = bytemuck::cast_slice::<f32, u8>(&features).to_vec();
        let plain_input = plain.natural_signature().inputs[0].clone();
        let expected = plain
            .create_instance()
            .unwrap()
            .execute(&[BatchInput {
                spec: &plain_input,
                shape: vec![2, 3],
                parts: vec![&feature_bytes],
            }])
            .unwrap();
        assert_eq!(out[0].data, expected[0].data);
        let labels: Vec<&[u8]> = BytesElements::new(&out[1].data).collect();
        let want: Vec<&[u8]> = BytesElements::new(&expected[1].data).collect();
        assert_eq!(labels, want);
    }

    #[test]
    fn an_encoder_of_the_wrong_width_is_refused() {
        struct Wide;
        impl TextEncoderProvider for Wide {
            fn name(&self) -> &str {
                "counts"
            }
            fn dimensions(&self) -> usize {
                384
            }
            fn create(&self, _: usize) -> Result<Box<dyn TextEncoder>> {
                Ok(Box::new(Counts))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let weights = write_text_classifier(dir.path());
        let encoders = TextEncoders::new().with(Arc::new(Wide));
        let err = CandleModel::load_with(&weights, &encoders).err().unwrap();
        assert!(err.to_string().contains("384"), "{err}");
    }
}
