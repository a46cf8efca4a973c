//! The sentence encoder against embeddings computed independently in Python
//! (`fixtures/make_minilm_reference.py`: onnxruntime + tokenizers + numpy pooling).
//!
//! Needs the pulled models (`cerulean models pull minilm-l6-v2 onnxruntime`); a missing file fails
//! the test with that instruction.

use cerulean_cognitive::encoder::{
    DIMENSIONS, EMBEDDING_OUTPUT, Embedding, EmbeddingPipeline, SentenceEncoder, TOKENS_OUTPUT,
    cosine,
};
use cerulean_cognitive::pipeline::TextPipeline;
use cerulean_models::ModelStore;
use cerulean_serving::DataType;
use cerulean_serving::backend::BackendOptions;

const REFERENCE: &str = include_str!("fixtures/minilm_reference.json");

fn store() -> ModelStore {
    ModelStore::from_env()
}

fn encoder() -> SentenceEncoder {
    let store = store();
    SentenceEncoder::from_store(&store, &BackendOptions::default()).unwrap_or_else(|e| {
        panic!(
            "cannot load the MiniLM encoder from {} ({e}); run `cerulean models pull minilm-l6-v2 onnxruntime` \
             (or set CERULEAN_HOME to where they were pulled)",
            store.models_dir().display()
        )
    })
}

struct Reference {
    texts: Vec<String>,
    tokens: Vec<usize>,
    embeddings: Vec<Embedding>,
    paraphrases: Vec<(usize, usize)>,
}

