"""Sampling a search space under a FLOP budget: feasibility, depth distribution, speed.

    python experiments/benchmarks/bench_spaces_sampling.py [--space resnet_like] [--budget 2GFLOPs]
                                                     [-n 1000] [--tpe-trials 150] [--seed 0]

For ``n`` configurations each it reports (MACs = multiply-accumulates, "FLOPs" in papers):
  * uniform: plain random draws, no budget (the unconstrained reference);
  * rejection: the uniform draws that happen to fit (what pruning after the fact keeps);
  * budget-aware: ``SearchSpace.sample(rng, budget)`` (what random search hands to training);
  * Optuna: RandomSampler + ``suggest`` (proposals, infeasible ones are never trained),
    an Optuna sampler drawing ``SearchSpace.sample`` (feasible by construction), TPE reading ``set_constraint`` on a
    toy objective that rewards MACs (so it must learn the budget), and TPE with 20
    budget-aware startup trials and a noise objective (it learns the constraint alone);
with the feasible fraction, the distribution of total depth (blocks), MACs, and the time
to sample + build + count one genotype, as a ratio to building and counting the space's
first seed (the baseline, measured in the same run). It also times what sampling itself
costs: a budget-aware sample plus its cost as ``SearchSpace`` computes it (counted without
building, :mod:`nas.counting`) against the same with every cost taken from the built
genotype (before counting existed), in alternating rounds of 10 points (CPU time). Results go to
experiments/results/spaces_sampling_<space>.json. Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import sys
import time
from pathlib import Path

from nas.cost import count, human, parse_budget
from nas.spaces import load_space

RESULTS = Path(__file__).resolve().parents[1] / "results"


def depth(space, params: dict) -> int:
    """Total number of blocks: the sum of the active ``depth*`` parameters."""
    return sum(v for k, v in params.items() if k.startswith("depth"))


def describe(space, configs: list[dict], budget: int) -> dict:
    """Feasible fraction, depth histogram and quantiles, MAC quantiles of ``configs``."""
    if not configs:
        return {"n": 0}
    costs = [space.cost(p) for p in configs]
    depths = sorted(depth(space, p) for p in configs)
    macs = sorted(c.macs for c in costs)
    q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]  # noqa: E731
    return {"n": len(configs), "feasible": sum(m <= budget for m in macs) / len(macs),
            "depth_mean": statistics.mean(depths),
            "depth_quantiles": {f"p{int(100 * f)}": q(depths, f) for f in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "depth_histogram": dict(sorted(collections.Counter(5 * (d // 5) for d in depths).items())),
            "macs_quantiles": {f"p{int(100 * f)}": q(macs, f) for f in (0.1, 0.5, 0.9)},
            "macs_over_budget_p50": q(macs, 0.5) / budget}


def timed(fn, n: int, cpu: dict | None = None, key: str = "") -> tuple[list, float]:
    """``n`` results of ``fn`` and the wall seconds per call (CPU seconds per call into
    ``cpu[key]``: less noisy on a shared machine)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    out = [fn() for _ in range(n)]
    if cpu is not None:
        cpu[key] = (time.process_time() - start_cpu) / n
    return out, (time.perf_counter() - start) / n


def feasible_sampler(space, budget: int, seed: int):
    """An Optuna sampler whose every trial is a ``space.sample`` draw (feasible by
    construction); enqueued points still take precedence."""
    import optuna

    class FeasibleRandomSampler(optuna.samplers.BaseSampler):
        def __init__(self):
            self.rng, self.draws = random.Random(seed), {}

        def infer_relative_search_space(self, study, trial) -> dict:
            return {}

        def sample_relative(self, study, trial, search_space) -> dict:
            return {}

        def before_trial(self, study, trial) -> None:
            self.draws[trial._trial_id] = space.sample(self.rng, budget)

        def sample_independent(self, study, trial, name, distribution):
            return self.draws[trial._trial_id][name]

    return FeasibleRandomSampler()


