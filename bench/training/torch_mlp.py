"""PyTorch CPU baseline for the training benchmark: the same MLP, data, optimizer and batch size as
`cargo run --release -p cerulean-trainer --example mlp_epoch`, on the same number of threads.

Prints one JSON object: epoch times (ms), training samples per second, held-out accuracy.

    python bench/training/torch_mlp.py --parquet digits.parquet --threads 1
"""

import argparse
import json
import statistics
import time

import numpy as np
import pyarrow.parquet as pq
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parquet", required=True)
    parser.add_argument("--label", default="target")
    parser.add_argument("--hidden", default="64,32")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    table = pq.read_table(args.parquet)
    columns = [c for c in table.column_names if c != args.label]
    x = np.stack([table.column(c).to_numpy().astype(np.float32) for c in columns], axis=1)
    labels = table.column(args.label).to_numpy()
    classes, y = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x))
    n_val = int(round(len(x) * args.validation_split))
    val, train = order[:n_val], order[n_val:]
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0
    x = (x - mean) / std
    x_train = torch.from_numpy(x[train])
    y_train = torch.from_numpy(y[train].astype(np.int64))
    x_val = torch.from_numpy(x[val])
    y_val = torch.from_numpy(y[val].astype(np.int64))

    widths = [x.shape[1]] + [int(h) for h in args.hidden.split(",") if h] + [len(classes)]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()

    epoch_ms = []
    n = len(x_train)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, args.batch_size):
            idx = perm[i : i + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        # The epoch ends with a validation pass, as the Rust trainer's does.
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
        epoch_ms.append((time.perf_counter() - start) * 1000.0)

    steady = epoch_ms[1:] if len(epoch_ms) > 1 else epoch_ms
    median = statistics.median(steady)
    print(
        json.dumps(
            {
                "framework": f"pytorch {torch.__version__}",
                "threads": args.threads,
                "epochs": args.epochs,
                "train_rows": n,
                "epoch_ms_median": round(median, 3),
                "samples_per_second": round(n / (median / 1000.0), 1),
                "val_accuracy": round(accuracy, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
