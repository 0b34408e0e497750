"""Framework overhead per trial (nas.search with a no-op evaluator vs a bare Optuna loop), and
trial throughput of local worker processes.

    python experiments/benchmarks/bench_search_overhead.py --trials 1000 --sampler tpe
    python experiments/benchmarks/bench_search_overhead.py --throughput 24

Overhead: both loops use the same sampler and the same parameter distributions (the
resnet_like space) and store every trial in a fresh SQLite file with the same connection
settings (WAL, synchronous=NORMAL): the bare loop in Optuna's RDB storage, nas.search in its
``nas_*`` tables (one claim and one finish transaction per trial, its sampler on a private
in-memory study) plus the export of the study to Optuna's tables at the end of the run,
which is included. nas.search also builds each genotype, counts it, checks the budget and
the repeats. The evaluator does no work, so the difference is pure framework cost. Both do
--trials asks (nas.search: trained, over-budget and repeated proposals alike; each is costed,
stored and told) and the time is counted per ask. Also
printed: a bare loop on Optuna's in-memory storage (reference). Goal: framework / bare
(same storage kind) <= 1.5.

Throughput (--throughput N): N trials whose evaluator burns a fixed amount of CPU in one
thread (no sleeping), with 1 and then 2 local workers, whole runs timed (start-up, workers'
start and the final export included); goal: 2 workers >= 1.8x one worker on 2 cores. On a
shared machine other processes take their share of the cores, so each round also times the
same N CPU burns in 1 and in 2 bare processes (a spawn pool, no nas): the ratio the machine
allowed at that moment. nas's ratio / the bare ratio is what the framework itself loses.
Rounds alternate the configurations, so a change of load hits both.
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
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def noop_evaluator(genotype, on_epoch) -> dict:
    """A deterministic pseudo-accuracy from the genotype hash; no training."""
    h = int(hashlib.sha256(genotype.to_json().encode()).hexdigest()[:8], 16)
    return {"accuracy": (h % 10_000) / 10_000}


def burn(seconds: float) -> int:
    """Burn ``seconds`` of this thread's CPU time (no sleeping)."""
    t0, x = time.thread_time(), 0
    while time.thread_time() - t0 < seconds:
        for i in range(10_000):
            x += i * i
    return x


