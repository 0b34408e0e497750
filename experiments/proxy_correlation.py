"""Do zero-cost proxies rank architectures like short training does?

Samples N architectures from a search space (under a MAC budget), scores each with every
proxy of nas.evaluate.proxies, trains each briefly on the embedded MNIST subset, and reports
the Spearman rank correlation of every proxy with the trained validation accuracy (95%
bootstrap interval), as a markdown table plus a JSON file. A proxy is named the default
screen only where it beats both trivial baselines (params, MACs) on that table.

    python experiments/proxy_correlation.py --n 50            # the committed results
    python experiments/proxy_correlation.py --n 4 --limit 120 --resolution 16 --out /tmp/x

Rows are appended to ``<out>.jsonl`` as they finish; re-running the same command resumes.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.cost import human, parse_budget  # noqa: E402
from nas.errors import NasError  # noqa: E402

DEFAULT_OUT = ROOT / "experiments" / "results" / "proxy_correlation"


def parse_args(argv):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="resnet_like")
    p.add_argument("--n", type=int, default=50, help="architectures to sample")
    p.add_argument("--budget", default="1GFLOPs", help="target-spec MAC budget (FLOPs = MACs)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--limit", type=int, default=2000, help="images used (train + val)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--proxy-batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--workers", type=int, default=2, help="architectures evaluated in parallel")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output stem: writes .md, .json, .jsonl")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the experiment; exit code 2 on bad input."""
    args = parse_args(argv)
    try:
        result = run(args)
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["markdown"])
    return 0


def run(args) -> dict:
    """Sample, score, train, correlate; write the result files and return them."""
    import torch

    from nas.evaluate.data import load_dataset
    from nas.evaluate.proxies import PROXIES, default_screen
    from nas.spaces import load_space

    torch.set_num_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k not in ("out", "threads", "workers")}
    space = load_space(args.space)
    budget = parse_budget(args.budget)
    data = load_dataset(args.dataset, resolution=args.resolution, seed=args.seed, limit=args.limit)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _resume(out.with_suffix(".jsonl"), config)
    rng = random.Random(args.seed)
    points = [space.sample(rng, budget_macs=budget) for _ in range(args.n)]
    done = {r["index"] for r in rows}
    todo = [(i, p) for i, p in enumerate(points) if i not in done]
    for row in _evaluate_all(todo, args):
        rows.append(row)
        _append(out.with_suffix(".jsonl"), config, row)
        secs = row["train_seconds"] and round(row["train_seconds"], 1)
        print(f"[{len(rows)}/{args.n}] #{row['index']} acc={row['accuracy']} "
              f"macs={human(row['target_macs'])} train={secs}s", flush=True)
    rows.sort(key=lambda r: r["index"])
    table = correlation_table(rows, PROXIES.names(), seed=args.seed)
    screen = default_screen(table)
    md = render(table, rows, config, data.summary(), screen)
    result = {"config": config, "dataset": data.summary(), "table": table,
              "default_screen": screen, "rows": rows, "markdown": md}
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps({k: v for k, v in result.items()
                                                    if k != "markdown"}, indent=1))
    return result


def _evaluate_all(todo, args):
    """Yield the row of every (index, params) in ``todo``, in order of completion."""
    opts = vars(args)
    if args.workers <= 1:
        for i, params in todo:
            yield evaluate_point(opts, i, params)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no fork after OpenMP threads exist
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        futures = [pool.submit(evaluate_point, opts, i, params) for i, params in todo]
        for f in as_completed(futures):
            yield f.result()


_DATA: dict = {}


def evaluate_point(opts: dict, index: int, params: dict) -> dict:
    """Score one architecture with every proxy, then train it: one result row."""
    import torch

    from nas.evaluate.data import load_dataset
    from nas.evaluate.proxies import PROXIES, score
    from nas.evaluate.train import TrialFailure, train
    from nas.spaces import load_space

    torch.set_num_threads(opts["threads"])
    key = (opts["dataset"], opts["resolution"], opts["seed"], opts["limit"])
    if key not in _DATA:
        _DATA[key] = load_dataset(opts["dataset"], resolution=opts["resolution"],
                                  seed=opts["seed"], limit=opts["limit"])
    data = _DATA[key]
    space = load_space(opts["space"])
    g, cost = space.build(params), space.cost(params)
    row = {"index": index, "params": params, "target_params": cost.params,
           "target_macs": cost.macs, "scores": {}, "proxy_seconds": {}}
    for name in PROXIES.names():
        t0 = time.perf_counter()
        row["scores"][name] = score(name, g, data, batch_size=opts["proxy_batch"], seed=opts["seed"])
        row["proxy_seconds"][name] = time.perf_counter() - t0
    try:
        res = train(g, data, epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"],
                    seed=opts["seed"])
        row.update(accuracy=res.accuracy, train_seconds=res.seconds, error=None)
    except TrialFailure as e:
        row.update(accuracy=None, train_seconds=None, error=e.reason)
    return row


