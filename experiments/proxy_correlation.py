"""Do zero-cost proxies rank architectures like short training does?

Samples N architectures from a search space (under a MAC budget), scores each with every
proxy of nas.evaluate.proxies, trains each briefly on the embedded MNIST subset, and reports
the Spearman rank correlation of every proxy with the trained validation accuracy (95%
bootstrap interval), as a markdown table plus a JSON file. A proxy is named the default
screen only where it beats both trivial baselines (params, MACs) on that table.

    python experiments/proxy_correlation.py --n 50            # the committed results
    python experiments/proxy_correlation.py --n 4 --limit 120 --resolution 16 --out /tmp/x

Rows are appended to ``<out>.jsonl`` as they finish; re-running the same command resumes.

With ``--calibration DIR`` (a ``python -m nas.calibrate`` output folder: archs.json +
trials.jsonl) nothing is trained: the proxies are computed on that folder's architectures, on
the data of the search protocol (``nas.evaluate.protocol.DEFAULT``), and correlated with the
scores the calibration already measured, under the default protocol (seed mean) and under its
reference protocol:

    python experiments/proxy_correlation.py \
        --calibration experiments/results/calibration_resnet_like_2GFLOPs \
        --out experiments/results/proxy_correlation_calibration
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.cli import ArgumentParser  # noqa: E402
from nas.cost import human, parse_budget  # noqa: E402
from nas.errors import NasError  # noqa: E402

DEFAULT_OUT = ROOT / "experiments" / "results" / "proxy_correlation"


def parse_args(argv):
    """Command-line options."""
    p = ArgumentParser(description=__doc__.splitlines()[0])
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
    p.add_argument("--calibration", default=None,
                   help="a nas.calibrate output folder: correlate with its measured scores "
                        "instead of training (space, budget, data flags are then ignored)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the experiment; exit code 2 on bad input."""
    args = parse_args(argv)
    try:
        result = run_calibration(args) if args.calibration else run(args)
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
    _save(out, result)
    return result


def _save(out: Path, result: dict) -> None:
    """``<out>.md`` (the report) and ``<out>.json`` (everything else)."""
    out.with_suffix(".md").write_text(result["markdown"])
    out.with_suffix(".json").write_text(json.dumps({k: v for k, v in result.items()
                                                    if k != "markdown"}, indent=1))


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
                      resamples: int = 1000, target: str = "accuracy") -> list[dict]:
    """One row per proxy: Spearman rho vs ``rows[i][target]`` (higher = better; accuracy by
    default), its 95% bootstrap interval, mean cost."""
    ok = [r for r in rows if r.get(target) is not None]
    acc = np.array([r[target] for r in ok])
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


# ----------------------------------------------------------------- calibration mode
#: Targets of the calibration mode: name -> (protocol, signal). Higher is better for every
#: target: val_loss targets are negated.
CAL_TARGETS = {"default_accuracy": ("default", "accuracy"), "default_neg_val_loss": ("default", "val_loss"),
               "reference_accuracy": ("reference", "accuracy"),
               "reference_neg_val_loss": ("reference", "val_loss")}


def trains_as(p: dict) -> str:
    """A stored protocol's identity as a run: all but the ranking signal (a run stores both
    signals), fields a row predates read as their (off) defaults, as nas.calibrate reads them."""
    from nas.calibrate import stored_protocol, training_fields

    return json.dumps(training_fields(stored_protocol(p)), sort_keys=True)


