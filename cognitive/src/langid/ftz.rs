//! A reader for fastText supervised models (`.bin` and quantized `.ftz`) and their prediction.
//!
//! The file format (fastText 0.9, file format version 12; version 11 is accepted too), all
//! integers and floats little-endian:
//!
//! 1. header: `i32` magic `793712314`, `i32` version;
//! 2. `Args`: `i32` dim, ws, epoch, minCount, neg, wordNgrams, loss (1 hs, 2 ns, 3 softmax,
//!    4 one-vs-all), model (1 cbow, 2 skipgram, 3 supervised), bucket, minn, maxn, lrUpdateRate,
//!    then `f64` t;
//! 3. `Dictionary`: `i32` size, nwords, nlabels, `i64` ntokens, pruneidx_size; `size` entries of a
//!    NUL-terminated word, `i64` count, `i8` type (0 word, 1 label); then `pruneidx_size` pairs of
//!    `i32` (hash bucket → row after pruning). `pruneidx_size` is −1 for an unpruned model;
//! 4. `bool` quantized input, then the input matrix: dense (`i64` rows, `i64` cols, `f32` values)
//!    or quantized (`bool` qnorm, `i64` rows, `i64` cols, `i32` code size, the codes, a product
//!    quantizer, and with qnorm one norm code per row plus a one-dimensional norm quantizer);
//! 5. `bool` quantized output, then the output matrix (quantized only when the input is).
//!
//! A product quantizer is `i32` dim, nsubq, dsub, lastdsub and `dim × 256` `f32` centroids.
//!
//! Prediction follows fastText's `predictLine` for one line of text: tokens are split on ASCII
//! space, tab, CR, LF, VT, FF and NUL, the end-of-sentence token `</s>` is added, every known
//! word contributes its row and its character n-grams, unknown words their n-grams only,
//! word n-grams are added when `wordNgrams > 1`, the rows are averaged, and the output layer
//! (softmax, hierarchical softmax or one sigmoid per label) scores the labels. Probabilities are
//! reported as fastText reports them: `exp(log(p + 1e-5))` accumulated along the path.

use std::collections::HashMap;

use crate::error::{CognitiveError, Result};

/// The magic number every fastText model file starts with.
pub const FASTTEXT_MAGIC: i32 = 793_712_314;
/// The file format version fastText 0.9 writes.
pub const FASTTEXT_VERSION: i32 = 12;
/// The end-of-sentence token.
pub const EOS: &str = "</s>";
/// The prefix of label entries in the dictionary.
pub const LABEL_PREFIX: &str = "__label__";

const BOW: &str = "<";
const EOW: &str = ">";
/// Centroids per sub-quantizer (8-bit codes).
const KSUB: usize = 256;

/// The loss a supervised model was trained with, which decides how labels are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Hierarchical softmax over a Huffman tree of the label counts.
    HierarchicalSoftmax,
    /// Negative sampling (scored with one sigmoid per label).
    NegativeSampling,
    /// Softmax over all labels.
    Softmax,
    /// One-vs-all (one sigmoid per label).
    OneVsAll,
}

/// The training arguments stored in the model that prediction needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// The dimension of the hidden layer.
    pub dim: usize,
    /// Word n-gram length (1 = words only).
    pub word_ngrams: i32,
    /// The loss.
    pub loss: Loss,
    /// The number of hash buckets for character and word n-grams.
    pub bucket: u32,
    /// The shortest character n-gram.
    pub minn: usize,
    /// The longest character n-gram (0 = none).
    pub maxn: usize,
}

/// One row source: a dense `f32` matrix or a product-quantized one.
#[derive(Debug, Clone)]
enum Matrix {
    Dense {
        rows: usize,
        cols: usize,
        data: Vec<f32>,
    },
    Quantized {
        rows: usize,
        pq: ProductQuantizer,
        codes: Vec<u8>,
        norms: Option<(Vec<u8>, ProductQuantizer)>,
    },
}

impl Matrix {
    fn rows(&self) -> usize {
        match self {
            Matrix::Dense { rows, .. } | Matrix::Quantized { rows, .. } => *rows,
        }
    }

    fn cols(&self) -> usize {
        match self {
            Matrix::Dense { cols, .. } => *cols,
            Matrix::Quantized { pq, .. } => pq.dim,
        }
    }

    /// The scale of row `i` (its quantized norm; 1 without one).
    fn norm(&self, i: usize) -> f32 {
        match self {
            Matrix::Quantized {
                norms: Some((codes, npq)),
                ..
            } => npq.centroid(0, codes[i])[0],
            _ => 1.0,
        }
    }

