#!/usr/bin/env python3
"""Writes the two benchmark models of `cerulean-bench` as a Triton-layout model repository.

    python make_bench_models.py OUTDIR [--seed N]
        [--compute-delay-us N] [--compute-preferred N] [--compute-instances N] [--compute-threads N]
        [--overhead-delay-us N] [--overhead-preferred N] [--overhead-instances N] [--overhead-threads N]

Models (random weights, ReLU between layers, input "INPUT0" FP32 [-1, in], output "OUTPUT0"
FP32 [-1, 10]):

* ``OUTDIR/mlp_compute/1/model.onnx``: 512 -> 2048 -> 2048 -> 10, compute-bound (about 10.5
  MFLOP per row);
* ``OUTDIR/mlp_overhead/1/model.onnx``: 64 -> 256 -> 256 -> 10, overhead-bound (about 0.17
  MFLOP per row).

Each gets a ``config.pbtxt`` with ``max_batch_size: 32``, ``dynamic_batching`` with the given
``max_queue_delay_microseconds`` (and ``preferred_batch_size`` if given), an ``instance_group`` of the given count and the ONNX Runtime
``intra_op_thread_count`` parameter. The defaults are the settings tuned for a 2-core machine
(bench/README.md explains them).

Needs ``onnx`` and ``numpy`` (the venv of .ci/setup-python.sh has both).
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODELS = {
    # name: layer widths
    "mlp_compute": [512, 2048, 2048, 10],
    "mlp_overhead": [64, 256, 256, 10],
}


def make_mlp(name, widths, rng):
    """An MLP of MatMul + Add (+ Relu between layers) with He-initialised random weights."""
    nodes, inits = [], []
    x = "INPUT0"
    layers = len(widths) - 1
    for i in range(layers):
        fan_in, fan_out = widths[i], widths[i + 1]
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"W{i}"))
        inits.append(numpy_helper.from_array(b, f"B{i}"))
        mm, add = f"mm{i}", f"add{i}"
        nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [mm], name=f"MatMul{i}"))
        last = i == layers - 1
        out = "OUTPUT0" if last else add
        nodes.append(helper.make_node("Add", [mm, f"B{i}"], [out], name=f"Add{i}"))
        if not last:
            relu = f"relu{i}"
            nodes.append(helper.make_node("Relu", [add], [relu], name=f"Relu{i}"))
            x = relu
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", widths[0]])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", widths[-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="cerulean-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def config_pbtxt(name, widths, delay_us, preferred, instances, threads):
    """The Triton model configuration: batching, instances and ONNX Runtime threads."""
    preferred = f" preferred_batch_size: [ {preferred} ]" if preferred else ""
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ {widths[0]} ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ {widths[-1]} ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: {delay_us}{preferred} }}
instance_group [ {{ count: {instances} kind: KIND_CPU }} ]
parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{threads}" }} }}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compute-delay-us", type=int, default=0)
    parser.add_argument("--compute-preferred", type=int, default=16, help="preferred_batch_size (0: none)")
    parser.add_argument("--compute-instances", type=int, default=1)
    parser.add_argument("--compute-threads", type=int, default=1)
    parser.add_argument("--overhead-delay-us", type=int, default=0)
    parser.add_argument("--overhead-preferred", type=int, default=0, help="preferred_batch_size (0: none)")
    parser.add_argument("--overhead-instances", type=int, default=1)
    parser.add_argument("--overhead-threads", type=int, default=1)
    args = parser.parse_args()

    settings = {
        "mlp_compute": (args.compute_delay_us, args.compute_preferred, args.compute_instances, args.compute_threads),
        "mlp_overhead": (args.overhead_delay_us, args.overhead_preferred, args.overhead_instances,
                         args.overhead_threads),
    }
    rng = np.random.default_rng(args.seed)
    for name, widths in MODELS.items():
        version_dir = os.path.join(args.outdir, name, "1")
        os.makedirs(version_dir, exist_ok=True)
        onnx.save(make_mlp(name, widths, rng), os.path.join(version_dir, "model.onnx"))
        delay, preferred, instances, threads = settings[name]
        with open(os.path.join(args.outdir, name, "config.pbtxt"), "w") as f:
            f.write(config_pbtxt(name, widths, delay, preferred, instances, threads))
        print(f"wrote {version_dir}/model.onnx and config.pbtxt (delay {delay} us, preferred batch "
              f"{preferred or 'none'}, {instances} instance(s) x {threads} thread(s))")


if __name__ == "__main__":
    main()
