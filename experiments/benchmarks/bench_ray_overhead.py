"""What Ray Tune costs per trial, and the wall time of one small search on both backends.

    python experiments/benchmarks/bench_ray_overhead.py [--noop-trials 40] [--search-trials 6]

Part 1 (overhead): a no-op evaluator (build, count, store; no training) run for N trials by
the run's driver evaluating in this process, then as Ray Tune trials on a local 2-CPU cluster with
reuse_actors on and off. Ray's start-up is timed apart; the per-trial overhead Ray adds is
(Ray seconds per trial - Optuna seconds per trial).

Part 2 (search): the same small search (space, budget, sampler, seed, trial count, MNIST
proxy training) through ``nas.search.run_search`` with ``--backend optuna`` and with
``--backend ray`` on 2 CPUs (1 CPU per trial, so 2 trials at once), ASHA on and off; the
Optuna backend runs in one process (``--workers 1``, the same architectures as Ray) and in
two worker processes (``--workers 2``, the same parallelism, other architectures).

Ratios are against the Optuna backend measured in the same run. On a shared machine the
figures are noisy: run it on an idle one to quote them.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

NOOP_STUDY = "bench-noop"


class NoopEvaluator:
    """Scores an architecture instantly (accuracy from its MACs): only the framework runs."""

    def __call__(self, genotype, on_epoch) -> dict:
        from nas.cost import count

        return {"accuracy": min(count(genotype).macs / 4e9, 1.0)}


def _config(tmp: Path, name: str, trials: int, budget: str | None = "2GFLOPs", **kw):
    from nas.search import SearchConfig

    return SearchConfig(space="resnet_like", budget=budget, trials=trials, sampler="random",
                        objectives=["accuracy"], storage=str(tmp / f"{name}.db"), study=name,
                        seeds=False, dashboard=str(tmp / f"{name}.html"), **kw)


def _noop_run(tmp: Path, name: str, trials: int, execute) -> float:
    """Seconds for ``trials`` no-op trials: a driver (as ``nas.search`` makes one) whose
    proposals ``execute(driver, evaluator)`` evaluates."""
    from nas.search import open_study
    from nas.spaces import load_space
    from nas.store import TrialStore, worker_id
    from nas.strategies import SearchJob
    from nas.strategies.driver import Driver

    c = _config(tmp, name, trials, budget=None, workers=1)  # no budget: every proposal is a trial
    space, store = load_space(c.space), TrialStore(c.storage)
    job = SearchJob(study=c.study_name(space.name), space=space, budget_macs=None,
                    params_budget=None, objectives=["accuracy"], evaluator=NoopEvaluator(),
                    store=store, trials=trials, sampler="random", worker=worker_id())
    open_study(job, c)
    t0 = time.perf_counter()
    driver = Driver(job, parallel=2)
    try:
        execute(driver, job.evaluator)
    finally:
        driver.close()
    seconds = time.perf_counter() - t0
    done = store.count(job.study)
    store.close()
    assert done == trials, f"{name}: {done} trials stored, expected {trials} ({driver.summary})"
    return seconds


def _marginal(tmp: Path, name: str, trials: int, make) -> tuple[float, float]:
    """(seconds per extra trial, fixed seconds) from runs of trials/4 and trials trials, so
    actor start-up and Tuner set-up do not count as per-trial cost."""
    small = max(2, trials // 4)
    t_small = _noop_run(tmp, f"{name}-{small}", small, make())
    t_big = _noop_run(tmp, f"{name}-{trials}", trials, make())
    per = (t_big - t_small) / (trials - small)
    return per, t_big - per * trials


def overhead(tmp: Path, trials: int, no_reuse_trials: int) -> dict:
    """Seconds per no-op trial: Optuna in-process, Ray with and without actor reuse."""
    import ray

    from nas.strategies.local import run_inline
    from nas.strategies.ray_backend import run_ray

    out = {"optuna": _marginal(tmp, "noop-optuna", trials, lambda: run_inline)}
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out["ray_startup_s"] = time.perf_counter() - t0
    try:
        for reuse, n in ((True, trials), (False, no_reuse_trials)):
            key = f"ray_reuse_{'on' if reuse else 'off'}"
            out[key] = _marginal(tmp, f"noop-{key}", n, lambda: lambda d, ev: run_ray(
                d, ev, cpus_per_trial=1, reuse_actors=reuse, scheduler="none",
                ray_storage=str(tmp / "ray")))
    finally:
        ray.shutdown()
    return out


def search(tmp: Path, trials: int, epochs: int, limit: int, resolution: int) -> dict:
    """Wall seconds of one small training search per backend (Ray starts its own cluster)."""
    from nas.search import run_search
    from nas.store import TrialStore

    out = {}
    runs = {"optuna": {"workers": 1}, "optuna_w2": {"workers": 2},
            "ray_asha": {"backend": "ray", "scheduler": "asha", "workers": 1},
            "ray_fifo": {"backend": "ray", "scheduler": "none", "workers": 1}}
    for name, kw in runs.items():
        c = _config(tmp, f"search-{name}", trials, epochs=epochs, limit=limit,
                    resolution=resolution, device="cpu", **kw)
        t0 = time.perf_counter()
        result = run_search(c, out=lambda line: None)
        s = result["summary"]
        store = TrialStore(c.storage)
        archs = sorted(t["genotype_hash"] or "" for t in store.trials(c.study_name("resnet_like"))
                       if t["feasible"])
        store.close()
        out[name] = {"seconds": time.perf_counter() - t0, "started": s["started"], "archs": archs,
                     "complete": s["complete"], "pruned": s["pruned"],
                     "infeasible": s["infeasible"], "failed": s["failed"],
                     "best": max((t["accuracy"] for t in result["pareto"]), default=None)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--noop-trials", type=int, default=40)
    ap.add_argument("--no-reuse-trials", type=int, default=12)
    ap.add_argument("--search-trials", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=400, help="MNIST images (train + val)")
    ap.add_argument("--resolution", type=int, default=16, help="proxy input size")
    ap.add_argument("--skip-noop", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"load average at start: {load:.1f} on {os.cpu_count()} CPUs (figures are noisy above ~2)")
        if not a.skip_noop:
            o = overhead(tmp, a.noop_trials, a.no_reuse_trials)
            print(f"\n1) per-trial cost, no-op evaluator, resnet_like, no budget (marginal cost between "
                  f"a run of N/4 and one of N trials; fixed = the rest of the N-trial run):")
            base = o["optuna"][0]
            print(f"  optuna backend (in process, N={a.noop_trials:3d})  {1000 * base:8.1f} ms/trial   1.00x"
                  f"   fixed {o['optuna'][1]:5.1f} s")
            for key, n in (("ray_reuse_on", a.noop_trials), ("ray_reuse_off", a.no_reuse_trials)):
                per, fixed = o[key]
                print(f"  {key.replace('_', ' '):<16} (2 CPUs, N={n:3d})  {1000 * per:8.1f} ms/trial "
                      f"{per / base:6.2f}x   fixed {fixed:5.1f} s   Ray adds {1000 * (per - base):7.1f} ms/trial")
            print(f"  ray.init (local, 2 CPUs), once            {o['ray_startup_s']:8.1f} s")
        if a.skip_search:
            return
        s = search(tmp, a.search_trials, a.epochs, a.limit, a.resolution)
        print(f"\n2) small search: --trials {a.search_trials} --epochs {a.epochs} --limit {a.limit} "
              f"--resolution {a.resolution} "
              "--budget 2GFLOPs --sampler random (wall time incl. Ray start-up):")
        for name, r in s.items():
            print(f"  {name:<9} {r['seconds']:7.1f} s {r['seconds'] / s['optuna']['seconds']:6.2f}x  "
                  f"trials started {r['started']:3d} (complete {r['complete']}, pruned {r['pruned']}, "
                  f"over budget {r['infeasible']}, failed {r['failed']}), best accuracy {r['best']}, "
                  f"same architectures as optuna: {'yes' if r['archs'] == s['optuna']['archs'] else 'no'}")


if __name__ == "__main__":
    main()