    /// `x += row(i)`.
    fn add_row_to(&self, x: &mut [f32], i: usize) {
        match self {
            Matrix::Dense { cols, data, .. } => {
                let row = &data[i * cols..(i + 1) * cols];
                x.iter_mut().zip(row).for_each(|(x, r)| *x += r);
            }
            Matrix::Quantized { pq, codes, .. } => {
                let alpha = self.norm(i);
                let code = &codes[i * pq.nsubq..(i + 1) * pq.nsubq];
                for (m, &c) in code.iter().enumerate() {
                    let centroid = pq.centroid(m, c);
                    let start = m * pq.dsub;
                    x[start..start + centroid.len()]
                        .iter_mut()
                        .zip(centroid)
                        .for_each(|(x, c)| *x += alpha * c);
                }
            }
        }
    }

    /// `row(i) · x`.
    fn dot_row(&self, x: &[f32], i: usize) -> f32 {
        match self {
            Matrix::Dense { cols, data, .. } => {
                let row = &data[i * cols..(i + 1) * cols];
                row.iter().zip(x).map(|(r, x)| r * x).sum()
            }
            Matrix::Quantized { pq, codes, .. } => {
                let code = &codes[i * pq.nsubq..(i + 1) * pq.nsubq];
                let mut sum = 0.0_f32;
                for (m, &c) in code.iter().enumerate() {
                    let centroid = pq.centroid(m, c);
                    let start = m * pq.dsub;
                    sum += x[start..start + centroid.len()]
                        .iter()
                        .zip(centroid)
                        .map(|(x, c)| x * c)
                        .sum::<f32>();
                }
                sum * self.norm(i)
            }
        }
    }
}

/// fastText's product quantizer: `nsubq` sub-vectors of `dsub` values (the last of `lastdsub`),
/// each replaced by one of 256 centroids.
#[derive(Debug, Clone)]
struct ProductQuantizer {
    dim: usize,
    nsubq: usize,
    dsub: usize,
    lastdsub: usize,
    centroids: Vec<f32>,
}

impl ProductQuantizer {
    /// The centroid `code` of sub-quantizer `m`.
    fn centroid(&self, m: usize, code: u8) -> &[f32] {
        let code = code as usize;
        if m + 1 == self.nsubq {
            let start = m * KSUB * self.dsub + code * self.lastdsub;
            &self.centroids[start..start + self.lastdsub]
        } else {
            let start = (m * KSUB + code) * self.dsub;
            &self.centroids[start..start + self.dsub]
        }
    }
}

/// One node of the hierarchical-softmax Huffman tree.
#[derive(Debug, Clone, Copy)]
struct Node {
    left: i64,
    right: i64,
    count: i64,
}

/// A loaded fastText supervised model.
#[derive(Debug, Clone)]
pub struct FastTextModel {
    args: Args,
    /// The labels without their prefix, in dictionary order.
    label_names: Vec<String>,
    /// Whether each entry is a label.
    is_label: Vec<bool>,
    word_ids: HashMap<String, usize>,
    nwords: usize,
    nlabels: usize,
    /// `None`: not pruned (every bucket has a row); `Some`: bucket → row after pruning.
    pruneidx: Option<HashMap<i32, i32>>,
    input: Matrix,
    output: Matrix,
    /// The Huffman tree, for hierarchical softmax.
    tree: Vec<Node>,
}

/// One scored label.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The label without the `__label__` prefix.
    pub label: String,
    /// Its probability as fastText reports it.
    pub probability: f32,
}

/// fastText's `std_log`: the log of `x` guarded against zero.
fn std_log(x: f32) -> f32 {
    (f64::from(x) + 1e-5).ln() as f32
}

/// fastText's FNV-1a variant: each byte is sign-extended (as `int8_t`) before the xor.
pub fn fasttext_hash(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// Splits one line into fastText tokens (ASCII whitespace and NUL separate them).
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split([' ', '\n', '\r', '\t', '\u{0b}', '\u{0c}', '\0'])
        .filter(|t| !t.is_empty())
}