class BusyEvaluator:
    """Burns ``seconds`` of one thread's CPU time per trial (a CPU-bound 1-thread trial)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, genotype, on_epoch) -> dict:
        burn(self.seconds)
        return noop_evaluator(genotype, on_epoch)


def throughput(trials: int, seconds: float, workers: int, db: Path, seed: int) -> tuple:
    """Trials per second of a whole nas.search run with ``workers`` local workers, and where
    its wall time went: start-up before the first claim, the end after the last result, the
    share of the workers' cores the trials' own CPU burn filled, and the CPU seconds of this
    (the driver's) process and of the workers."""
    import resource

    from nas.search import SearchConfig, run_search
    from nas.store import TrialStore

    c = SearchConfig(space="resnet_like", budget="2GFLOPs", trials=trials, objectives=["accuracy"],
                     storage=str(db), study=f"w{workers}", seed=seed, workers=workers, seeds=False)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, start = time.perf_counter(), datetime.now(timezone.utc).replace(tzinfo=None)
    run_search(c, evaluator=BusyEvaluator(seconds), out=lambda s: None)
    wall = time.perf_counter() - t0
    me2, kids2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    trained = [t for t in TrialStore(db).trials(c.study) if t["feasible"] and t["duplicate_of"] is None]
    first = min(t["started_at"] for t in trained)
    last = max(t["finished_at"] for t in trained)
    return trials / wall, {
        "wall_s": wall, "startup_s": (first - start).total_seconds(),
        "tail_s": wall - (last - start).total_seconds(),
        "busy": len(trained) * seconds / (workers * wall),
        "driver_cpu_s": me2.ru_utime + me2.ru_stime - me.ru_utime - me.ru_stime,
        "workers_cpu_s": kids2.ru_utime + kids2.ru_stime - kids.ru_utime - kids.ru_stime}


def bare_throughput(trials: int, seconds: float, workers: int) -> float:
    """Trials per second of the same CPU burns in ``workers`` bare processes (pool start
    included; one process: in this one)."""
    import multiprocessing as mp

    t0 = time.perf_counter()
    if workers == 1:
        for _ in range(trials):
            burn(seconds)
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            pool.map(burn, [seconds] * trials, chunksize=1)
    return trials / (time.perf_counter() - t0)


def throughput_rounds(trials: int, seconds: float, rounds: int, seed: int) -> dict:
    """``rounds`` rounds of nas and bare, 1 and 2 workers each; the ratios of each round."""
    out = {"nas": [], "bare": [], "profile": [], "load": [os.getloadavg()[0]]}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            db = Path(tmp) / f"t{r}.db"
            (one, _), (two, profile) = (throughput(trials, seconds, 1, db, seed),
                                        throughput(trials, seconds, 2, db, seed))
            bare = (bare_throughput(trials, seconds, 1), bare_throughput(trials, seconds, 2))
            out["nas"].append((one, two))
            out["profile"].append(profile)
            out["bare"].append(bare)
            out["load"].append(os.getloadavg()[0])
    return out


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


def framework(space, sampler_name: str, asks: int, db: Path, budget: str, seed: int):
    """Seconds and summary of nas.search stopped after ``asks`` proposals (trained, over
    budget or repeats: each is asked, costed, stored and told), like the bare loop's
    ``asks`` trials. (Stopping at N trained trials instead would compare a study of many
    more trials: NSGA-II re-proposes evaluated architectures ~13 times for each new one
    near 1,000 in resnet_like, and a sampler's ask slows as its study grows.)"""
    from nas.search import SearchConfig, run_search
    from nas.strategies.driver import Driver

    count = Driver._count

    def capped(driver, t):
        count(driver, t)
        if driver.summary.started >= asks:
            driver._finish_proposing(f"{asks} asks")
    c = SearchConfig(space=space.name, budget=budget, trials=None, sampler=sampler_name,
                     objectives=["accuracy"], storage=str(db), study="bench", seed=seed,
                     workers=1, seeds=False)
    Driver._count = capped
    try:
        t0 = time.perf_counter()
        result = run_search(c, evaluator=noop_evaluator, space=space, out=lambda s: None)
        seconds = time.perf_counter() - t0
    finally:
        Driver._count = count
    return seconds, result["summary"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=1000, help="asks of each loop")
    p.add_argument("--sampler", default="tpe")
    p.add_argument("--budget", default="2GFLOPs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plain-sqlite", action="store_true",
                   help="also time a bare loop on a plain sqlite:/// URL (Optuna's defaults)")
    p.add_argument("--out", help="append a JSON line with the results here")
    p.add_argument("--throughput", type=int, metavar="N",
                   help="instead: N CPU-bound trials with 1 and 2 workers")
    p.add_argument("--trial-seconds", type=float, default=2.0,
                   help="CPU seconds per trial with --throughput")
    p.add_argument("--rounds", type=int, default=2, help="rounds with --throughput")
    a = p.parse_args(argv)
    if a.throughput:
        r = throughput_rounds(a.throughput, a.trial_seconds, a.rounds, a.seed)
        print(f"{a.throughput} trials of {a.trial_seconds:g} CPU s, {a.rounds} round(s), "
              f"{len(os.sched_getaffinity(0))} usable CPUs, load average (1 min) "
              f"{' -> '.join(f'{x:.1f}' for x in r['load'])}")
        nas_ratios = [two / one for one, two in r["nas"]]
        bare_ratios = [two / one for one, two in r["bare"]]
        for i, ((n1, n2), (b1, b2), f) in enumerate(zip(r["nas"], r["bare"], r["profile"])):
            print(f"  round {i + 1}: nas 1 worker {n1:.3f} trials/s, 2 workers {n2:.3f}: "
                  f"{n2 / n1:.2f}x | bare 1 process {b1:.3f}, 2 processes {b2:.3f}: {b2 / b1:.2f}x\n"
                  f"    nas, 2 workers: {f['wall_s']:.1f} s wall, first trial after "
                  f"{f['startup_s']:.2f} s, {f['tail_s']:.2f} s after the last; the trials' own CPU "
                  f"filled {f['busy']:.1%} of 2 cores; CPU s: driver {f['driver_cpu_s']:.2f}, "
                  f"workers {f['workers_cpu_s']:.2f}")
        import statistics

        med, bare_med = statistics.median(nas_ratios), statistics.median(bare_ratios)
        print(f"  2 workers / 1 worker: {' '.join(f'{x:.2f}x' for x in nas_ratios)}, median "
              f"{med:.2f}x (goal >= 1.8x); bare processes: median {bare_med:.2f}x; nas / bare "
              f"per round: {' '.join(f'{n / b:.0%}' for n, b in zip(nas_ratios, bare_ratios))}")
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps({"throughput_trials": a.throughput, "trial_seconds": a.trial_seconds,
                                    **r, "ratios": nas_ratios, "bare_ratios": bare_ratios}) + "\n")
        return 0
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
           "framework_ms_per_evaluated": 1000 * fw_s / max(1, summary["complete"])}
    ratio = per["framework_ms_per_ask"] / per["bare_sqlite_ms"]
    print(f"{a.trials} trials, sampler {a.sampler}, budget {a.budget}, load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"  bare Optuna, in-memory storage              : {per['bare_memory_ms']:8.2f} ms/trial")
    print(f"  bare Optuna, SQLite, Optuna's defaults      : {per['bare_sqlite_default_ms']:8.2f} ms/trial")
    print(f"  bare Optuna, SQLite, same settings as nas   : {per['bare_sqlite_ms']:8.2f} ms/trial")
    print(f"  nas.search, no-op evaluator (same SQLite)   : {per['framework_ms_per_ask']:8.2f} ms/trial "
          f"({asks} asks: {summary['complete']} evaluated, {summary['infeasible']} over budget, "
          f"{summary['repeats']} repeats)")
    print(f"  ratio framework / bare (same storage): {ratio:.2f}x (goal <= 1.5x); "
          f"framework / bare in-memory: {per['framework_ms_per_ask'] / per['bare_memory_ms']:.2f}x")
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps({"trials": a.trials, "sampler": a.sampler, "budget": a.budget,
                                "asks": asks, "evaluated": summary["complete"],
                                "over_budget": summary["infeasible"],
                                "repeats": summary["repeats"], **per, "ratio": ratio,
                                "load": os.getloadavg()[0]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
