"""Trainer throughput vs a minimal hand-written PyTorch loop, same model and data, same run.

    python experiments/benchmarks/bench_trainer.py            # ratio = trainer / hand loop

Both sides train the same compiled genotype (same initial weights) on the same in-memory
embedded MNIST tensors with the same SGD settings; the hand loop is the tightest loop one
would write (shuffled index, slice, forward, backward, step: no schedule, no checks). The
runs alternate in pairs (trainer then hand, hand then trainer, ...) after a warm-up of each;
the median ratio over the pairs and the ratio of each side's best run are reported, so load
from other processes hits both alike.
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


def hand_loop(model, x, y, *, steps: int, batch_size: int, lr: float, seed: int,
              clock=time.perf_counter) -> float:
    """Images/s of a minimal training loop (the baseline)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = clock()
    perm = torch.randperm(len(y), generator=gen)
    for step in range(steps):
        idx = perm[step * batch_size:(step + 1) * batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch_size / (clock() - t0)


def trainer(genotype, data, *, steps: int, batch_size: int, lr: float, seed: int,
            clock=time.perf_counter) -> float:
    """Images/s of nas.evaluate.train.train (training time only, validation excluded)."""
    from nas.evaluate.train import train

    r = train(genotype, data, epochs=1, batch_size=batch_size, lr=lr, seed=seed,
              max_train_batches=steps, clock=clock)
    return r.images_per_second


def bench(label, genotype, data, *, steps, batch_size, repeats, lr=0.05, seed=0,
          clock=time.perf_counter) -> dict:
    """Alternate trainer and hand loop; return the medians and their ratio."""
    from nas.evaluate.train import build_model

    def hand():
        model = build_model(genotype, data, seed=seed)
        return hand_loop(model, data.train_x, data.train_y, steps=steps, batch_size=batch_size,
                         lr=lr, seed=seed, clock=clock)

    def ours():
        return trainer(genotype, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                       clock=clock)

    hand(), ours()  # warm-up: allocator and oneDNN primitive caches
    t, h = [], []
    for k in range(repeats):  # alternate the order too, so drifting load hits both alike
        if k % 2:
            h.append(hand())
            t.append(ours())
        else:
            t.append(ours())
            h.append(hand())
    ratios = [a / b for a, b in zip(t, h)]
    return {"model": label, "batch": batch_size, "steps": steps, "repeats": repeats,
            "trainer": statistics.median(t), "hand": statistics.median(h),
            "ratio": statistics.median(ratios), "best_ratio": max(t) / max(h)}


def main(argv=None) -> int:
    """Run the benchmark and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: time the training thread's CPU time with 1 torch thread, which "
                        "load from other processes does not inflate")
    args = p.parse_args(argv)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu":
        args.threads = 1
    import torch

    from nas import zoo
    from nas.evaluate.data import load_dataset
    from nas.zoo.resnet import resnet

    torch.set_num_threads(args.threads)
    cases = [("tiny resnet (8-64 wide) @16px, overhead-bound",
              resnet("basic", (1, 1, 1, 1), widths=(8, 16, 32, 64)), 16, 64, 20),
             ("resnet18 @32px", zoo.build("resnet18"), 32, 64, 4)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, embedded MNIST, "
          f"{args.clock} clock (timings on a shared machine: noisy)\n")
    print("| model | batch | steps x repeats | trainer img/s (median) | hand loop img/s (median) "
          "| ratio (median of pairs) | ratio (best of each) |")
    print("|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for label, g, res, bs, steps in cases:
        data = load_dataset(resolution=res)
        r = bench(label, g, data, steps=2 if args.quick else steps, batch_size=bs,
                  repeats=1 if args.quick else args.repeats, clock=clock)
        print(f"| {r['model']} | {r['batch']} | {r['steps']} x {r['repeats']} | {r['trainer']:.0f} | "
              f"{r['hand']:.0f} | {r['ratio']:.3f} | {r['best_ratio']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