/// Little-endian reader over the model bytes; running out is a model error.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    model: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return Err(CognitiveError::model(
                self.model,
                format!(
                    "file ends at byte {} while reading {what} ({n} bytes needed)",
                    self.bytes.len()
                ),
            ));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(
            self.take(4, what)?.try_into().unwrap_or_default(),
        ))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(
            self.take(8, what)?.try_into().unwrap_or_default(),
        ))
    }

    fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(
            self.take(8, what)?.try_into().unwrap_or_default(),
        ))
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = self.take(n.saturating_mul(4), what)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn cstr(&mut self, what: &str) -> Result<String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| CognitiveError::model(self.model, format!("unterminated {what}")))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn error(&self, message: impl std::fmt::Display) -> CognitiveError {
        CognitiveError::model(self.model, message)
    }

    /// A non-negative count that fits in what is left of the file (`unit` bytes each).
    fn count(&self, value: i64, unit: usize, what: &str) -> Result<usize> {
        let n = usize::try_from(value)
            .map_err(|_| self.error(format!("{what} is negative ({value})")))?;
        if n.saturating_mul(unit.max(1)) > self.bytes.len() - self.pos {
            return Err(self.error(format!("{what} ({n}) exceeds the file")));
        }
        Ok(n)
    }
}

impl FastTextModel {
    /// Reads a model from the bytes of a `.bin` or `.ftz` file; `model` names it in errors.
    pub fn from_bytes(bytes: &[u8], model: &str) -> Result<FastTextModel> {
        let mut r = Reader {
            bytes,
            pos: 0,
            model,
        };
        let magic = r.i32("magic")?;
        if magic != FASTTEXT_MAGIC {
            return Err(r.error(format!(
                "not a fastText model (magic {magic}, expected {FASTTEXT_MAGIC})"
            )));
        }
        let version = r.i32("version")?;
        if version != FASTTEXT_VERSION && version != 11 {
            return Err(r.error(format!(
                "fastText file format version {version} is not supported (11 or 12)"
            )));
        }
        let args = read_args(&mut r, version)?;

        // Dictionary.
        let size = r.i32("dictionary size")?;
        let nwords = r.i32("word count")?;
        let nlabels = r.i32("label count")?;
        let _ntokens = r.i64("token count")?;
        let prune_size = r.i64("pruneidx size")?;
        let size = r.count(i64::from(size), 10, "dictionary size")?;
        let nwords = r.count(i64::from(nwords), 0, "word count")?;
        let nlabels = r.count(i64::from(nlabels), 0, "label count")?;
        if nwords + nlabels != size {
            return Err(r.error(format!(
                "dictionary has {size} entries but {nwords} words and {nlabels} labels"
            )));
        }
        if nlabels == 0 {
            return Err(r.error("the model has no labels (not a supervised model)"));
        }
        let mut label_names = Vec::with_capacity(nlabels);
        let mut is_label = Vec::with_capacity(size);
        let mut counts = Vec::with_capacity(nlabels);
        let mut word_ids = HashMap::with_capacity(size);
        for i in 0..size {
            let word = r.cstr("dictionary word")?;
            let count = r.i64("word count")?;
            let kind = r.u8("entry type")?;
            let label = match kind {
                0 => false,
                1 => true,
                other => return Err(r.error(format!("entry {i} has unknown type {other}"))),
            };
            if label != (i >= nwords) {
                return Err(r.error(format!(
                    "entry {i} ('{word}') is out of order: words come before labels"
                )));
            }
            if label {
                counts.push(count);
                label_names.push(word.strip_prefix(LABEL_PREFIX).unwrap_or(&word).to_string());
            }
            word_ids.insert(word, i);
            is_label.push(label);
        }
        let pruneidx = if prune_size < 0 {
            None
        } else {
            let n = r.count(prune_size, 8, "pruneidx size")?;
            let mut map = HashMap::with_capacity(n);
            for _ in 0..n {
                let from = r.i32("pruneidx key")?;
                let to = r.i32("pruneidx value")?;
                map.insert(from, to);
            }
            Some(map)
        };

        // Matrices.
        let quant_input = r.u8("quantized-input flag")? != 0;
        let input = read_matrix(&mut r, quant_input, "input matrix")?;
        if !quant_input && pruneidx.is_some() {
            return Err(r.error("a pruned dictionary needs a quantized input matrix"));
        }
        let qout = r.u8("quantized-output flag")? != 0;
        let output = read_matrix(&mut r, quant_input && qout, "output matrix")?;

        let model_out = FastTextModel {
            tree: if args.loss == Loss::HierarchicalSoftmax {
                huffman_tree(&counts)
            } else {
                Vec::new()
            },
            args,
            label_names,
            is_label,
            word_ids,
            nwords,
            nlabels,
            pruneidx,
            input,
            output,
        };
        model_out.check_shapes(model)?;
        Ok(model_out)
    }