def optuna_runs(space, budget: int, n: int, tpe_trials: int, seed: int) -> dict:
    """Feasible fractions of configurations proposed through Optuna."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for label, sampler in (("optuna_random_suggest", optuna.samplers.RandomSampler(seed=seed)),
                           ("optuna_feasible_sampler", feasible_sampler(space, budget, seed))):
        study = optuna.create_study(sampler=sampler)
        configs = []
        for _ in range(n):
            trial = study.ask()
            configs.append(space.suggest(trial, budget))
            study.tell(trial, 0.0)
        out[label] = describe(space, configs, budget)
    # TPE with the constraint: the toy objective (log MACs) pushes towards the budget's edge
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=20))
    configs = []
    for _ in range(tpe_trials):
        trial = study.ask()
        params = space.suggest(trial, budget)
        configs.append(params)
        study.tell(trial, float(space.cost(params).macs) / budget)
    half = tpe_trials // 2
    out["optuna_tpe_constraint_last_half"] = describe(space, configs[half:], budget)
    out["optuna_tpe_constraint_first_half"] = describe(space, configs[:half], budget)
    # TPE as nas.search runs it: the startup trials are budget-aware samples (enqueued), the
    # objective is noise, so what TPE learns is the constraint alone
    rng = random.Random(seed)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=20))
    configs = []
    for i in range(tpe_trials):
        if i < 20:
            study.enqueue_trial(space.sample(rng, budget))
        trial = study.ask()
        configs.append(space.suggest(trial, budget))
        study.tell(trial, rng.random())
    out["optuna_tpe_feasible_startup_after_startup"] = describe(space, configs[20:], budget)
    return out


def counted_vs_built(name: str, budget: int, n: int, n_built: int, seed: int) -> dict:
    """CPU seconds per budget-aware sample + cost: counted (the space as shipped) and built
    (each cost from ``count(build(point))``), alternating rounds of 10 points."""
    import functools

    counted, built = load_space(name), load_space(name)
    built._cost = functools.lru_cache(maxsize=8192)(lambda key: count(built.build(dict(key))))
    rng_a, rng_b = random.Random(seed), random.Random(seed)
    t = {"counted": 0.0, "built": 0.0}
    done = {"counted": 0, "built": 0}
    while done["counted"] < n or done["built"] < n_built:
        for key, space, rng, limit in (("counted", counted, rng_a, n), ("built", built, rng_b, n_built)):
            k = min(10, limit - done[key])
            if k <= 0:
                continue
            start = time.process_time()
            for _ in range(k):
                space.cost(space.sample(rng, budget))
            t[key] += time.process_time() - start
            done[key] += k
    return {"counted_ms": 1e3 * t["counted"] / n, "built_ms": 1e3 * t["built"] / n_built,
            "n_counted": n, "n_built": n_built}


def main(argv=None) -> int:
    """Run the benchmark and print its table; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--budget", default="2GFLOPs")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--tpe-trials", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-built", type=int, default=100,
                    help="points sampled with built costs (the slow reference)")
    args = ap.parse_args(argv)
    space, budget = load_space(args.space), parse_budget(args.budget)
    rng = random.Random(args.seed)

    import os

    load_start = os.getloadavg()[0]
    sampling = counted_vs_built(space.name, budget, args.n, args.n_built, args.seed)
    seed_params = space.seeds()[0].params
    cpu: dict = {}
    _, baseline = timed(lambda: count(space.build(seed_params)), 50, cpu, "baseline_build_count_seed")

    space._cost.cache_clear()
    uniform, t_uniform = timed(lambda: (lambda p: (p, count(space.build(p))))(space.draw(rng)), args.n,
                               cpu, "uniform_sample_build_count")
    uniform_params = [p for p, _ in uniform]
    rejection = [p for p, c in uniform if c.macs <= budget]

    space._cost.cache_clear()
    aware, t_aware = timed(lambda: (lambda p: (p, count(space.build(p))))(space.sample(rng, budget)), args.n,
                           cpu, "budget_aware_sample_build_count")
    aware_params = [p for p, _ in aware]

    results = {"space": space.name, "budget_macs": budget, "n": args.n, "seed": args.seed,
               "seconds_per_genotype": {"baseline_build_count_seed": baseline,
                                        "uniform_sample_build_count": t_uniform,
                                        "budget_aware_sample_build_count": t_aware},
               "cpu_seconds_per_genotype": cpu,
               "sample_and_cost_cpu": sampling, "load_average": [load_start, os.getloadavg()[0]],
               "uniform": describe(space, uniform_params, budget),
               "rejection": describe(space, rejection, budget),
               "budget_aware": describe(space, aware_params, budget)}
    results.update(optuna_runs(space, budget, min(args.n, 300), args.tpe_trials, args.seed))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"spaces_sampling_{space.name}.json"
    path.write_text(json.dumps(results, indent=1))
    report(results, path)
    return 0