def calibration_targets(archs: list[dict], runs: list[dict], default: dict,
                        reference: dict) -> list[dict]:
    """Per architecture (by its index in ``archs``): the seed-mean score under the ``default``
    protocol and under ``reference`` (protocol dicts as stored in trials.jsonl), val_loss
    negated; None where a protocol has no finished run of that architecture."""
    out, wanted = [], {"default": trains_as(default), "reference": trains_as(reference)}
    kinds = [trains_as(r["protocol"]) for r in runs]
    for i, a in enumerate(archs):
        row = {"index": i, "name": a["name"], "params": a["params"], "target_macs": a["macs"]}
        for key, (which, signal) in CAL_TARGETS.items():
            vals = [r[signal] for r, kind in zip(runs, kinds) if r["arch"] == i
                    and kind == wanted[which] and r.get(signal) is not None]
            sign = -1.0 if signal == "val_loss" else 1.0
            row[key] = sign * float(np.mean(vals)) if vals else None
            row[key + "_runs"] = len(vals)
        out.append(row)
    return out


def run_calibration(args) -> dict:
    """Proxies on a calibration's architectures vs its measured scores; write the results."""
    import torch

    from nas.evaluate.protocol import DEFAULT
    from nas.evaluate.proxies import PROXIES
    from nas.genotype import Genotype

    torch.set_num_threads(args.threads)
    cal = Path(args.calibration)
    try:
        archs = json.loads((cal / "archs.json").read_text())
        runs = [json.loads(line) for line in (cal / "trials.jsonl").read_text().splitlines()]
        config_cal = json.loads((cal / "summary.json").read_text()).get("config", {})
    except (OSError, ValueError) as e:
        raise NasError(f"--calibration {cal}: not a nas.calibrate output folder ({e})") from None
    refs = {trains_as(r["protocol"]): r["protocol"] for r in runs
            if r.get("protocol_name") == "reference"}
    if len(refs) != 1:
        raise NasError(f"--calibration {cal}: expected one reference protocol, found {len(refs)}")
    reference = next(iter(refs.values()))
    default = DEFAULT.to_dict()
    config = {"calibration": str(cal.resolve().relative_to(ROOT)) if cal.resolve().is_relative_to(ROOT)
              else str(cal), "default_protocol": default, "reference_protocol": reference,
              "proxy_batch": args.proxy_batch, "seed": args.seed}
    data = DEFAULT.load(seed=0)   # the data subset the calibration's runs used
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _resume(out.with_suffix(".jsonl"), config)
    done = {r["index"] for r in rows}
    for i, a in enumerate(archs):
        if i in done:
            continue
        g = Genotype.from_json(a["genotype"])
        row = {"index": i, "scores": {}, "proxy_seconds": {}}
        for name in PROXIES.names():
            t0 = time.perf_counter()
            row["scores"][name] = score_one(name, g, data, args)
            row["proxy_seconds"][name] = time.perf_counter() - t0
        rows.append(row)
        _append(out.with_suffix(".jsonl"), config, row)
        print(f"[{len(rows)}/{len(archs)}] {a['name']} " + " ".join(
            f"{k}={v:.3g}" for k, v in row["scores"].items()), flush=True)
    targets = {t["index"]: t for t in calibration_targets(archs, runs, default, reference)}
    rows = [{**targets[r["index"]], **r} for r in sorted(rows, key=lambda r: r["index"])]
    tables = {t: correlation_table(rows, PROXIES.names(), seed=args.seed, target=t)
              for t in CAL_TARGETS}
    # the default protocol itself as a "proxy" of the reference: the yardstick
    yard = {t: correlation_table([{**r, "scores": {"default_protocol": r[src]},
                                   "proxy_seconds": {"default_protocol": 0.0}} for r in rows
                                  if r[src] is not None], ["default_protocol"],
                                 seed=args.seed, target=t)[0]
            for t, src in (("reference_accuracy", "default_accuracy"),
                           ("reference_neg_val_loss", "default_accuracy"))}
    md = render_calibration(tables, yard, rows, config, data.summary(), config_cal, args)
    result = {"config": config, "dataset": data.summary(), "tables": tables,
              "default_protocol_vs_reference": yard, "rows": rows, "markdown": md}
    _save(out, result)
    return result


