#!/usr/bin/env python3
"""Writes a deliberately slow ONNX model (640 chained 1024x1024 MatMuls) into a Triton repository:

    python make_slow_model.py OUTDIR

`OUTDIR/slow/1/model.onnx` takes INPUT0 FP32 [-1, 1024] to OUTPUT0 FP32 [-1, 1024]. Its config has one
instance and a queue of two, so tests can hold the instance busy and fill the queue on purpose.
A batch of 256 rows must keep the instance busy well past the test's abandoned requests (about
0.5 s after it starts): with 160 MatMuls it took only 0.33 s on one thread of a fast machine, and
the test then computed a request it meant to abandon. 640 take about 1.3 s there.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS = 640
WIDTH = 1024


def main():
    out = Path(sys.argv[1]) / "slow"
    (out / "1").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) * 0.01).astype(np.float32), "W")
    nodes, previous = [], "INPUT0"
    for i in range(LAYERS):
        output = "OUTPUT0" if i == LAYERS - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [previous, "W"], [output]))
        previous = output
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, [None, WIDTH])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [None, WIDTH])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(out / "1" / "model.onnx"))
    (out / "config.pbtxt").write_text(
        "max_batch_size: 256\n"
        "dynamic_batching { default_queue_policy { max_queue_size: 2 } }\n"
        "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    )


if __name__ == "__main__":
    main()