def report(r: dict, path: Path) -> None:
    """Print the table."""
    print(f"{r['space']} under {human(r['budget_macs'])}MACs, n={r['n']} (seed {r['seed']})")
    print(f"{'sampler':<42}{'n':>6}{'feasible':>10}{'depth mean':>12}  depth p10/p50/p90   MACs p10/p50/p90")
    for key in ("uniform", "rejection", "budget_aware", "optuna_random_suggest", "optuna_feasible_sampler",
                "optuna_tpe_constraint_first_half", "optuna_tpe_constraint_last_half",
                "optuna_tpe_feasible_startup_after_startup"):
        d = r[key]
        if not d.get("n"):
            print(f"{key:<42}{0:>6}")
            continue
        dq, mq = d["depth_quantiles"], d["macs_quantiles"]
        print(f"{key:<42}{d['n']:>6}{100 * d['feasible']:>9.1f}%{d['depth_mean']:>12.2f}  "
              f"{dq['p10']:>4}/{dq['p50']:>3}/{dq['p90']:<3}         "
              + "/".join(human(mq[k], 2) for k in ("p10", "p50", "p90")))
    for key in ("uniform", "rejection", "budget_aware"):
        print(f"depth histogram (5-block bins) {key:<14} {r[key].get('depth_histogram')}")
    t = r["seconds_per_genotype"]
    base = t["baseline_build_count_seed"]
    print(f"time per genotype: baseline (build+count the first seed) {1e3 * base:.1f} ms; "
          f"uniform sample+build+count {1e3 * t['uniform_sample_build_count']:.1f} ms "
          f"({t['uniform_sample_build_count'] / base:.2f}x); budget-aware sample+build+count "
          f"{1e3 * t['budget_aware_sample_build_count']:.1f} ms ({t['budget_aware_sample_build_count'] / base:.2f}x); "
          f"1,000 budget-aware genotypes: {1000 * t['budget_aware_sample_build_count']:.1f} s")
    c = r["cpu_seconds_per_genotype"]
    print(f"CPU time per genotype: baseline {1e3 * c['baseline_build_count_seed']:.1f} ms; uniform "
          f"{1e3 * c['uniform_sample_build_count']:.1f} ms; budget-aware {1e3 * c['budget_aware_sample_build_count']:.1f} ms "
          f"({c['budget_aware_sample_build_count'] / c['baseline_build_count_seed']:.2f}x baseline)")
    sc = r["sample_and_cost_cpu"]
    print(f"budget-aware sample + cost, CPU time per point: counted {sc['counted_ms']:.2f} ms "
          f"(n={sc['n_counted']}), from the built genotype {sc['built_ms']:.2f} ms (n={sc['n_built']}): "
          f"{sc['built_ms'] / sc['counted_ms']:.1f}x faster; load average "
          f"{r['load_average'][0]:.1f} -> {r['load_average'][1]:.1f}")
    print(f"results: {path}")


if __name__ == "__main__":
    sys.exit(main())