    /// Reads a model file.
    pub fn load(path: &std::path::Path, model: &str) -> Result<FastTextModel> {
        let bytes = std::fs::read(path).map_err(|e| CognitiveError::io(path, e))?;
        FastTextModel::from_bytes(&bytes, model)
    }

    /// Checks that every row id prediction can produce exists, so prediction never indexes out
    /// of bounds.
    fn check_shapes(&self, model: &str) -> Result<()> {
        let err = |m: String| Err(CognitiveError::model(model, m));
        let dim = self.args.dim;
        if self.input.cols() != dim || self.output.cols() != dim {
            return err(format!(
                "matrix widths {} and {} differ from dim {dim}",
                self.input.cols(),
                self.output.cols()
            ));
        }
        let rows = self.input.rows();
        let needed = match &self.pruneidx {
            None if self.args.maxn == 0 && self.args.word_ngrams <= 1 => self.nwords,
            None => self.nwords + self.args.bucket as usize,
            Some(map) => {
                let max = map.values().copied().max().unwrap_or(-1);
                if map.values().any(|&v| v < 0) {
                    return err("pruneidx has a negative row".into());
                }
                self.nwords + (max + 1) as usize
            }
        };
        if rows < needed {
            return err(format!("input matrix has {rows} rows, {needed} needed"));
        }
        let out_needed = if self.args.loss == Loss::HierarchicalSoftmax {
            self.nlabels - 1
        } else {
            self.nlabels
        };
        if self.output.rows() < out_needed {
            return err(format!(
                "output matrix has {} rows, {out_needed} needed",
                self.output.rows()
            ));
        }
        Ok(())
    }

    /// The training arguments.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The labels without their `__label__` prefix, in dictionary order (most frequent first).
    pub fn labels(&self) -> &[String] {
        &self.label_names
    }

    /// The number of words in the dictionary.
    pub fn nwords(&self) -> usize {
        self.nwords
    }

    fn push_hash(&self, ids: &mut Vec<usize>, id: i32) {
        if id < 0 {
            return;
        }
        match &self.pruneidx {
            None => ids.push(self.nwords + id as usize),
            Some(map) => {
                if let Some(&row) = map.get(&id) {
                    ids.push(self.nwords + row as usize);
                }
            }
        }
    }

    /// fastText's `computeSubwords` over `<word>`: character n-grams of `minn..=maxn` UTF-8
    /// characters, except the lone `<` and `>`.
    fn push_subwords(&self, ids: &mut Vec<usize>, word: &str) {
        if self.args.maxn == 0 {
            return;
        }
        let wrapped = format!("{BOW}{word}{EOW}");
        let bytes = wrapped.as_bytes();
        let continuation = |b: u8| b & 0xC0 == 0x80;
        for i in 0..bytes.len() {
            if continuation(bytes[i]) {
                continue;
            }
            let mut j = i;
            let mut n = 1;
            while j < bytes.len() && n <= self.args.maxn {
                j += 1;
                while j < bytes.len() && continuation(bytes[j]) {
                    j += 1;
                }
                if n >= self.args.minn && !(n == 1 && (i == 0 || j == bytes.len())) {
                    let h = fasttext_hash(&bytes[i..j]) % self.args.bucket;
                    self.push_hash(ids, h as i32);
                }
                n += 1;
            }
        }
    }

    /// The input rows of one line (fastText's `getLine` for prediction). The line gets its
    /// end-of-sentence token; callers remove newlines first.
    pub fn line_ids(&self, line: &str) -> Vec<usize> {
        let mut ids = Vec::new();
        let mut hashes: Vec<i32> = Vec::new();
        // A literal `</s>` ends the line early, as fastText's reader does.
        let end = tokens(line).position(|t| t == EOS);
        let line_tokens = tokens(line).take(end.map_or(usize::MAX, |e| e));
        for token in line_tokens.chain(std::iter::once(EOS)) {
            let id = self.word_ids.get(token).copied();
            let label = match id {
                Some(id) => self.is_label[id],
                None => token.starts_with(LABEL_PREFIX),
            };
            if label {
                continue;
            }
            match id {
                Some(id) => {
                    ids.push(id);
                    if token != EOS {
                        self.push_subwords(&mut ids, token);
                    }
                }
                None => {
                    if token != EOS {
                        self.push_subwords(&mut ids, token);
                    }
                }
            }
            hashes.push(fasttext_hash(token.as_bytes()) as i32);
        }
        if self.args.word_ngrams > 1 {
            let n = self.args.word_ngrams as usize;
            let bucket = u64::from(self.args.bucket);
            for i in 0..hashes.len() {
                // fastText widens the signed 32-bit hashes to 64 bits with sign extension.
                let mut h = hashes[i] as i64 as u64;
                for &next in hashes.iter().take(i + n).skip(i + 1) {
                    h = h.wrapping_mul(116_049_371).wrapping_add(next as i64 as u64);
                    self.push_hash(&mut ids, (h % bucket) as i32);
                }
            }
        }
        ids
    }

