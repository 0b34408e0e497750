"""CLI: ``python -m nas.spaces list | show NAME [--budget 2GFLOPs] [--params-budget 10M]``.

``show`` prints the parameters, the space size, the seeds with their MACs and whether they
fit, and the MAC distribution and feasible fraction of random samples. MACs are
multiply-accumulates ("FLOPs" in the papers).
"""
from __future__ import annotations

import random
import sys
import time

from nas import cli
from nas.cost import human, parse_budget
#: Most random samples `show` draws (each is a costed architecture).
SAMPLES_MAX = 1_000_000


def summarize(space, budget_macs: int | None = None, params_budget: int | None = None,
              samples: int = 1000, seed: int = 0) -> dict:
    """Plain data about a space: size, seeds (cost, fit), the MAC distribution and feasible
    fraction of ``samples`` uniform random points, and, under a budget, the same figures for
    the budget-aware sampler (what training would receive)."""
    from nas.spaces.space import fits

    rng = random.Random(seed)
    start = time.perf_counter()
    uniform = [space.cost(space.draw(rng)) for _ in range(samples)]
    out = {"name": space.name, "path": str(space.path), "builder": space.builder,
           "input_shape": list(space.input_shape), "num_classes": space.num_classes,
           "size": space.size(), "parameters": [(p.name, p.describe()) for p in space.params],
           "seeds": [{"name": s.name, "macs": s.cost.macs, "params": s.cost.params, "fits": s.fits}
                     for s in space.seeds(budget_macs, params_budget)],
           "uniform": _distribution(uniform), "uniform_seconds": time.perf_counter() - start,
           "uniform_feasible": sum(fits(c, budget_macs, params_budget) for c in uniform) / max(1, samples)}
    if budget_macs or params_budget:
        start = time.perf_counter()
        drawn = [space.cost(space.sample(rng, budget_macs, params_budget)) for _ in range(samples)]
        out["sampled"] = _distribution(drawn)
        out["sampled_seconds"] = time.perf_counter() - start
        out["sampled_feasible"] = sum(fits(c, budget_macs, params_budget) for c in drawn) / max(1, samples)
    return out


def _distribution(costs: list) -> dict:
    macs = sorted(c.macs for c in costs)
    if not macs:
        return {}
    pick = lambda q: macs[min(len(macs) - 1, int(q * len(macs)))]  # noqa: E731
    return {"min": macs[0], "p10": pick(0.1), "p50": pick(0.5), "p90": pick(0.9), "max": macs[-1]}


def _size(n: float) -> str:
    return "continuous (infinite)" if n == float("inf") else (f"{n:,}" if n < 1e12 else f"{n:.3e}")


def _print_show(s: dict, budget_macs, params_budget, samples: int) -> None:
    budget = ", ".join(x for x in (f"{human(budget_macs)}MACs" if budget_macs else "",
                                   f"{human(params_budget)} params" if params_budget else "") if x)
    print(f"space {s['name']}  ({s['path']})\n  builder {s['builder']}, target {s['input_shape']} "
          f"-> {s['num_classes']} classes, size {_size(s['size'])}")
    print("parameters:")
    for name, text in s["parameters"]:
        print(f"  {name:<18} {text}")
    print(f"seeds{' (budget ' + budget + ')' if budget else ''}:")
    for seed in s["seeds"]:
        fit = ("fits" if seed["fits"] else "over budget") if budget else ""
        print(f"  {seed['name']:<18} {human(seed['macs']):>9}MACs {human(seed['params']):>9} params  {fit}")
    d = s["uniform"]
    row = lambda d: "  ".join(f"{k} {human(v)}" for k, v in d.items())  # noqa: E731
    print(f"{samples} uniform random samples: MACs {row(d)}  ({s['uniform_seconds']:.1f} s)")
    if budget:
        print(f"  feasible under {budget}: {100 * s['uniform_feasible']:.1f}%")
        print(f"{samples} budget-aware samples (what training receives): MACs {row(s['sampled'])}  "
              f"feasible {100 * s['sampled_feasible']:.1f}%  ({s['sampled_seconds']:.1f} s)")


@cli.guarded
def main(argv=None) -> int:
    """List the shipped spaces or describe one; bad input exits 2 with one line."""
    ap = cli.ArgumentParser(prog="python -m nas.spaces", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the spaces in search_spaces/")
    show = sub.add_parser("show", help="parameters, size, seeds and sampled MACs of a space")
    show.add_argument("name", help="a space name or a path to a .yaml file")
    show.add_argument("--budget", help="MAC budget, e.g. 2GFLOPs, 600M, 2e9")
    show.add_argument("--params-budget", help="parameter budget, e.g. 10M")
    show.add_argument("--samples", type=cli.int_range(0, SAMPLES_MAX), default=1000,
                      help="random samples (default 1000)")
    show.add_argument("--seed", type=cli.seed, default=0, help="random seed, 0..2**32-1")
    args = ap.parse_args(argv)
    from nas.spaces import list_spaces, load_space

    if args.cmd == "list":
        for name in list_spaces():
            space = load_space(name)
            print(f"{name:<16} {len(space.params):>3} params  size {_size(space.size()):<22} "
                  f"{len(space.seeds())} seeds  {space.description.splitlines()[0] if space.description else ''}")
        return 0
    budget = parse_budget(args.budget) if args.budget else None
    params_budget = parse_budget(args.params_budget) if args.params_budget else None
    space = load_space(args.name)
    _print_show(summarize(space, budget, params_budget, args.samples, args.seed), budget,
                params_budget, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
