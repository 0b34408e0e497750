"""Does ``torch.compile`` pay back within one default proxy trial on the CPU?

    python experiments/benchmarks/bench_torch_compile.py                  # resnet18, mobilenet_v2
    python experiments/benchmarks/bench_torch_compile.py --nets resnet18 --steps 20

For each net, at the search's default protocol (embedded MNIST, 28 px, batch 32, one
torch thread, SGD as the trainer sets it up), it times

  * ``eager``: the trainer's own CPU model (:func:`nas.evaluate.train.to_layout`: channels_last
    activations, GEMM paths for tiny maps, the depthwise weight-gradient kernel);
  * ``compiled``: ``torch.compile`` (inductor, default mode) of the compiled genotype in
    channels_last with plain convs (what a user would compile): the first step (tracing,
    code generation, C++ compilation, then the step itself) and the steady-state step.

A default trial is ``steps_per_trial = train_images // batch_size`` steps (one epoch) plus
one evaluation pass; the compiled model pays back within the trial when
``first + (steps - 1) * compiled_step < steps * eager_step``. Training forward and backward
are compiled; evaluation (eval mode, a different graph) would compile a second time and is
left out, which favours compile. Times: the process's CPU time including the compiler
subprocesses (``resource.getrusage``), and wall time. Inductor's on-disk cache is pointed at
a fresh temporary folder, so the first step is a cold compile, as in a new search on a new
machine (a warm cache makes later compiles of the *same* shapes cheaper, but a search's
trials are different architectures).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NETS = {"resnet18": ("resnet_like", "resnet18"), "resnet50": ("resnet_like", "resnet50"),
        "mobilenet_v2": ("mobilenet_like", "mobilenet_v2")}


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def step_fn(model, data, batch):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          nesterov=True, fused=True)
    x = data.train_x[:batch].contiguous(memory_format=torch.channels_last)
    y = data.train_y[:batch]

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def timed(fn, n: int) -> tuple[float, float]:
    c, w = cpu_seconds(), time.perf_counter()
    for _ in range(n):
        fn()
    return (cpu_seconds() - c) / n, (time.perf_counter() - w) / n


def main(argv=None) -> int:
    """Run and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=["resnet18", "mobilenet_v2"], choices=sorted(NETS))
    p.add_argument("--steps", type=int, default=10, help="timed steady-state steps")
    args = p.parse_args(argv)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="nas-inductor-"))
    import torch

    from nas.evaluate.protocol import DEFAULT
    from nas.evaluate.train import build_model, to_layout
    from nas.spaces import load_space

    torch.set_num_threads(1)
    data = DEFAULT.load()
    per_trial = DEFAULT.train_images // DEFAULT.batch_size
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, 1 thread, default protocol ({DEFAULT.train_images} "
          f"images, {DEFAULT.resolution} px, batch {DEFAULT.batch_size}: {per_trial} steps a "
          f"trial); load average at start {os.getloadavg()[0]:.1f}\n")
    print("| net | eager s/step | compiled s/step | first compiled step (CPU s / wall s) "
          "| trial eager s | trial compiled s | pays back |")
    print("|---|---:|---:|---:|---:|---:|---|", flush=True)
    for name in args.nets:
        space_name, seed = NETS[name]
        space = load_space(space_name)
        g = space.build(next(s.params for s in space.seeds() if s.name == seed))
        eager = step_fn(to_layout(build_model(g, data), torch.channels_last), data,
                        DEFAULT.batch_size)
        eager()
        e_cpu, _ = timed(eager, args.steps)
        model = build_model(g, data).to(memory_format=torch.channels_last)
        compiled = step_fn(torch.compile(model), data, DEFAULT.batch_size)
        first_cpu, first_wall = timed(compiled, 1)
        c_cpu, _ = timed(compiled, args.steps)
        trial_eager = per_trial * e_cpu
        trial_compiled = first_cpu + (per_trial - 1) * c_cpu
        print(f"| {name} | {e_cpu:.3f} | {c_cpu:.3f} | {first_cpu:.1f} / {first_wall:.1f} | "
              f"{trial_eager:.1f} | {trial_compiled:.1f} | "
              f"{'yes' if trial_compiled < trial_eager else 'no'} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