    /// The averaged hidden vector of `ids`.
    fn hidden(&self, ids: &[usize]) -> Vec<f32> {
        let mut hidden = vec![0.0_f32; self.args.dim];
        for &id in ids {
            self.input.add_row_to(&mut hidden, id);
        }
        let scale = 1.0 / ids.len() as f32;
        hidden.iter_mut().for_each(|h| *h *= scale);
        hidden
    }

    /// The `k` most probable labels of one line with probability at least `threshold`, best
    /// first (fastText's `predict(line, k, threshold)`). Newlines act as spaces.
    pub fn predict(&self, line: &str, k: usize, threshold: f32) -> Vec<Prediction> {
        let ids = self.line_ids(line);
        if ids.is_empty() || k == 0 {
            return Vec::new();
        }
        let hidden = self.hidden(&ids);
        let mut best = TopK::new(k);
        match self.args.loss {
            Loss::HierarchicalSoftmax => self.hs_search(&hidden, threshold, &mut best),
            Loss::Softmax => {
                let mut out: Vec<f32> = (0..self.nlabels)
                    .map(|i| self.output.dot_row(&hidden, i))
                    .collect();
                let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut z = 0.0_f32;
                for o in &mut out {
                    *o = (*o - max).exp();
                    z += *o;
                }
                out.iter_mut().for_each(|o| *o /= z);
                best.extend_probabilities(&out, threshold);
            }
            Loss::NegativeSampling | Loss::OneVsAll => {
                let out: Vec<f32> = (0..self.nlabels)
                    .map(|i| sigmoid(self.output.dot_row(&hidden, i)))
                    .collect();
                best.extend_probabilities(&out, threshold);
            }
        }
        best.into_sorted()
            .into_iter()
            .map(|(score, label)| Prediction {
                label: self.label_names[label].clone(),
                probability: score.exp().min(1.0),
            })
            .collect()
    }

    /// Depth-first search of the Huffman tree, pruned by the `k`-th best score so far
    /// (fastText's `HierarchicalSoftmaxLoss::dfs`, without recursion).
    fn hs_search(&self, hidden: &[f32], threshold: f32, best: &mut TopK) {
        let osz = self.nlabels;
        let log_threshold = std_log(threshold);
        let mut stack = vec![(2 * osz - 2, 0.0_f32)];
        while let Some((node, score)) = stack.pop() {
            if score < log_threshold || best.excludes(score) {
                continue;
            }
            let n = self.tree[node];
            if n.left == -1 && n.right == -1 {
                best.push(score, node);
                continue;
            }
            let f = sigmoid(self.output.dot_row(hidden, node - osz));
            // Right is pushed first so that the left subtree is searched first, as in fastText.
            stack.push((n.right as usize, score + std_log(f)));
            stack.push((n.left as usize, score + std_log(1.0 - f)));
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + f64::from((-x).exp()))) as f32
}

/// The best `k` (log score, label) pairs.
struct TopK {
    k: usize,
    /// Sorted best first.
    items: Vec<(f32, usize)>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// Whether `score` cannot enter a full list.
    fn excludes(&self, score: f32) -> bool {
        self.items.len() == self.k && self.items.last().is_some_and(|(s, _)| score < *s)
    }

    fn push(&mut self, score: f32, label: usize) {
        if self.excludes(score) {
            return;
        }
        let at = self.items.partition_point(|(s, _)| *s >= score);
        self.items.insert(at, (score, label));
        self.items.truncate(self.k);
    }

    /// fastText's `findKBest` over label probabilities.
    fn extend_probabilities(&mut self, probabilities: &[f32], threshold: f32) {
        for (label, &p) in probabilities.iter().enumerate() {
            if p < threshold {
                continue;
            }
            self.push(std_log(p), label);
        }
    }