def _resume(path: Path, config: dict) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["config"] != config:  # a different experiment: start over
            path.unlink()
            return []
        rows.append(rec["row"])
    return rows


def _append(path: Path, config: dict, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps({"config": config, "row": row}) + "\n")


# ----------------------------------------------------------------- statistics
def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation (nan when either side is constant)."""
    rx, ry = rankdata(np.asarray(x, float)), rankdata(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def correlation_table(rows: list[dict], proxies: list[str], *, seed: int = 0,
                      resamples: int = 1000) -> list[dict]:
    """One row per proxy: Spearman rho vs accuracy, its 95% bootstrap interval, mean cost."""
    ok = [r for r in rows if r["accuracy"] is not None]
    acc = np.array([r["accuracy"] for r in ok])
    rng = np.random.default_rng(seed)
    boots = rng.integers(0, len(ok), size=(resamples, len(ok))) if ok else None
    table = []
    for p in proxies:
        s = np.array([r["scores"][p] for r in ok], dtype=float)
        s = np.where(np.isfinite(s), s, -np.inf)  # a -inf score ranks last
        rho = spearman(s, acc) if len(ok) >= 3 else float("nan")
        lo = hi = float("nan")
        if len(ok) >= 3:
            samples = np.array([spearman(s[b], acc[b]) for b in boots])
            samples = samples[np.isfinite(samples)]
            if len(samples):
                lo, hi = (float(v) for v in np.percentile(samples, [2.5, 97.5]))
        secs = [r["proxy_seconds"][p] for r in ok]
        table.append({"proxy": p, "spearman": rho, "ci_low": lo, "ci_high": hi,
                      "seconds": float(np.mean(secs)) if secs else float("nan")})
    return table


def _num(x) -> float:
    return x if np.isfinite(x) else -np.inf


def render(table, rows, config, dataset, screen) -> str:
    """The markdown report."""
    ok = [r for r in rows if r["accuracy"] is not None]
    acc = [r["accuracy"] for r in ok]
    train_s = [r["train_seconds"] for r in ok]
    lines = [
        "# Zero-cost proxies vs short training",
        "",
        f"Space `{config['space']}` under {config['budget']} (MACs, target spec), "
        f"{len(rows)} sampled architectures ({len(rows) - len(ok)} failed to train), "
        f"seed {config['seed']}. Proxy task: {dataset['name']} at "
        f"{dataset['input_shape']}, {dataset['train']} train / {dataset['val']} val images; "
        f"{config['epochs']} epoch(s), batch {config['batch_size']}, lr {config['lr']} "
        f"(SGD + cosine). Proxies on one batch of {config['proxy_batch']}.",
        "",
        f"Validation accuracy: min {min(acc, default=float('nan')):.3f}, "
        f"median {float(np.median(acc)) if acc else float('nan'):.3f}, "
        f"max {max(acc, default=float('nan')):.3f}; training took "
        f"{float(np.mean(train_s)) if train_s else float('nan'):.1f} s per architecture on average.",
        "",
        "| proxy | Spearman rho vs accuracy | 95% bootstrap CI | s / arch | beats params and MACs |",
        "|---|---:|---:|---:|:---:|",
    ]
    bar = max(_num(r["spearman"]) for r in table if r["proxy"] in ("params", "macs"))
    for r in table:
        base = r["proxy"] in ("params", "macs")
        beats = "baseline" if base else ("yes" if _num(r["spearman"]) > bar else "no")
        lines.append(f"| {r['proxy']} | {r['spearman']:+.3f} | [{r['ci_low']:+.3f}, "
                     f"{r['ci_high']:+.3f}] | {r['seconds']:.2f} | {beats} |")
    lines += ["", f"Default screen (`nas.evaluate.proxies.default_screen`): "
              f"**{screen or 'none'}**" + ("" if screen else
                                           " - no proxy beat both baselines, so none is offered."),
              "", "Command: `python experiments/proxy_correlation.py "
              + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in config.items()) + "`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