fn reference() -> Reference {
    let json: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let mut reference = Reference {
        texts: Vec::new(),
        tokens: Vec::new(),
        embeddings: Vec::new(),
        paraphrases: Vec::new(),
    };
    for s in json["sentences"].as_array().unwrap() {
        reference
            .texts
            .push(s["text"].as_str().unwrap().to_string());
        reference
            .tokens
            .push(s["tokens"].as_u64().unwrap() as usize);
        let values: Vec<f32> = s["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        reference
            .embeddings
            .push(values.try_into().expect("384 values"));
    }
    for pair in json["paraphrases"].as_array().unwrap() {
        reference.paraphrases.push((
            pair[0].as_u64().unwrap() as usize,
            pair[1].as_u64().unwrap() as usize,
        ));
    }
    reference
}

fn norm(v: &Embedding) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn embeddings_match_the_python_reference() {
    let reference = reference();
    assert!(reference.texts.len() >= 10);
    let mut encoder = encoder();
    for (i, text) in reference.texts.iter().enumerate() {
        let encoded = encoder.encode_with_usage(&[text]).unwrap();
        let embedding = &encoded.embeddings[0];
        assert!(
            (norm(embedding) - 1.0).abs() < 1e-4,
            "not unit length: {text}"
        );
        let cos = cosine(embedding, &reference.embeddings[i]);
        let short: String = text.chars().take(40).collect();
        eprintln!("cosine {cos:.6} to the Python reference: {short:?}");
        assert!(cos >= 0.999, "cosine {cos} < 0.999 for {text:?}");
        assert_eq!(
            encoded.tokens[0], reference.tokens[i],
            "token count of {text:?}"
        );
    }
}

#[test]
fn long_texts_are_truncated_at_256_tokens() {
    let mut encoder = encoder();
    let long = "word ".repeat(1000);
    let encoded = encoder.encode_with_usage(&[&long]).unwrap();
    assert_eq!(encoded.tokens, vec![256]);
}

#[test]
fn paraphrases_score_above_unrelated_pairs() {
    let reference = reference();
    let mut encoder = encoder();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let embeddings = encoder.encode(&texts).unwrap();
    // The first ten sentences are four paraphrase pairs and two unrelated sentences.
    let paired: Vec<usize> = reference
        .paraphrases
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .collect();
    for &(a, b) in &reference.paraphrases {
        let similar = cosine(&embeddings[a], &embeddings[b]);
        for other in 0..10 {
            if other == a || other == b {
                continue;
            }
            for x in [a, b] {
                let unrelated = cosine(&embeddings[x], &embeddings[other]);
                assert!(
                    similar > unrelated + 0.2,
                    "{:?} ~ {:?} = {similar}, but {:?} ~ {:?} = {unrelated}",
                    texts[a],
                    texts[b],
                    texts[x],
                    texts[other]
                );
            }
        }
    }
    assert!(paired.len() >= 8);
}

#[test]
fn a_mixed_batch_equals_one_at_a_time() {
    let reference = reference();
    let mut encoder = encoder();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let batched = encoder.encode_with_usage(&texts).unwrap();
    assert_eq!(batched.embeddings.len(), texts.len());
    for (i, text) in texts.iter().enumerate() {
        let alone = encoder.encode_with_usage(&[text]).unwrap();
        assert_eq!(batched.tokens[i], alone.tokens[0]);
        let diff = batched.embeddings[i]
            .iter()
            .zip(&alone.embeddings[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(
            diff < 1e-4,
            "batched and single embeddings of {text:?} differ by {diff}"
        );
    }
}

#[test]
fn a_batch_larger_than_one_run_keeps_its_order() {
    let reference = reference();
    let mut encoder = encoder();
    // 45 texts with the 256-token one several times: more tokens than one ONNX Runtime run takes.
    let texts: Vec<&str> = reference
        .texts
        .iter()
        .map(String::as_str)
        .cycle()
        .take(45)
        .collect();
    let embeddings = encoder.encode(&texts).unwrap();
    for (i, embedding) in embeddings.iter().enumerate() {
        let expected = &reference.embeddings[i % reference.texts.len()];
        let cos = cosine(embedding, expected);
        assert!(cos >= 0.999, "row {i}: cosine {cos}");
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let mut encoder = encoder();
    let encoded = encoder.encode_with_usage(&[]).unwrap();
    assert!(encoded.embeddings.is_empty() && encoded.tokens.is_empty());
    // An empty string is still a document: [CLS] [SEP], a finite unit vector.
    let encoded = encoder.encode_with_usage(&["", "   "]).unwrap();
    assert_eq!(encoded.tokens, vec![2, 2]);
    for e in &encoded.embeddings {
        assert!(e.iter().all(|x| x.is_finite()));
        assert!((norm(e) - 1.0).abs() < 1e-4);
    }
}

#[test]
fn the_pipeline_returns_one_embedding_row_per_document() {
    let store = store();
    let pipeline = EmbeddingPipeline::from_store(&store, &BackendOptions::default())
        .unwrap_or_else(|e| panic!("{e}; run `cerulean models pull minilm-l6-v2 onnxruntime`"));
    let outputs = pipeline.outputs();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0].name, EMBEDDING_OUTPUT);
    assert_eq!(outputs[0].dims, vec![DIMENSIONS as i64]);
    assert_eq!(outputs[1].name, TOKENS_OUTPUT);
    let mut runner = pipeline.runner().unwrap();
    let reference = reference();
    let texts = [reference.texts[0].as_str(), reference.texts[2].as_str()];
    let tensors = runner.run(&texts).unwrap();
    assert_eq!(tensors.len(), 2);
    assert_eq!(tensors[0].datatype, DataType::Fp32);
    assert_eq!(tensors[1].datatype, DataType::Int64);
    assert_eq!(tensors[1].shape, vec![2, 1]);
    let tokens: Vec<i64> = tensors[1]
        .data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected: Vec<i64> = [0, 2].iter().map(|&i| reference.tokens[i] as i64).collect();
    assert_eq!(
        tokens, expected,
        "exact token counts, [CLS] and [SEP] included"
    );
    assert_eq!(tensors[0].shape, vec![2, DIMENSIONS as i64]);
    let values: Vec<f32> = tensors[0]
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (row, index) in [0, 2].into_iter().enumerate() {
        let got: Embedding = values[row * DIMENSIONS..(row + 1) * DIMENSIONS]
            .try_into()
            .unwrap();
        assert!(cosine(&got, &reference.embeddings[index]) >= 0.999);
    }
    assert!(runner.run(&[]).unwrap()[0].shape == vec![0, DIMENSIONS as i64]);
}
