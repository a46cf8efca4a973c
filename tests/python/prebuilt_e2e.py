#!/usr/bin/env python3
"""Checks the prebuilt models that `cerulean up` serves against onnxruntime run directly on the same
pulled files, through the stock tritonclient (HTTP and gRPC).

    $PY tests/python/prebuilt_e2e.py --http HOST:PORT --grpc HOST:PORT --home $CERULEAN_HOME

Exits 1 on the first mismatch, printing what differed.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

# "Self-hosted ML training, a model registry & inference serving!" tokenised by the MiniLM tokenizer.
MINILM_IDS = [101, 2969, 1011, 4354, 19875, 2731, 1010, 1037, 2944, 15584, 1004, 28937, 3529, 999, 102]


def reference(model_path, feeds):
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def infer_both(http, grpc, model, feeds, outputs):
    results = []
    for client, module in ((http, httpclient), (grpc, grpcclient)):
        inputs = []
        for name, array in feeds.items():
            dtype = {np.float32: "FP32", np.int64: "INT64"}[array.dtype.type]
            tensor = module.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        requested = [module.InferRequestedOutput(o) for o in outputs]
        result = client.infer(model, inputs, outputs=requested)
        results.append([result.as_numpy(o) for o in outputs])
    return results


def check_close(got, want, what):
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        diff = np.max(np.abs(got.astype(np.float64) - want)) if got.shape == want.shape else "shape"
        sys.exit(f"FAIL {what}: shapes {got.shape} vs {want.shape}, max diff {diff}")
    print(f"PASS {what}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True)
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--home", required=True)
    args = parser.parse_args()
    models = Path(args.home) / "models"
    http = httpclient.InferenceServerClient(args.http)
    grpc = grpcclient.InferenceServerClient(args.grpc)

    for name in ("silero_vad", "all-MiniLM-L6-v2"):
        if not http.is_model_ready(name) or not grpc.is_model_ready(name):
            sys.exit(f"FAIL {name} is not ready")
    print("PASS prebuilt models ready")

    # Silero VAD: 64 samples of context + 512 new samples at 16 kHz, a zero state, the sample rate.
    rng = np.random.default_rng(7)
    t = np.arange(576) / 16000.0
    chunk = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(576)).astype(np.float32)
    feeds = {
        "input": chunk[None, :],
        "state": np.zeros((2, 1, 128), np.float32),
        "sr": np.array(16000, dtype=np.int64),
    }
    want = reference(models / "silero-vad/1/model.onnx", feeds)
    for transport, (prob, state) in zip(("http", "grpc"), infer_both(http, grpc, "silero_vad", feeds, ["output", "stateN"])):
        check_close(prob, want[0], f"silero_vad output over {transport}")
        check_close(state, want[1], f"silero_vad stateN over {transport}")

    # MiniLM: the token ids of a real sentence, batch of two (second row padded).
    ids = np.array([MINILM_IDS, MINILM_IDS[:8] + [102] + [0] * 6], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    want = reference(models / "minilm-l6-v2/1/model.onnx", feeds)
    for transport, (hidden,) in zip(("http", "grpc"), infer_both(http, grpc, "all-MiniLM-L6-v2", feeds, ["last_hidden_state"])):
        check_close(hidden, want[0], f"all-MiniLM-L6-v2 last_hidden_state over {transport}")
    print("all prebuilt checks passed")


if __name__ == "__main__":
    main()
