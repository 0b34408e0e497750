"""``python -m nas.calibrate``: measure which proxy protocol ranks architectures like a long run.

    python -m nas.calibrate --space resnet_like --budget 2GFLOPs --archs 24 \\
        --candidate base: --candidate b64:batch_size=64,lr=0.1 \\
        --reference epochs=4,train_images=4000,val_images=1000 --out calib/

Samples ``--archs`` architectures of a space under a budget (plus the space's seed nets that
fit), trains each under every candidate protocol with ``--seeds`` training seeds and once
(``--reference-seeds``) under a reference protocol, and reports per candidate and ranking
signal (validation accuracy, validation cross-entropy): Kendall tau and Spearman rho of the
seed-averaged score against the reference, with bootstrap 95% intervals over architectures;
the one-seed tau (each seed alone against the reference: what a search that trains each
architecture once gets); the seed-to-seed tau (the noise floor, with its interval); the share
of runs at chance (accuracy <= 2/classes); and wall and CPU seconds per trial (CPU seconds do
not grow with the machine's load). It judges each candidate and signal by the smaller of its
one-seed tau and its seed tau, and recommends the cheapest whose judgement is within
``--tolerance`` of the best, and writes ``report.md``, ``chart.png`` (matplotlib, when
installed) and ``summary.json`` beside ``trials.jsonl``, which holds every run and makes the
command resumable: re-running it trains only what is missing. Protocols are ``key=value`` lists over
:class:`nas.evaluate.protocol.Protocol` fields, starting from ``DEFAULT``.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from nas.errors import NasError
from nas.evaluate.protocol import DEFAULT, SIGNALS, Protocol, parse_protocol

#: Built-in candidates (name -> changes to DEFAULT) used when no --candidate is given.
DEFAULT_CANDIDATES = {"default": ""}
#: Built-in reference: 10x DEFAULT's training image passes, more validation images.
DEFAULT_REFERENCE = "epochs=4,train_images=4000,val_images=1000,batch_size=64,lr=0.1,warmup=0.1"


# ---------------------------------------------------------------- rank statistics
def rankdata(x) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho (Pearson correlation of the ranks); NaN when a side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x, y) -> float:
    """Kendall's tau-b (ties in either variable handled); NaN when a side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    denom = math.sqrt(float(np.sum(dx != 0)) * float(np.sum(dy != 0)))
    return float(np.sum(dx * dy) / denom) if denom else float("nan")


