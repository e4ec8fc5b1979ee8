"""PyTorch's epoch on the benchmark's job, in a process of its own: PyTorch's OpenMP threads
keep spinning after it returns, which would slow whatever runs next in the same process.

    python -m benchmarks.peer_torch ROWS   ->  prints the epoch's seconds
"""

from __future__ import annotations

import os
import sys
import time

import torch

from benchmarks.workloads import synthetic


def main() -> None:
    rows = int(sys.argv[1])
    sizes, batch, lr = [784, 256, 128, 10], 128, 0.01
    X, Y = synthetic(rows, 784)
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(Y.argmax(axis=1))
    started = time.perf_counter()
    order = torch.randperm(len(Xt))
    for start in range(0, len(Xt), batch):
        rows_ = order[start : start + batch]
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(Xt[rows_]), yt[rows_]).backward()
        optimizer.step()
    print(time.perf_counter() - started)


if __name__ == "__main__":
    main()
