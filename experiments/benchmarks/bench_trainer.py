"""Proxy-training throughput per net: model GFLOP/s as a fraction of sgemm, new vs old trainer.

    python experiments/benchmarks/bench_trainer.py                 # default protocol nets
    python experiments/benchmarks/bench_trainer.py --nets resnet18 mobilenet_v2 --steps 6

For each net, at the search's default protocol (embedded MNIST, 28 px, batch 32, 1 torch
thread; densenet_like needs 32 px, since 28 px leaves its last transition no pixels), it
times training steps of

  * ``new``: :func:`nas.evaluate.train.train` of this checkout;
  * ``old``: ``nas/evaluate/train.py`` as of ``--baseline`` (a git revision; by default the
    trainer before the second round of throughput work), loaded from git into a private
    module (it runs with this checkout's compiler and op registry);

in alternation (old/new, then new/old, ...), each pair between two measurements of the
single-thread sgemm rate (1024^3 matmul). Model GFLOP/s = images/s x proxy MACs x 2 FLOPs x
3 (forward + backward). Printed per net: both trainers' images/s, the median of the pairwise
speedups, and the new trainer's GFLOP/s as a fraction of the sgemm rate of the same rounds.
The default clock is the training thread's CPU time (``time.thread_time``), which load
from other processes does not inflate (it still slows caches: run it on a quiet machine for
absolute figures); ``--clock wall`` times the wall clock instead.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The trainer before the second round of throughput work (channels_last, fused SGD and
#: kernel cropping, but oneDNN for every conv). "6fca3c2" is the trainer before any of it
#: (NCHW activations on CPU, unfused SGD).
BASELINE = "d2a1ecd"

#: name -> (space, seed name or sampled point "sample:SEED", resolution)
NETS = {
    "resnet18": ("resnet_like", "resnet18", 28),
    "resnet50": ("resnet_like", "resnet50", 28),
    "resnext50_32x4d": ("resnet_like", "resnext50_32x4d", 28),
    "resnet_like@2G#1": ("resnet_like", "sample:1", 28),
    "resnet_like@2G#2": ("resnet_like", "sample:2", 28),
    "mobilenet_v2": ("mobilenet_like", "mobilenet_v2", 28),
    "mobilenet_like@2G#1": ("mobilenet_like", "sample:1", 28),
    "mobilenet_like@2G#2": ("mobilenet_like", "sample:2", 28),
    "densenet121@32px": ("densenet_like", "densenet121", 32),
    "densenet_like@2G#1@32px": ("densenet_like", "sample:1", 32),
}
DEFAULT_NETS = ["resnet18", "resnet_like@2G#1", "resnet_like@2G#2", "resnet50", "resnext50_32x4d",
                "mobilenet_v2", "mobilenet_like@2G#1", "densenet121@32px",
                "densenet_like@2G#1@32px"]


def old_trainer(rev: str):
    """The module ``nas/evaluate/train.py`` as of git revision ``rev``."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:nas/evaluate/train.py"],
                          check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("_old_train", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_old_train"] = module  # dataclasses look their module up
    exec(compile(text, f"{rev}:nas/evaluate/train.py", "exec"), module.__dict__)
    return module


def sgemm_flops(clock, n: int = 1024, reps: int = 8) -> float:
    """FLOP/s of an n^3 float32 matmul on the current torch threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = clock()
    for _ in range(reps):
        torch.mm(a, b)
    return reps * 2 * n ** 3 / (clock() - t)


def genotype(space_name: str, which: str):
    """A seed of the space, or a budget-aware sample ("sample:SEED") at 2 GFLOPs."""
    from nas.cost import parse_budget
    from nas.spaces import load_space

    space = load_space(space_name)
    if which.startswith("sample:"):
        return space.build(space.sample(random.Random(int(which[7:])), parse_budget("2GFLOPs")))
    return space.build(next(s.params for s in space.seeds() if s.name == which))


def bench(label: str, g, data, *, old, steps: int, repeats: int, clock) -> dict:
    """Alternate old and new trainer with sgemm around each pair."""
    from nas.cost import count
    from nas.evaluate import train as new
    from nas.evaluate.train import proxy_genotype

    macs = count(proxy_genotype(g, data)).macs

    def run(module):
        return module.train(g, data, epochs=1, batch_size=32, seed=0, max_train_batches=steps,
                            clock=clock).images_per_second

    run(old), run(new)  # warm-up: allocator and oneDNN primitive caches
    o, n, peak = [], [], [sgemm_flops(clock)]
    for k in range(repeats):
        if k % 2:
            n.append(run(new))
            o.append(run(old))
        else:
            o.append(run(old))
            n.append(run(new))
        peak.append(sgemm_flops(clock))
    sgemm = statistics.median(peak)
    gflops = statistics.median(n) * macs * 6
    return {"net": label, "proxy_mmacs": macs / 1e6, "old": statistics.median(o),
            "new": statistics.median(n), "speedup": statistics.median(a / b for a, b in zip(n, o)),
            "min_speedup": min(a / b for a, b in zip(n, o)), "gflops": gflops / 1e9,
            "sgemm": sgemm / 1e9, "fraction": gflops / sgemm,
            "old_fraction": statistics.median(o) * macs * 6 / sgemm}


def main(argv=None) -> int:
    """Run the benchmark and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=DEFAULT_NETS, choices=sorted(NETS))
    p.add_argument("--steps", type=int, default=8, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="old/new pairs per net")
    p.add_argument("--baseline", default=BASELINE, help="git revision of the old trainer")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = p.parse_args(argv)
    import torch

    from nas.evaluate.data import load_dataset

    torch.set_num_threads(1)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    old = old_trainer(args.baseline)
    load = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, 1 thread, CPU, embedded MNIST (2,000 images), batch 32, "
          f"{args.clock} clock, {args.steps} steps x {args.repeats} pairs; old = trainer at "
          f"{args.baseline}; load average at start {load[0]:.1f}\n")
    print("| net | px | proxy MMACs | old img/s | new img/s | new/old (median, min) "
          "| new GFLOP/s | sgemm GFLOP/s | new / sgemm | old / sgemm |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    datasets: dict = {}
    for name in args.nets:
        space, which, res = NETS[name]
        data = datasets.setdefault(res, load_dataset("mnist", resolution=res, limit=2000))
        r = bench(name, genotype(space, which), data, old=old, steps=args.steps,
                  repeats=args.repeats, clock=clock)
        print(f"| {name} | {res} | {r['proxy_mmacs']:.1f} | {r['old']:.0f} | {r['new']:.0f} | "
              f"{r['speedup']:.2f}x ({r['min_speedup']:.2f}x) | {r['gflops']:.1f} | "
              f"{r['sgemm']:.1f} | {100 * r['fraction']:.0f}% | {100 * r['old_fraction']:.0f}% |",
              flush=True)
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