def bootstrap(fn, x, y, *, reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of ``fn`` over architectures resampled with replacement."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    vals = [fn(x[b], y[b]) for b in rng.integers(0, len(x), size=(reps, len(x)))]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


# ---------------------------------------------------------------- running
def score(run: dict, signal: str) -> float:
    """A run's score under ``signal``, higher is better (a failed or diverged run scores
    worst; NaN when the run did not record what the signal needs, e.g. its training loss)."""
    from nas import quality

    if run.get("error"):
        return -math.inf
    m = quality.metric(signal)
    if signal != "accuracy" and not quality.is_number(run.get("val_loss")):
        return -math.inf
    v = m.value({**run, "epochs": run.get("history") or []})
    if v is None:
        return math.nan
    return v if m.sense == quality.MAX else -v


def training_fields(protocol: Protocol) -> dict:
    """The fields that make a run: all but the ranking ``signal`` (it changes how a run is
    scored, not the run itself)."""
    return {k: v for k, v in protocol.to_dict().items() if k != "signal"}


def stored_protocol(fields: dict) -> Protocol:
    """The protocol a stored run (its ``protocol`` dict) trained with. A field the row
    predates takes the class default: new recipe options are off by default, so such a row
    trained with the option off."""
    return Protocol(**{**Protocol().to_dict(), **fields})


def _key(arch: str, protocol: Protocol, seed: int) -> str:
    """A run's identity: architecture hash, the protocol's training fields and the seed."""
    return json.dumps([arch, training_fields(protocol), seed], sort_keys=True)


_DATA: dict = {}


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_one(genotype_json: str, protocol: dict, seed: int, device: str = "cpu") -> dict:
    """Train one architecture under one protocol and seed; the run as plain data."""
    from nas.evaluate.train import TrialFailure, train
    from nas.genotype import Genotype

    p = Protocol(**protocol)
    data_key = (p.dataset, p.resolution, p.images, p.val_fraction)
    if data_key not in _DATA:
        _DATA.clear()
        _DATA[data_key] = p.load(seed=0)
    g = Genotype.from_json(genotype_json)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        r = train(g, _DATA[data_key], seed=seed, device=device, **p.train_kwargs())
    except TrialFailure as e:
        return {"error": e.reason, "seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0}
    return {"accuracy": r.accuracy, "val_loss": r.val_loss, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "proxy_macs": r.proxy_macs,
            "history": r.history}


def sample_archs(space, n: int, budget_macs: int | None, *, seed: int = 0,
                 include_seeds: bool = True) -> list[dict]:
    """``n`` distinct sampled points (by canonical hash) plus the space's seeds within budget."""
    archs, seen = [], set()
    if include_seeds:
        for s in space.seeds(budget_macs):
            if not s.fits:
                continue
            g = space.build(s.params)
            h = g.canonical_hash()
            if h not in seen:
                seen.add(h)
                archs.append({"name": s.name, "params": dict(s.params), "hash": h,
                              "macs": space.cost(s.params).macs, "genotype": g.to_json()})
    rng = random.Random(seed)
    tries, wanted = 0, len(archs) + n
    while len(archs) < wanted and tries < 50 * n:
        tries += 1
        params = space.sample(rng, budget_macs)
        g = space.build(params)
        h = g.canonical_hash()
        if h in seen:
            continue
        seen.add(h)
        archs.append({"name": f"sample{len(archs)}", "params": params, "hash": h,
                      "macs": space.cost(params).macs, "genotype": g.to_json()})
    return archs


def plan(archs: list[dict], candidates: dict[str, Protocol], reference: Protocol, seeds: int,
         reference_seeds: int) -> list[tuple]:
    """Every (arch index, protocol name, protocol, seed) to run, architecture by architecture
    (reference first), so an interrupted run leaves whole architectures done."""
    jobs = []
    for i in range(len(archs)):
        jobs += [(i, "reference", reference, s) for s in range(reference_seeds)]
        for name, p in candidates.items():
            jobs += [(i, name, p, s) for s in range(seeds)]
    return jobs


def load_runs(path: Path) -> dict[str, dict]:
    """The runs already in ``trials.jsonl`` by key (a torn last line is ignored)."""
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            # re-keyed from the row's own fields, so a change of the key's form (or of a
            # field that does not change training) keeps the runs already done
            runs[_key(row["hash"], stored_protocol(row["protocol"]), row["seed"])] = row
    return runs


def execute(archs, jobs, out: Path, *, workers: int, threads: int, device: str,
            log=print) -> dict[str, dict]:
    """Run the missing ``jobs`` (``workers`` processes), appending each run to trials.jsonl."""
    path = out / "trials.jsonl"
    runs = load_runs(path)
    todo = [j for j in jobs if _key(archs[j[0]]["hash"], j[2], j[3]) not in runs]
    log(f"calibrate: {len(jobs) - len(todo)} of {len(jobs)} runs already in {path}; "
        f"{len(todo)} to train on {workers} worker(s)")

    def record(job, result):
        i, name, p, seed = job
        row = {"key": _key(archs[i]["hash"], p, seed), "arch": i, "hash": archs[i]["hash"],
               "protocol_name": name, "protocol": p.to_dict(), "seed": seed, **result}
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        runs[_key(archs[i]["hash"], p, seed)] = row
        what = (f"error: {result['error']}" if "error" in result else
                f"acc {result['accuracy']:.3f} loss {result['val_loss']:.3f}")
        log(f"  [{len(runs)}/{len(jobs)}] arch {i} {name} seed {seed}: {what} "
            f"({result['seconds']:.1f} s)")

    if workers <= 1:
        _worker_init(threads)
        for job in todo:
            record(job, run_one(archs[job[0]]["genotype"], job[2].to_dict(), job[3], device))
        return runs
    with ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(threads,)) as pool:
        pending = {pool.submit(run_one, archs[j[0]]["genotype"], j[2].to_dict(), j[3], device): j
                   for j in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                record(pending.pop(f), f.result())
    return runs


# ---------------------------------------------------------------- analysis
def _cpu(runs: list[dict]) -> float:
    """Mean CPU seconds of the runs that recorded them (runs from before the field: NaN)."""
    got = [r["cpu_seconds"] for r in runs if "cpu_seconds" in r]
    return float(np.mean(got)) if got else float("nan")


def analyse(archs, runs: dict, candidates: dict[str, Protocol], reference: Protocol, *,
            seeds: int, reference_seeds: int, reference_signal: str, num_classes: int,
            tolerance: float = 0.05, max_chance: float = 0.05, reps: int = 1000) -> dict:
    """The per-candidate, per-signal figures over the architectures with every run done.

    A candidate with fewer architectures done than the best-covered one is *partial* (still
    running, or cut short): it is left out of the main comparison (so it does not shrink
    the others' sample) and reported in ``partial`` on its own architectures, next to the
    full candidates on those same architectures; it is never recommended."""
    def runs_of(i, p, n):
        return [runs.get(_key(archs[i]["hash"], p, s)) for s in range(n)]

    ref_done = [i for i in range(len(archs)) if all(runs_of(i, reference, reference_seeds))]
    done = {name: [i for i in ref_done if all(runs_of(i, p, seeds))]
            for name, p in candidates.items()}
    most = max((len(d) for d in done.values()), default=0)
    full = {n: p for n, p in candidates.items() if len(done[n]) == most}
    complete = [i for i in ref_done if all(i in done[n] for n in full)]
    chance = 2.0 / num_classes
    other = [s for s in SIGNALS if s != reference_signal][0]

    def rows_for(name, p, subset):
        ref_runs = {i: runs_of(i, reference, reference_seeds) for i in subset}
        ref = {sig: np.array([np.mean([score(r, sig) for r in ref_runs[i]]) for i in subset])
               for sig in SIGNALS}
        per = {i: runs_of(i, p, seeds) for i in subset}
        flat = [r for i in subset for r in per[i]]
        at_chance = sum(1 for r in flat if r.get("error") or r["accuracy"] <= chance)
        n, out = len(subset), []
        for sig in SIGNALS:
            if any(math.isnan(score(r, sig)) for r in flat):
                continue                  # runs recorded before the signal's inputs were
            mean = np.array([np.mean([score(r, sig) for r in per[i]]) for i in subset])
            row = {"candidate": name, "signal": sig, "protocol": p.to_dict(), "archs": n,
                   "image_passes": p.train_image_passes(),
                   "seconds": float(np.mean([r["seconds"] for r in flat])) if flat else float("nan"),
                   "cpu_seconds": _cpu(flat),
                   "at_chance": at_chance / len(flat) if flat else float("nan"),
                   "failed": sum(1 for r in flat if r.get("error"))}
            target = ref[reference_signal]
            row["kendall"] = kendall(mean, target) if n >= 3 else float("nan")
            row["spearman"] = spearman(mean, target) if n >= 3 else float("nan")
            row["kendall_ci"] = bootstrap(kendall, mean, target, reps=reps) if n >= 3 else (float("nan"),) * 2
            row["spearman_ci"] = bootstrap(spearman, mean, target, reps=reps) if n >= 3 else (float("nan"),) * 2
            row[f"kendall_vs_ref_{other}"] = kendall(mean, ref[other]) if n >= 3 else float("nan")
            # what a search (one training per architecture) gets: each seed alone vs the
            # reference, averaged over the seeds
            row["kendall_one_seed"] = float(np.mean(
                [kendall([score(per[i][k], sig) for i in subset], target) for k in range(seeds)])) \
                if n >= 3 else float("nan")
            if seeds >= 2 and n >= 3:
                a = [score(per[i][0], sig) for i in subset]
                b = [score(per[i][1], sig) for i in subset]
                row["seed_kendall"] = kendall(a, b)
                row["seed_kendall_ci"] = bootstrap(kendall, a, b, reps=reps)
                row["seed_spearman"] = spearman(a, b)
            else:
                row["seed_kendall"] = row["seed_spearman"] = float("nan")
                row["seed_kendall_ci"] = (float("nan"),) * 2
            out.append(row)
        return out

    rows = [r for name, p in full.items() for r in rows_for(name, p, complete)]
    partial = []
    for name, p in candidates.items():
        if name in full or len(done[name]) < 3:
            continue
        subset = [i for i in complete if i in done[name]]
        partial.append({"candidate": name, "archs": subset,
                        "rows": [r for n, q in [(name, p), *full.items()]
                                 for r in rows_for(n, q, subset)]})
    ref_runs = {i: runs_of(i, reference, reference_seeds) for i in complete}
    ref = {sig: np.array([np.mean([score(r, sig) for r in ref_runs[i]]) for i in complete])
           for sig in SIGNALS}
    ref_time = float(np.mean([r["seconds"] for i in complete for r in ref_runs[i]])) if complete else float("nan")
    # eligible: a finite tau and at most max_chance of the runs at chance (a protocol that
    # leaves architectures untrained ranks trainability, whatever its tau on this sample).
    # Judged by the weaker of two taus (see trust()): the one-seed tau (a search trains each
    # architecture once, so the ranking it gets is one seed's, not the seed average's) and the
    # seed-to-seed tau (whether another seed would rank alike). Ties in cost (training image
    # passes) go to the better trust; seconds per run come last (they follow the load).
    for r in rows:
        r["trust"] = trust(r)
    finite = [r for r in rows if math.isfinite(r["trust"]) and r["at_chance"] <= max_chance]
    best = max(finite, key=lambda r: r["trust"]) if finite else None
    pick = None
    if best is not None:
        near = [r for r in finite if r["trust"] >= best["trust"] - tolerance]
        pick = min(near, key=lambda r: (r["image_passes"], -r["trust"], -r["kendall_one_seed"],
                                        r["seconds"]))
    ref_flat = [r for i in complete for r in ref_runs[i]]
    ref_seed = {}
    if reference_seeds >= 2 and len(complete) >= 3:
        for sig in SIGNALS:
            a, b = ([score(ref_runs[i][k], sig) for i in complete] for k in (0, 1))
            if any(math.isnan(x) for x in a + b):
                continue
            ref_seed[sig] = {"kendall": kendall(a, b), "kendall_ci": bootstrap(kendall, a, b, reps=reps)}
    per_arch = []
    for i in range(len(archs)):
        entry = {"arch": i}
        for name, p, n in [("reference", reference, reference_seeds)] + \
                [(c, p, seeds) for c, p in candidates.items()]:
            got = [r for r in runs_of(i, p, n) if r]
            ok = [r for r in got if not r.get("error")]
            entry[name] = {"runs": len(got), "failed": len(got) - len(ok),
                           "accuracy": [r["accuracy"] for r in ok],
                           "val_loss": [r["val_loss"] for r in ok]}
        per_arch.append(entry)
    return {"archs_total": len(archs), "archs_complete": len(complete), "rows": rows,
            "partial": partial, "per_arch": per_arch,
            "best": best and {k: best[k] for k in ("candidate", "signal", "kendall", "kendall_one_seed",
                                                   "trust")},
            "recommended": pick and {k: pick[k] for k in ("candidate", "signal", "kendall", "trust",
                                                          "kendall_one_seed", "seed_kendall", "seconds")},
            "reference": {"protocol": reference.to_dict(), "signal": reference_signal,
                          "seconds": ref_time, "cpu_seconds": _cpu(ref_flat),
                          "image_passes": reference.train_image_passes(),
                          "at_chance": (sum(1 for r in ref_flat if r.get("error") or r["accuracy"] <= chance)
                                        / len(ref_flat)) if ref_flat else float("nan"),
                          "accuracy_range": [float(min(ref["accuracy"])), float(max(ref["accuracy"]))]
                          if complete else None,
                          # the reference's own noise floor (seed 0 vs seed 1; needs 2 seeds)
                          "seed_kendall": ref_seed},
            "tolerance": tolerance, "max_chance": max_chance, "complete": complete}


def trust(row: dict) -> float:
    """What a candidate is judged by: the smaller of its one-seed tau against the reference
    and its seed-to-seed tau (the one-seed tau alone when it ran one seed). A protocol is as
    trustworthy as the weaker of the two: ranking like the long run, and ranking alike again."""
    one, seed = row["kendall_one_seed"], row["seed_kendall"]
    return min(one, seed) if math.isfinite(seed) else one


def _f(x, fmt="{:+.3f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def render(summary: dict, config: dict, archs: list[dict]) -> str:
    """The markdown report."""
    ref = summary["reference"]
    lines = [f"# Proxy protocol calibration: {config['space']} at {config['budget'] or 'no budget'}",
             "",
             f"Command: `{config['command']}`  ",
             f"Machine: {config['machine']}; {config['workers']} worker process(es) x "
             f"{config['threads']} thread(s); device {config['device']}.  ",
             f"Architectures: {summary['archs_complete']} with every run done, of "
             f"{summary['archs_total']} planned ({config['archs']} sampled + seed nets within budget); "
             f"{config['seeds']} training seeds per candidate, {config['reference_seeds']} for the reference.",
             "",
             "## Reference",
             "",
             f"`{_protocol_text(ref['protocol'])}`: {ref['image_passes']:,} training image passes, "
             f"{_f(ref['seconds'], '{:.1f}')} s per run "
             f"(CPU {_f(ref.get('cpu_seconds'), '{:.1f}')} s); ranked by its `{ref['signal']}`; "
             f"runs at chance: {_f(ref['at_chance'], '{:.0%}')}; accuracy range "
             f"{ref['accuracy_range'] and ' to '.join(f'{a:.3f}' for a in ref['accuracy_range'])}.",
             *_reference_noise(ref, config),
             "",
             "## Candidates",
             "",
             "tau, rho: Kendall tau-b and Spearman rho of the seed-averaged candidate score against "
             "the reference (bootstrap 95% interval over architectures). seed tau: seed 0 vs seed 1 "
             "of the same candidate (the noise floor; its interval is a bootstrap over architectures too). "
             "one-seed tau: each seed's score alone against the reference, averaged over the seeds "
             "(what a search that trains each architecture once gets). At chance: runs with accuracy <= "
             f"{2 / config['num_classes']:.2f} (or failed).",
             "",
             "s/run: wall seconds per run; CPU s: the worker's CPU seconds per run (the cost that "
             "does not grow with the machine's load; n/a for runs recorded before the field).",
             "",
             *_TABLE_HEAD]
    lines += [_table_row(r) for r in summary["rows"]]
    for part in summary.get("partial", []):
        lines += ["", f"### Partial: {part['candidate']} ({len(part['archs'])} of "
                      f"{summary['archs_complete']} architectures done)", "",
                  f"Not part of the comparison above (and never recommended): its runs cover "
                  f"architectures {_spans(part['archs'])} only. Every candidate on those same "
                  "architectures:", "",
                  *_TABLE_HEAD]
        lines += [_table_row(r) for r in part["rows"]]
    rec = summary["recommended"]
    lines += ["", "## Recommendation", ""]
    if rec:
        lines.append(f"Each candidate and signal is judged by the smaller of its one-seed tau and "
                     f"its seed tau (ranking like the reference, and ranking alike under another "
                     f"seed). Among candidates with at most {summary['max_chance']:.0%} of runs at "
                     f"chance, the cheapest in training image passes (then the better judgement, "
                     f"one-seed tau, seconds per run) within {summary['tolerance']} of the best "
                     f"({summary['best']['candidate']}/{summary['best']['signal']}, "
                     f"{summary['best']['trust']:+.3f}): **{rec['candidate']} ranked by "
                     f"{rec['signal']}** (one-seed tau {rec['kendall_one_seed']:+.3f}, seed tau "
                     f"{_f(rec['seed_kendall'])}, seed-averaged tau {rec['kendall']:+.3f}, "
                     f"{rec['seconds']:.1f} s per run). The one-seed tau is what a search, which "
                     "trains each architecture once, gets.")
    else:
        lines.append("No recommendation: fewer than 3 architectures have every run done, or every "
                     f"candidate leaves more than {summary['max_chance']:.0%} of its runs at chance.")
    names = [k for k in summary["per_arch"][0] if k != "arch"] if summary["per_arch"] else []
    lines += ["", "## Architectures", "",
              "Validation accuracy / cross-entropy of each run (seeds in order; '-' not run yet).", "",
              "| # | name | MACs (target) | " + " | ".join(names) + " | params |",
              "|---:|---|---:|" + "---|" * len(names) + "---|"]
    for i, a in enumerate(archs):
        mark = "" if i in summary["complete"] else " (incomplete)"
        cells = []
        for n in names:
            e = summary["per_arch"][i][n]
            runs = [f"{x:.3f}/{y:.3f}" for x, y in zip(e["accuracy"], e["val_loss"])]
            runs += ["failed"] * e["failed"]
            cells.append(", ".join(runs) or "-")
        lines.append(f"| {i} | {a['name']}{mark} | {a['macs'] / 1e6:,.0f}M | " + " | ".join(cells)
                     + f" | `{json.dumps(a['params'], sort_keys=True)}` |")
    return "\n".join(lines) + "\n"


def _reference_noise(ref: dict, config: dict) -> list[str]:
    """The reference's seed-to-seed line: how well one reference run ranks like another."""
    seeds = ref.get("seed_kendall") or {}
    if not seeds:
        return ["", f"Reference seed-to-seed tau: not measured (it needs --reference-seeds 2; "
                    f"this run has {config['reference_seeds']}). Without it, a low tau against the "
                    "reference cannot be told apart from a noisy reference."]
    parts = ", ".join(f"{sig} {v['kendall']:+.3f} {_ci(v['kendall_ci'])}" for sig, v in seeds.items())
    return ["", f"Reference seed-to-seed tau (seed 0 vs seed 1 of the reference itself): {parts}. "
                "This is the reference's own noise floor: a candidate cannot be expected to rank "
                "like one reference run much better than another reference run does; the "
                "seed-averaged reference above is less noisy than either run."]


_TABLE_HEAD = ("| candidate | signal | image passes | s/run | CPU s | tau [95% CI] | rho [95% CI] | "
               "one-seed tau | tau vs ref other signal | seed tau [95% CI] | at chance | protocol |",
               "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---|")


def _table_row(r: dict) -> str:
    other = [k for k in r if k.startswith("kendall_vs_ref_")][0]
    return (f"| {r['candidate']} | {r['signal']} | {r['image_passes']:,} | {_f(r['seconds'], '{:.1f}')} | "
            f"{_f(r.get('cpu_seconds'), '{:.1f}')} | "
            f"{_f(r['kendall'])} [{_f(r['kendall_ci'][0])}, {_f(r['kendall_ci'][1])}] | "
            f"{_f(r['spearman'])} [{_f(r['spearman_ci'][0])}, {_f(r['spearman_ci'][1])}] | "
            f"{_f(r.get('kendall_one_seed', float('nan')))} | {_f(r[other])} | "
            f"{_f(r['seed_kendall'])} {_ci(r.get('seed_kendall_ci'))} | "
            f"{_f(r['at_chance'], '{:.0%}')} | "
            f"`{_protocol_text(r['protocol'])}` |")


def _ci(ci) -> str:
    return f"[{_f(ci[0])}, {_f(ci[1])}]" if ci else ""


def _spans(idx: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, i = [], 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(f"{idx[i]}-{idx[j]}" if j > i else f"{idx[i]}")
        i = j + 1
    return ", ".join(out)


def _protocol_text(p: dict) -> str:
    d = DEFAULT.to_dict()
    changed = {k: v for k, v in p.items() if v != d[k]}
    return ",".join(f"{k}={v}" for k, v in changed.items()) or "DEFAULT"


def chart(summary: dict, path: Path) -> bool:
    """tau vs CPU seconds per run (wall seconds for runs recorded without them), one point per
    candidate and signal; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cost = lambda r: r["cpu_seconds"] if math.isfinite(r.get("cpu_seconds", math.nan)) \
        else r["seconds"]  # noqa: E731
    cpu = all(math.isfinite(r.get("cpu_seconds", math.nan)) for r in summary["rows"])
    for sig, marker in zip(SIGNALS, ("o", "s", "^")):
        rows = [r for r in summary["rows"] if r["signal"] == sig and math.isfinite(r["kendall"])]
        if not rows:
            continue
        x = [cost(r) for r in rows]
        y = [r["kendall"] for r in rows]
        err = [[max(0.0, r["kendall"] - r["kendall_ci"][0]) for r in rows],
               [max(0.0, r["kendall_ci"][1] - r["kendall"]) for r in rows]]
        ax.errorbar(x, y, yerr=err, fmt=marker, capsize=3, label=f"ranked by {sig}")
        for r in rows:
            ax.annotate(r["candidate"], (cost(r), r["kendall"]), fontsize=7,
                        xytext=(4, 2), textcoords="offset points")
        seed = [r["seed_kendall"] for r in rows if math.isfinite(r["seed_kendall"])]
        if seed and sig == DEFAULT.signal:
            ax.scatter([cost(r) for r in rows if math.isfinite(r["seed_kendall"])], seed,
                       marker="x", color="grey", label=f"seed-to-seed tau ({sig})")
    ax.axhline(0.7, color="red", lw=0.8, ls="--", label="tau 0.7")
    ax.set_xlabel("CPU seconds per training run" if cpu else "seconds per training run")
    ax.set_ylabel("Kendall tau vs reference")
    ax.set_title(f"{summary['archs_complete']} architectures")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- CLI
def parse_args(argv):
    from nas import cli
    from nas.cli import ArgumentParser, positive_int

    p = ArgumentParser(prog="python -m nas.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--space", required=True, help="space name or YAML path")
    p.add_argument("--budget", help="MAC budget, e.g. 2GFLOPs (FLOPs means MACs)")
    p.add_argument("--archs", type=positive_int, default=24, help="architectures to sample")
    p.add_argument("--no-seed-nets", action="store_true", help="do not add the space's seed nets")
    p.add_argument("--candidate", action="append", default=[], metavar="NAME:K=V,...",
                   help="a candidate protocol: DEFAULT with these changes (repeatable)")
    p.add_argument("--reference", default=DEFAULT_REFERENCE, metavar="K=V,...",
                   help=f"the reference protocol (default: {DEFAULT_REFERENCE})")
    p.add_argument("--reference-signal", choices=SIGNALS, default="val_loss")
    p.add_argument("--seeds", type=positive_int, default=2, help="training seeds per candidate")
    p.add_argument("--reference-seeds", type=positive_int, default=1)
    p.add_argument("--sample-seed", type=cli.seed, default=0, help="seed of the architecture sample")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="'within reach of the best': tau at most this far below it")
    p.add_argument("--max-chance", type=float, default=0.05,
                   help="recommend only candidates with at most this share of runs at chance")
    p.add_argument("--min-ratio", type=float, default=10.0,
                   help="the reference must train >= this many times a candidate's image passes")
    p.add_argument("--workers", type=positive_int, default=1)
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads per worker")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output folder (trials.jsonl, report.md, chart.png)")
    p.add_argument("--report-only", action="store_true", help="report on the runs already done")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from nas import cli

    return cli.guarded(_main)(argv)


def _main(argv=None) -> int:
    from nas.cost import parse_budget
    from nas.spaces import load_space

    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    candidates = {}
    for text in a.candidate or [f"{k}:{v}" for k, v in DEFAULT_CANDIDATES.items()]:
        name, colon, changes = text.partition(":")
        if not colon or not name or name == "reference" or name in candidates:
            raise NasError(f"bad --candidate {text!r}: use NAME:key=value,... with a new name "
                           "other than 'reference' (NAME: alone is DEFAULT)")
        candidates[name] = parse_protocol(changes)
    reference = parse_protocol(a.reference)
    for name, p in candidates.items():
        if reference.train_image_passes() < a.min_ratio * p.train_image_passes():
            raise NasError(f"the reference trains {reference.train_image_passes():,} image passes, "
                           f"under {a.min_ratio:g}x candidate {name!r}'s "
                           f"{p.train_image_passes():,}; give --reference more epochs or images "
                           "(or lower --min-ratio)")
    space = load_space(a.space)
    budget = parse_budget(a.budget) if a.budget else None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    request = {"space": space.name, "budget": budget, "archs": a.archs, "sample_seed": a.sample_seed,
               "seed_nets": not a.no_seed_nets}
    archs = _archs(out, request, lambda: sample_archs(space, a.archs, budget, seed=a.sample_seed,
                                                      include_seeds=not a.no_seed_nets))
    jobs = plan(archs, candidates, reference, a.seeds, a.reference_seeds)
    if not a.report_only:
        try:
            execute(archs, jobs, out, workers=a.workers, threads=a.threads, device=a.device)
        except KeyboardInterrupt:
            print(f"calibrate: interrupted; the runs done are in {out / 'trials.jsonl'}: re-run "
                  "the same command to continue", file=sys.stderr)
            return 130
    runs = load_runs(out / "trials.jsonl")
    num_classes = _classes(reference)
    summary = analyse(archs, runs, candidates, reference, seeds=a.seeds,
                      reference_seeds=a.reference_seeds, reference_signal=a.reference_signal,
                      num_classes=num_classes, tolerance=a.tolerance, max_chance=a.max_chance)
    config = {"space": space.name, "budget": a.budget, "archs": a.archs, "seeds": a.seeds,
              "reference_seeds": a.reference_seeds, "workers": a.workers, "threads": a.threads,
              "device": a.device, "num_classes": num_classes,
              "machine": f"{os.cpu_count()} CPU(s), load average "
                         f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min) at report time",
              "command": "python -m nas.calibrate " + " ".join(argv)}
    (out / "summary.json").write_text(json.dumps({"config": config, **summary}, indent=1))
    (out / "report.md").write_text(render(summary, config, archs))
    drew = chart(summary, out / "chart.png")
    rec = summary["recommended"]
    print(f"calibrate: {summary['archs_complete']} architectures complete; report {out / 'report.md'}"
          + ("" if drew else " (no chart: matplotlib is not installed)"))
    if rec:
        print(f"recommended: {rec['candidate']} ranked by {rec['signal']} "
              f"(one-seed Kendall tau {rec['kendall_one_seed']:+.3f} vs the reference, "
              f"seed tau {_f(rec['seed_kendall'])}, "
              f"seed-averaged {rec['kendall']:+.3f}, {rec['seconds']:.1f} s per run)")
    return 0


def _archs(out: Path, request: dict, sample) -> list[dict]:
    """The architectures of this folder's calibration: those saved in ``archs.json`` when the
    request (space, budget, count, sample seed) is the same, so a resumed run keeps its
    sample (and its runs' keys) even if sampling or hashing changed meanwhile. A larger
    ``--archs`` extends the sample: the saved architectures stay as they are (the sampler
    proposes them first again) and the new ones follow. Any other change of the request is
    refused: the folder's runs belong to its sample."""
    saved, asked = out / "archs.json", out / "request.json"
    if saved.exists():
        archs = json.loads(saved.read_text())
        before = json.loads(asked.read_text()) if asked.exists() else None
        if before is None or before == request:
            return archs
        if {**before, "archs": request["archs"]} != request or request["archs"] < before["archs"]:
            raise NasError(f"{out} holds a calibration of {_request_text(before)}, not "
                           f"{_request_text(request)}: use another --out (or a larger --archs "
                           "to extend this one)")
        more = sample()
        if [a["params"] for a in more[:len(archs)]] != [a["params"] for a in archs]:
            raise NasError(f"cannot extend {out}: the sampler no longer proposes its "
                           f"{len(archs)} architectures first (the space changed); use another --out")
        archs += more[len(archs):]
    else:
        archs = sample()
    saved.write_text(json.dumps(archs, indent=1))
    asked.write_text(json.dumps(request))
    return archs


def _request_text(r: dict) -> str:
    from nas.cost import human

    budget = f"{human(r['budget'])}MACs" if r.get("budget") else "none"
    return (f"space {r['space']}, budget {budget}, {r['archs']} sampled architectures, "
            f"sample seed {r['sample_seed']}{'' if r.get('seed_nets', True) else ', no seed nets'}")


def _classes(p: Protocol) -> int:
    from nas.evaluate.data import load_dataset

    return load_dataset(p.dataset, resolution=p.resolution, limit=p.images,
                        val_fraction=p.val_fraction).num_classes


if __name__ == "__main__":
    sys.exit(main())