def score_one(name, g, data, args) -> float:
    from nas.evaluate.proxies import score

    return score(name, g, data, batch_size=args.proxy_batch, seed=args.seed)


def _sign(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return "positive" if x > 0 else "negative" if x < 0 else "zero"


def render_calibration(tables, yard, rows, config, dataset, config_cal, args) -> str:
    """The markdown report of the calibration mode."""
    n = len(rows)
    labels = {"default_accuracy": "default accuracy", "default_neg_val_loss": "default -val_loss",
              "reference_accuracy": "reference accuracy", "reference_neg_val_loss": "reference -val_loss"}
    lines = [
        "# Zero-cost proxies vs the calibrated protocols (resnet_like, 2 GFLOPs)", "",
        f"The {n} architectures of `{config['calibration']}` (sampled from the space under the "
        f"budget, plus the seed nets within it), scored by every zero-cost proxy at "
        f"initialisation (the op registry's init policy: He fan-out convs, zero-init last BN of "
        f"each residual branch) on one batch of {config['proxy_batch']} images of the search "
        f"protocol's data ({dataset['name']} at {dataset['input_shape']}, "
        f"{dataset['train']} train / {dataset['val']} val images, data seed 0), proxy seed "
        f"{config['seed']}. Nothing is trained here: the targets are the calibration's measured "
        f"scores, ranked so that higher is better (val_loss negated):", "",
        f"- default: the search protocol `{json.dumps(config['default_protocol'])}`, mean of "
        f"the calibration's 2 training seeds;",
        f"- reference: `{json.dumps(config['reference_protocol'])}` (10x the training image "
        f"passes), 1 seed; the calibration ranks by its val_loss because its accuracy "
        f"saturates.", "",
        "Spearman rho (95% bootstrap interval over architectures, 1000 resamples). Sign: "
        "positive = the proxy ranks like the training score. The params and MACs rows are the "
        "trivial baselines.", "",
        "| proxy | " + " | ".join(f"rho vs {labels[t]} [95% CI]" for t in tables)
        + " | sign vs reference -val_loss | s / arch |",
        "|---|" + "---|" * len(tables) + "---|---:|"]
    names = [r["proxy"] for r in next(iter(tables.values()))]
    for i, p in enumerate(names):
        cells = []
        for t in tables:
            r = tables[t][i]
            cells.append(f"{r['spearman']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
        ref_rho = tables["reference_neg_val_loss"][i]["spearman"]
        lines.append(f"| {p} | " + " | ".join(cells) + f" | {_sign(ref_rho)} | "
                     f"{next(iter(tables.values()))[i]['seconds']:.2f} |")
    lines += ["", "Yardstick, the default protocol's own seed-mean accuracy as a predictor of the "
              "reference: " + "; ".join(
                  f"rho vs {labels[t]} {r['spearman']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                  for t, r in yard.items()) + ".", ""]
    beats = {}
    for t, tab in tables.items():
        bar = max(_num(r["spearman"]) for r in tab if r["proxy"] in ("params", "macs"))
        beats[t] = [r["proxy"] for r in tab if r["proxy"] not in ("params", "macs")
                    and _num(r["spearman"]) > bar]
    lines += ["Proxies whose rho beats both baselines' (point estimates): " + "; ".join(
        f"vs {labels[t]}: {', '.join(b) or 'none'}" for t, b in beats.items()) + ".", "",
        f"s / arch: wall-clock seconds of one proxy on one architecture, measured under "
        f"`nice -n 19` on a shared 2-core machine (load average at report time "
        f"{', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}), so they show "
        f"relative, not absolute, cost.", "",
        "Command: `python experiments/proxy_correlation.py --calibration "
        f"{config['calibration']} --proxy-batch {config['proxy_batch']} --seed {config['seed']} "
        f"--out {Path(args.out).resolve().relative_to(ROOT) if Path(args.out).resolve().is_relative_to(ROOT) else args.out}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
