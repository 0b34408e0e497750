"""Measurements of the CUDA check (experiments/cuda_check.sh): a short search on the GPU with
its per-trial times, and the trainer's throughput on the GPU at the default protocol.

    python experiments/cuda_check.py search --trials 8 --budget 2GFLOPs
    python experiments/cuda_check.py throughput --nets resnet18 mobilenet_v2
    python experiments/cuda_check.py layout --nets resnet18 mobilenet_v2

``search`` runs ``python -m nas.search --space resnet_like --device cuda`` (the default
protocol, default workers) into a temporary store, then prints each trial's wall time
(started -> finished, from the store), its training+validation seconds (the epochs' own
timing) and accuracy, and the medians. ``throughput`` trains each net for one epoch of the
default protocol on cuda ``--repeats`` times (the first run also pays cuDNN's and the
allocator's warm-up) and prints images/s and model GFLOP/s (images/s x proxy MACs x 6).
``layout`` trains each net once to warm up, then with channels_last on, off, on, off (one
epoch of the default protocol each), then twice under seed 3, and says whether the two
seed-3 histories (train and validation loss) are identical.
Both exit 3 with one line when CUDA is not available.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: net -> (space, seed name)
NETS = {"resnet18": ("resnet_like", "resnet18"), "resnet50": ("resnet_like", "resnet50"),
        "mobilenet_v2": ("mobilenet_like", "mobilenet_v2")}


def search(args) -> int:
    from nas.store import TrialStore

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.db"
        cmd = [sys.executable, "-m", "nas.search", "--space", args.space, "--budget", args.budget,
               "--trials", str(args.trials), "--device", "cuda", "--storage", str(db),
               "--study", "cuda_check", "--dashboard", str(Path(tmp) / "d.html")]
        print("$ " + " ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        wall = time.perf_counter() - t0
        print(f"search exit code {rc}, {wall:.1f} s wall (process start to exit)")
        if not db.exists():
            return rc or 1
        store = TrialStore(db)
        trials = [t for t in store.trials("cuda_check") if t["feasible"]
                  and t.get("duplicate_of") is None]
        store.close()
    print("\n| trial | state | seed | target MMACs | accuracy | wall s | train+val s |")
    print("|---:|---|---|---:|---:|---:|---:|")
    walls, fits = [], []
    for t in trials:
        w = (t["finished_at"] - t["started_at"]).total_seconds() if t["finished_at"] else None
        f = sum(e.get("seconds") or 0 for e in t["epochs"]) if t["epochs"] else None
        if t["state"] == "COMPLETE":
            walls.append(w)
            fits.append(f)
        acc = f"{t['accuracy']:.4f}" if t.get("accuracy") is not None else "-"
        print(f"| {t['number']} | {t['state']} | {t.get('seed_name') or ''} | "
              f"{(t['target_macs'] or 0) / 1e6:.0f} | {acc} | "
              f"{w if w is None else round(w, 2)} | {f if f is None else round(f, 2)} |")
    if walls:
        print(f"\ncomplete trials: {len(walls)}; median wall {statistics.median(walls):.2f} s "
              f"(min {min(walls):.2f}, max {max(walls):.2f}); median train+val "
              f"{statistics.median(fits):.2f} s")
    errors = {t.get("error", "").splitlines()[0] for t in trials if t["state"] == "FAIL"}
    for e in errors:
        print(f"FAIL: {e}")
    return rc


def throughput(args) -> int:
    import torch

    from nas.cost import count
    from nas.evaluate.protocol import DEFAULT
    from nas.evaluate.train import proxy_genotype, train
    from nas.spaces import load_space

    data = DEFAULT.load(seed=0)
    print(f"default protocol: {DEFAULT.to_dict()}")
    print("\n| net | proxy MMACs | run | seconds (train+val) | train img/s | model GFLOP/s | val acc |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.nets:
        space_name, seed = NETS[name]
        space = load_space(space_name)
        g = space.build(next(s.params for s in space.seeds() if s.name == seed))
        macs = count(proxy_genotype(g, data)).macs
        for k in range(1, args.repeats + 1):
            r = train(g, data, device="cuda", **DEFAULT.train_kwargs())
            torch.cuda.synchronize()
            print(f"| {name} | {macs / 1e6:.1f} | {k} | {r.seconds:.2f} | "
                  f"{r.images_per_second:.0f} | {r.images_per_second * macs * 6 / 1e9:.1f} | "
                  f"{r.accuracy:.4f} |", flush=True)
    return 0


def layout(args) -> int:
    from nas.evaluate.protocol import DEFAULT
    from nas.evaluate.train import train
    from nas.spaces import load_space

    data = DEFAULT.load(seed=0)
    kw = DEFAULT.train_kwargs()
    for name in args.nets:
        space_name, seed = NETS[name]
        space = load_space(space_name)
        g = space.build(next(s.params for s in space.seeds() if s.name == seed))
        train(g, data, device="cuda", **kw)  # warm-up
        for cl in (True, False, True, False):
            r = train(g, data, device="cuda", channels_last=cl, **kw)
            print(f"{name} channels_last={cl}: {r.images_per_second:.0f} train img/s, "
                  f"{r.seconds:.2f} s, acc {r.accuracy:.4f}, val_loss {r.val_loss:.6f}", flush=True)
        a, b = (train(g, data, device="cuda", seed=3, **kw) for _ in range(2))
        losses = lambda r: [(h["train_loss"], h["val_loss"]) for h in r.history]  # noqa: E731
        print(f"{name} seed 3 twice: identical history {losses(a) == losses(b)}: train loss "
              f"{a.history[0]['train_loss']:.6f}/{b.history[0]['train_loss']:.6f}, val loss "
              f"{a.val_loss:.6f}/{b.val_loss:.6f}", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("search", help="a short search on cuda, per-trial times")
    s.add_argument("--space", default="resnet_like")
    s.add_argument("--budget", default="2GFLOPs")
    s.add_argument("--trials", type=int, default=8)
    t = sub.add_parser("throughput", help="trainer images/s on cuda at the default protocol")
    t.add_argument("--nets", nargs="+", default=["resnet18", "mobilenet_v2"], choices=sorted(NETS))
    t.add_argument("--repeats", type=int, default=3)
    lay = sub.add_parser("layout", help="channels_last on/off and seed determinism on cuda")
    lay.add_argument("--nets", nargs="+", default=["resnet18", "mobilenet_v2"], choices=sorted(NETS))
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"no CUDA: torch {torch.__version__} sees no CUDA device; nothing measured")
        return 3
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}")
    return {"search": search, "throughput": throughput, "layout": layout}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
