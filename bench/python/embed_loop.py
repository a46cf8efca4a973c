"""The Python baseline of `cerulean-bench embeddings`: all-MiniLM-L6-v2 sentence embeddings in a
plain loop, as sentence-transformers computes them (tokenise, run, mean-pool over the attention mask,
L2-normalise), with onnxruntime and tokenizers on the same ONNX file. Prints {"sentences_per_s": N}.
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--sentences", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    a = p.parse_args()

    sentences = json.load(open(a.sentences))
    tok = Tokenizer.from_file(a.tokenizer)
    tok.no_padding()
    tok.enable_truncation(256)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in each batch
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])

    def embed(texts):
        enc = tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask,
                                 "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    i = 0
    start = time.perf_counter()
    measure_from = start + a.warmup
    end = measure_from + a.duration
    done = 0
    while True:
        batch = [sentences[(i + k) % len(sentences)] for k in range(a.batch)]
        i += a.batch
        t0 = time.perf_counter()
        if t0 >= end:
            break
        embed(batch)
        t1 = time.perf_counter()
        if t0 >= measure_from and t1 < end:
            done += a.batch
    print(json.dumps({"sentences_per_s": done / a.duration}))


if __name__ == "__main__":
    main()
