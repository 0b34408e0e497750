"""Framework overhead per trial: nas.search with a no-op evaluator vs a bare Optuna loop.

    python experiments/benchmarks/bench_search_overhead.py --trials 1000 --sampler tpe

Both loops use the same sampler, the same parameter distributions (the resnet_like space)
and Optuna's RDB storage in a fresh SQLite file with the same connection settings (WAL,
synchronous=NORMAL); with --plain-sqlite, a bare loop on a plain ``sqlite:///`` URL is timed as well. The framework additionally builds each
genotype, counts it exactly, checks the budget and writes every trial to the nas tables
(claim, start, finish: three transactions). The evaluator does no work, so the difference is
pure framework cost. Also printed: a bare loop on Optuna's in-memory storage (reference).
Counted per Optuna trial (ask): over-budget proposals are built, counted and stored too.
Goal: framework / bare (same storage) <= 1.5.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def noop_evaluator(genotype, on_epoch) -> dict:
    """A deterministic pseudo-accuracy from the genotype hash; no training."""
    h = int(hashlib.sha256(genotype.to_json().encode()).hexdigest()[:8], 16)
    return {"accuracy": (h % 10_000) / 10_000}


def bare_loop(space, sampler_name: str, trials: int, storage, seed: int) -> float:
    """Seconds for ``trials`` ask/suggest/tell rounds of plain Optuna."""
    import optuna

    from nas.strategies.optuna_backend import SAMPLERS

    study = optuna.create_study(storage=storage, sampler=SAMPLERS.get(sampler_name)(seed, 1),
                                direction="maximize")

    def objective(trial) -> float:
        params = {}
        for p in space.params:
            if p.active(params):
                params[p.name] = p.suggest(trial)
        h = int(hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8], 16)
        return (h % 10_000) / 10_000

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - t0


def framework(space, sampler_name: str, trials: int, db: Path, budget: str, seed: int):
    """Seconds and Optuna trial count (asks) of nas.search reaching ``trials`` evaluated trials."""
    from nas.search import SearchConfig, run_search

    c = SearchConfig(space=space.name, budget=budget, trials=trials, sampler=sampler_name,
                     objectives=["accuracy"], storage=str(db), study="bench", seed=seed,
                     workers=1)
    t0 = time.perf_counter()
    result = run_search(c, evaluator=noop_evaluator, space=space, out=lambda s: None)
    seconds = time.perf_counter() - t0
    return seconds, result["summary"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--sampler", default="tpe")
    p.add_argument("--budget", default="2GFLOPs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plain-sqlite", action="store_true",
                   help="also time a bare loop on a plain sqlite:/// URL (Optuna's defaults)")
    p.add_argument("--out", help="append a JSON line with the results here")
    a = p.parse_args(argv)
    import optuna

    from nas.spaces import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    space = load_space("resnet_like")
    with tempfile.TemporaryDirectory() as tmp:
        from nas.strategies.optuna_backend import rdb_storage

        bare_rdb = bare_loop(space, a.sampler, a.trials, rdb_storage(f"sqlite:///{tmp}/bare.db"), a.seed)
        bare_default = (bare_loop(space, a.sampler, a.trials, f"sqlite:///{tmp}/plain.db", a.seed)
                        if a.plain_sqlite else float("nan"))
        bare_mem = bare_loop(space, a.sampler, a.trials, None, a.seed)
        fw_s, summary = framework(space, a.sampler, a.trials, Path(tmp) / "fw.db", a.budget, a.seed)
    asks = summary["started"]
    per = {"bare_sqlite_ms": 1000 * bare_rdb / a.trials,
           "bare_sqlite_default_ms": 1000 * bare_default / a.trials, "bare_memory_ms": 1000 * bare_mem / a.trials,
           "framework_ms_per_ask": 1000 * fw_s / asks,
           "framework_ms_per_evaluated": 1000 * fw_s / a.trials}
    ratio = per["framework_ms_per_ask"] / per["bare_sqlite_ms"]
    print(f"{a.trials} trials, sampler {a.sampler}, budget {a.budget}, load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"  bare Optuna, in-memory storage              : {per['bare_memory_ms']:8.2f} ms/trial")
    print(f"  bare Optuna, SQLite, Optuna's defaults      : {per['bare_sqlite_default_ms']:8.2f} ms/trial")
    print(f"  bare Optuna, SQLite, same settings as nas   : {per['bare_sqlite_ms']:8.2f} ms/trial")
    print(f"  nas.search, no-op evaluator (same SQLite)   : {per['framework_ms_per_ask']:8.2f} ms/trial "
          f"({asks} asks, {summary['infeasible']} over budget; "
          f"{per['framework_ms_per_evaluated']:.2f} ms per evaluated trial)")
    print(f"  ratio framework / bare (same storage): {ratio:.2f}x (goal <= 1.5x)")
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps({"trials": a.trials, "sampler": a.sampler, "budget": a.budget,
                                "asks": asks, **per, "ratio": ratio,
                                "load": os.getloadavg()[0]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
