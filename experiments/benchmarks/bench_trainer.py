"""Trainer throughput vs a minimal hand-written PyTorch loop, same model and data, same run.

    python experiments/benchmarks/bench_trainer.py            # ratio = trainer / hand loop

Both sides train the same compiled genotype (same initial weights) on the same in-memory
embedded MNIST tensors with the same SGD settings; the hand loop is the tightest loop one
would write (shuffled index, slice, forward, backward, step: no schedule, no checks). The
runs alternate (trainer, hand, trainer, hand, ...) after a warm-up of each, and the median
images/s of each side is reported, so load from other processes hits both alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def hand_loop(model, x, y, *, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """Images/s of a minimal training loop (the baseline)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(len(y), generator=gen)
    for step in range(steps):
        idx = perm[step * batch_size:(step + 1) * batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def trainer(genotype, data, *, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """Images/s of nas.evaluate.train.train (training time only, validation excluded)."""
    from nas.evaluate.train import train

    r = train(genotype, data, epochs=1, batch_size=batch_size, lr=lr, seed=seed,
              max_train_batches=steps)
    return r.images_per_second


def bench(label, genotype, data, *, steps, batch_size, repeats, lr=0.05, seed=0) -> dict:
    """Alternate trainer and hand loop; return the medians and their ratio."""
    from nas.evaluate.train import build_model

    def hand():
        model = build_model(genotype, data, seed=seed)
        return hand_loop(model, data.train_x, data.train_y, steps=steps, batch_size=batch_size,
                         lr=lr, seed=seed)

    def ours():
        return trainer(genotype, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed)

    hand(), ours()  # warm-up: allocator and oneDNN primitive caches
    t, h = [], []
    for _ in range(repeats):
        t.append(ours())
        h.append(hand())
    row = {"model": label, "batch": batch_size, "steps": steps,
           "trainer": statistics.median(t), "hand": statistics.median(h)}
    row["ratio"] = row["trainer"] / row["hand"]
    return row


def main(argv=None) -> int:
    """Run the benchmark and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    args = p.parse_args(argv)
    import torch

    from nas import zoo
    from nas.evaluate.data import load_dataset
    from nas.zoo.resnet import resnet

    torch.set_num_threads(args.threads)
    cases = [("tiny resnet (8-64 wide) @16px, overhead-bound",
              resnet("basic", (1, 1, 1, 1), widths=(8, 16, 32, 64)), 16, 64, 40),
             ("resnet18 @32px", zoo.build("resnet18"), 32, 64, 12)]
    rows = []
    for label, g, res, bs, steps in cases:
        data = load_dataset(resolution=res)
        if args.quick:
            steps = 2
        rows.append(bench(label, g, data, steps=steps, batch_size=bs,
                          repeats=1 if args.quick else args.repeats))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, embedded MNIST "
          f"(timings on a shared machine: noisy)\n")
    print("| model | batch | steps | trainer img/s | hand loop img/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['steps']} | {r['trainer']:.0f} | "
              f"{r['hand']:.0f} | {r['ratio']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