    fn into_sorted(self) -> Vec<(f32, usize)> {
        self.items
    }
}

fn read_args(r: &mut Reader<'_>, version: i32) -> Result<Args> {
    let dim = r.i32("dim")?;
    let _ws = r.i32("ws")?;
    let _epoch = r.i32("epoch")?;
    let _min_count = r.i32("minCount")?;
    let _neg = r.i32("neg")?;
    let word_ngrams = r.i32("wordNgrams")?;
    let loss = r.i32("loss")?;
    let model = r.i32("model")?;
    let bucket = r.i32("bucket")?;
    let minn = r.i32("minn")?;
    let mut maxn = r.i32("maxn")?;
    let _lr_update_rate = r.i32("lrUpdateRate")?;
    let _t = r.f64("t")?;
    let loss = match loss {
        1 => Loss::HierarchicalSoftmax,
        2 => Loss::NegativeSampling,
        3 => Loss::Softmax,
        4 => Loss::OneVsAll,
        other => return Err(r.error(format!("unknown loss {other}"))),
    };
    if model != 3 {
        return Err(r.error(format!(
            "model type {model} is not a supervised model (3); only classifiers are supported"
        )));
    }
    if version == 11 {
        // Supervised models of file format 11 were trained without character n-grams.
        maxn = 0;
    }
    if !(1..=4096).contains(&dim) {
        return Err(r.error(format!("dim {dim} is out of range")));
    }
    if bucket < 0 || (bucket == 0 && (maxn > 0 || word_ngrams > 1)) {
        return Err(r.error(format!("bucket {bucket} is invalid")));
    }
    if minn < 0 || maxn < 0 {
        return Err(r.error(format!("minn {minn} / maxn {maxn} are invalid")));
    }
    Ok(Args {
        dim: dim as usize,
        word_ngrams,
        loss,
        bucket: bucket as u32,
        minn: minn as usize,
        maxn: maxn as usize,
    })
}

fn read_pq(r: &mut Reader<'_>, what: &str) -> Result<ProductQuantizer> {
    let dim = r.i32(what)?;
    let nsubq = r.i32(what)?;
    let dsub = r.i32(what)?;
    let lastdsub = r.i32(what)?;
    let bad = || {
        r.error(format!(
            "{what}: dim {dim}, nsubq {nsubq}, dsub {dsub}, lastdsub {lastdsub}"
        ))
    };
    if dim <= 0 || nsubq <= 0 || dsub <= 0 || lastdsub <= 0 {
        return Err(bad());
    }
    let (dim, nsubq, dsub, lastdsub) = (
        dim as usize,
        nsubq as usize,
        dsub as usize,
        lastdsub as usize,
    );
    if (nsubq - 1) * dsub + lastdsub != dim {
        return Err(bad());
    }
    let n = r.count((dim * KSUB) as i64, 4, what)?;
    let centroids = r.f32s(n, what)?;
    Ok(ProductQuantizer {
        dim,
        nsubq,
        dsub,
        lastdsub,
        centroids,
    })
}

fn read_matrix(r: &mut Reader<'_>, quantized: bool, what: &str) -> Result<Matrix> {
    if !quantized {
        let rows = r.i64(what)?;
        let cols = r.i64(what)?;
        let rows = r.count(rows, 0, what)?;
        let cols = r.count(cols, 0, what)?;
        let n = r.count(rows.saturating_mul(cols) as i64, 4, what)?;
        let data = r.f32s(n, what)?;
        return Ok(Matrix::Dense { rows, cols, data });
    }
    let qnorm = r.u8(what)? != 0;
    let rows = r.i64(what)?;
    let cols = r.i64(what)?;
    let code_size = r.i32(what)?;
    let rows = r.count(rows, 0, what)?;
    let cols = r.count(cols, 0, what)?;
    let code_size = r.count(i64::from(code_size), 1, what)?;
    let codes = r.take(code_size, what)?.to_vec();
    let pq = read_pq(r, what)?;
    if pq.dim != cols || code_size != rows.saturating_mul(pq.nsubq) {
        return Err(r.error(format!(
            "{what}: {rows}×{cols} with {code_size} codes does not match its quantizer \
             (dim {}, {} sub-quantizers)",
            pq.dim, pq.nsubq
        )));
    }
    let norms = if qnorm {
        let norm_codes = r.take(rows, what)?.to_vec();
        let npq = read_pq(r, what)?;
        if npq.dim != 1 || npq.nsubq != 1 {
            return Err(r.error(format!("{what}: the norm quantizer is not one-dimensional")));
        }
        Some((norm_codes, npq))
    } else {
        None
    };
    Ok(Matrix::Quantized {
        rows,
        pq,
        codes,
        norms,
    })
}

