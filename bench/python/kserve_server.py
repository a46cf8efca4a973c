#!/usr/bin/env python3
"""The KServe Python model server that `cerulean-bench` compares Cerulean with.

    python kserve_server.py --model-file DIR/mlp_overhead/1/model.onnx --model_name mlp_overhead \\
        --http_port 8090 --grpc_port 8091 [--intra-op-threads 1] [--quiet] [any kserve ModelServer flag]

Serves one ONNX file through onnxruntime (``intra_op_num_threads`` 1 by default, like the Rust
server's instances) with KServe's v2 (Open Inference Protocol) data plane: REST on ``--http_port``
(JSON tensors and the binary tensor extension) and gRPC on ``--grpc_port``. ``--quiet`` turns off
KServe's per-request latency log and uvicorn's access log, which is KServe at its fastest.

Run it with the venv of ``bench/setup-kserve.sh`` (kserve 0.21.0, onnxruntime 1.31.1).
"""

import argparse
import logging
import uuid

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve import model_server as kserve_model_server


class OnnxModel(Model):
    """A v2 model that runs every request through one onnxruntime session."""

    def __init__(self, name: str, model_file: str, intra_op_threads: int):
        super().__init__(name)
        self.model_file = model_file
        self.intra_op_threads = intra_op_threads
        self.session = None
        self.output_names = []
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.model_file, options, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        results = self.session.run(self.output_names, feeds)
        binary = payload.use_binary_outputs
        outputs = []
        for name, value in zip(self.output_names, results):
            value = np.ascontiguousarray(value)
            output = InferOutput(name=name, shape=list(value.shape), datatype="FP32")
            output.set_data_from_numpy(value, binary_data=binary)
            outputs.append(output)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=binary,
            requested_outputs=payload.request_outputs,
        )


def main():
    parser = argparse.ArgumentParser(parents=[kserve_model_server.parser], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-file", required=True, help="the ONNX file to serve")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true",
                        help="no per-request latency log, access log or gRPC call log")
    args, _ = parser.parse_known_args()

    model = OnnxModel(args.model_name, args.model_file, args.intra_op_threads)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=not args.quiet and args.enable_latency_logging,
    )
    if args.quiet:
        for name in ("uvicorn.access", "kserve.trace", "kserve"):
            logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