/// fastText's Huffman tree over the label counts (labels are sorted by count, most frequent
/// first): leaves `0..osz`, internal nodes `osz..2·osz−1`, root `2·osz−2`.
fn huffman_tree(counts: &[i64]) -> Vec<Node> {
    let osz = counts.len();
    let mut tree = vec![
        Node {
            left: -1,
            right: -1,
            count: 1_000_000_000_000_000,
        };
        2 * osz - 1
    ];
    for (node, &count) in tree.iter_mut().zip(counts) {
        node.count = count;
    }
    let mut leaf = osz as i64 - 1;
    let mut node = osz;
    for i in osz..2 * osz - 1 {
        let mut mini = [0_usize; 2];
        for slot in &mut mini {
            if leaf >= 0 && tree[leaf as usize].count < tree[node].count {
                *slot = leaf as usize;
                leaf -= 1;
            } else {
                *slot = node;
                node += 1;
            }
        }
        tree[i].left = mini[0] as i64;
        tree[i].right = mini[1] as i64;
        tree[i].count = tree[mini[0]].count + tree[mini[1]].count;
    }
    tree
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a small dense supervised model in fastText's format (for tests).
    pub(crate) struct TinyModel {
        pub dim: usize,
        pub loss: i32,
        pub minn: i32,
        pub maxn: i32,
        pub bucket: i32,
        pub word_ngrams: i32,
        pub words: Vec<(&'static str, i64)>,
        pub labels: Vec<(&'static str, i64)>,
        pub input: Vec<f32>,
        pub output: Vec<f32>,
    }

    impl TinyModel {
        pub fn bytes(&self) -> Vec<u8> {
            let mut b = Vec::new();
            let i32s = |b: &mut Vec<u8>, v: &[i32]| {
                v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()))
            };
            i32s(&mut b, &[FASTTEXT_MAGIC, FASTTEXT_VERSION]);
            i32s(
                &mut b,
                &[
                    self.dim as i32,
                    5,
                    5,
                    1,
                    5,
                    self.word_ngrams,
                    self.loss,
                    3,
                    self.bucket,
                    self.minn,
                    self.maxn,
                    100,
                ],
            );
            b.extend_from_slice(&1e-4_f64.to_le_bytes());
            let size = self.words.len() + self.labels.len();
            i32s(
                &mut b,
                &[
                    size as i32,
                    self.words.len() as i32,
                    self.labels.len() as i32,
                ],
            );
            b.extend_from_slice(&100_i64.to_le_bytes());
            b.extend_from_slice(&(-1_i64).to_le_bytes());
            for (kind, list) in [(0_u8, &self.words), (1, &self.labels)] {
                for (w, c) in list.iter() {
                    b.extend_from_slice(w.as_bytes());
                    b.push(0);
                    b.extend_from_slice(&c.to_le_bytes());
                    b.push(kind);
                }
            }
            b.push(0); // dense input
            let rows = self.input.len() / self.dim;
            b.extend_from_slice(&(rows as i64).to_le_bytes());
            b.extend_from_slice(&(self.dim as i64).to_le_bytes());
            self.input
                .iter()
                .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            b.push(0); // dense output
            let rows = self.output.len() / self.dim;
            b.extend_from_slice(&(rows as i64).to_le_bytes());
            b.extend_from_slice(&(self.dim as i64).to_le_bytes());
            self.output
                .iter()
                .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            b
        }
    }

    /// Two words, two labels, no n-grams: the hidden vector is the mean of the word rows.
    fn softmax_model() -> TinyModel {
        TinyModel {
            dim: 2,
            loss: 3,
            minn: 0,
            maxn: 0,
            bucket: 0,
            word_ngrams: 1,
            words: vec![(EOS, 10), ("hello", 5), ("bonjour", 4)],
            labels: vec![("__label__en", 7), ("__label__fr", 3)],
            // rows: </s>, hello, bonjour
            input: vec![0.0, 0.0, 2.0, 0.0, 0.0, 2.0],
            // label rows: en, fr
            output: vec![1.0, 0.0, 0.0, 1.0],
        }
    }

    #[test]
    fn hash_sign_extends_bytes() {
        // FNV-1a of "a": (2166136261 ^ 97) * 16777619.
        assert_eq!(fasttext_hash(b"a"), 0xe40c292c);
        // A byte ≥ 0x80 is sign-extended: 0xC3 xors as 0xFFFFFFC3.
        let expected = (2_166_136_261_u32 ^ 0xFFFF_FFC3).wrapping_mul(16_777_619);
        assert_eq!(fasttext_hash(&[0xC3]), expected);
    }

    #[test]
    fn tokens_split_on_ascii_whitespace_only() {
        let t: Vec<&str> = tokens(" a\tb\u{0b}c\u{a0}d  e\n").collect();
        assert_eq!(t, vec!["a", "b", "c\u{a0}d", "e"]);
    }

    #[test]
    fn softmax_prediction_matches_a_hand_computation() {
        let model = FastTextModel::from_bytes(&softmax_model().bytes(), "tiny").unwrap();
        assert_eq!(model.labels(), vec!["en", "fr"]);
        // "hello" + </s>: hidden = ([2,0] + [0,0]) / 2 = [1, 0]; logits [1, 0].
        let p = model.predict("hello", 2, 0.0);
        let e = 1.0_f32.exp();
        let en = e / (e + 1.0);
        assert_eq!(p[0].label, "en");
        assert!((p[0].probability - (en + 1e-5)).abs() < 1e-6, "{p:?}");
        assert_eq!(p[1].label, "fr");
        assert!((p[1].probability - (1.0 - en + 1e-5)).abs() < 1e-6);
        // Labels in the text are ignored; unknown words have no n-grams here.
        let p = model.predict("__label__fr bonjour zzz", 1, 0.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].label, "fr");
        // The threshold drops unlikely labels.
        assert_eq!(model.predict("hello", 2, 0.5).len(), 1);
    }

    #[test]
    fn hierarchical_softmax_sums_to_one() {
        let mut tiny = softmax_model();
        tiny.loss = 1;
        tiny.labels = vec![("__label__a", 9), ("__label__b", 5), ("__label__c", 2)];
        // Two internal nodes.
        tiny.output = vec![0.5, -1.0, 2.0, 0.3];
        let model = FastTextModel::from_bytes(&tiny.bytes(), "tiny").unwrap();
        let p = model.predict("hello bonjour", 3, 0.0);
        assert_eq!(p.len(), 3);
        let total: f32 = p.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-3, "{p:?}");
        assert!(p[0].probability >= p[1].probability && p[1].probability >= p[2].probability);
        // Top-1 equals the first of the top-3.
        let top = model.predict("hello bonjour", 1, 0.0);
        assert_eq!(top[0], p[0]);
    }

    #[test]
    fn huffman_tree_merges_the_two_smallest() {
        let tree = huffman_tree(&[9, 5, 2]);
        // First merge: leaves 2 (count 2) and 1 (count 5) → node 3 (7); then 0 (9)? no: 7 < 9,
        // so node 3 and leaf 0 → root 4.
        assert_eq!((tree[3].left, tree[3].right), (2, 1));
        assert_eq!((tree[4].left, tree[4].right), (3, 0));
        assert_eq!(tree[4].count, 16);
    }

    #[test]
    fn subwords_respect_utf8_and_skip_lone_brackets() {
        let mut tiny = softmax_model();
        tiny.minn = 1;
        tiny.maxn = 2;
        tiny.bucket = 1000;
        tiny.input.extend(std::iter::repeat_n(0.0, 2 * 1000));
        let model = FastTextModel::from_bytes(&tiny.bytes(), "tiny").unwrap();
        let mut ids = Vec::new();
        model.push_subwords(&mut ids, "é");
        // "<é>": 1-grams "é" (not "<" or ">"), 2-grams "<é" and "é>".
        let expect: Vec<usize> = ["<é", "é", "é>"]
            .iter()
            .map(|g| 3 + (fasttext_hash(g.as_bytes()) % 1000) as usize)
            .collect();
        assert_eq!(ids, expect);
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let bytes = softmax_model().bytes();
        for cut in [0, 3, 8, 40, 70, bytes.len() - 1] {
            let err = FastTextModel::from_bytes(&bytes[..cut], "tiny").unwrap_err();
            assert!(matches!(err, CognitiveError::Model { .. }), "{err}");
        }
        let err = FastTextModel::from_bytes(b"not a model at all", "tiny").unwrap_err();
        assert!(err.to_string().contains("not a fastText model"), "{err}");
    }
}
