"""The numbers behind the dashboard, as plain data: Pareto sets, hypervolume, best-so-far,
error EDFs, per-parameter effects, architecture summaries and DAG layouts.

Every function here takes lists and dicts (trial dicts as :class:`nas.store.TrialStore`
returns them) and returns lists and dicts; nothing here draws or imports plotly.
"""
from __future__ import annotations

import bisect
import copy
import functools
import json
import math
import re
from collections import defaultdict
from typing import Any, Iterable, Sequence

MAX, MIN = "max", "min"


# ------------------------------------------------------------------ objectives
def is_number(x: Any) -> bool:
    """True for a finite int or float (not bool, None or NaN)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_senses(senses: Sequence[str], n: int) -> list[int]:
    if len(senses) != n:
        raise ValueError(f"{len(senses)} senses given for {n}-objective points; give one "
                         f"'max' or 'min' per objective")
    signs = []
    for s in senses:
        if s not in (MAX, MIN):
            raise ValueError(f"objective sense {s!r} is not 'max' or 'min'")
        signs.append(-1 if s == MAX else 1)
    return signs


def _minimized(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[tuple | None]:
    """Points turned into all-minimize form; points with a missing/non-finite value -> None."""
    out: list[tuple | None] = []
    for p in points:
        signs = _check_senses(senses, len(p))
        out.append(tuple(s * v for s, v in zip(signs, p)) if all(is_number(v) for v in p) else None)
    return out


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """True if ``a`` is at least as good as ``b`` in every objective and better in one."""
    (ma, mb) = _minimized([a, b], senses)
    if ma is None or mb is None:
        return False
    return all(x <= y for x, y in zip(ma, mb)) and any(x < y for x, y in zip(ma, mb))


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order.

    ``senses`` gives 'max' or 'min' per objective, e.g. ``("max", "min")`` for
    (accuracy, MACs). Points with a missing or non-finite value are never on the front;
    exact duplicates of a front point are all on the front.
    """
    mins = _minimized(points, senses)
    valid = [(p, i) for i, p in enumerate(mins) if p is not None]
    if valid and len(valid[0][0]) == 2:
        return _pareto_front_2d(valid)
    front = [i for p, i in valid
             if not any(all(x <= y for x, y in zip(q, p)) and q != p for q, _ in valid)]
    return front


def _pareto_front_2d(valid: list[tuple[tuple, int]]) -> list[int]:
    # sweep by the first objective; a point is on the front if its second objective beats
    # everything with a strictly smaller first objective (ties in both are kept)
    valid = sorted(valid)
    front: list[int] = []
    best_second = math.inf
    k = 0
    while k < len(valid):
        j = k
        while j < len(valid) and valid[j][0][0] == valid[k][0][0]:
            j += 1
        group_best = valid[k][0][1]            # smallest second objective at this first value
        if group_best < best_second:
            front += [i for p, i in valid[k:j] if p[1] == group_best]
            best_second = group_best
        k = j
    return sorted(front)


def hypervolume_2d(points: Sequence[Sequence[float]], senses: Sequence[str],
                   reference: Sequence[float]) -> float:
    """Area dominated by ``points`` and bounded by the ``reference`` point (2 objectives).

    The reference is the worst acceptable corner, e.g. (accuracy 0, MACs = budget) for
    ``("max", "min")``. Points not strictly better than the reference in both objectives
    add nothing.
    """
    (ref,) = _minimized([reference], senses)
    if ref is None:
        raise ValueError(f"reference point {tuple(reference)} must be finite")
    inside = sorted(p for p in _minimized(points, senses)
                    if p is not None and p[0] < ref[0] and p[1] < ref[1])
    area, last_y = 0.0, ref[1]
    for x, y in inside:                        # ascending first objective
        if y < last_y:
            area += (ref[0] - x) * (last_y - y)
            last_y = y
    return area


def hypervolume_history(points: Sequence[Sequence[float] | None], senses: Sequence[str],
                        reference: Sequence[float]) -> list[float]:
    """Hypervolume of the first k points for k = 1..n (``None`` = a trial without a result)."""
    seen: list[Sequence[float]] = []
    out: list[float] = []
    last = 0.0
    for p in points:
        if p is not None:
            seen.append(p)
            last = hypervolume_2d(seen, senses, reference)
        out.append(last)
    return out


def best_so_far(values: Sequence[float | None], sense: str = MAX) -> list[float | None]:
    """Running best of ``values`` (``None``/non-finite entries carry the previous best)."""
    _check_senses([sense], 1)
    best: float | None = None
    out: list[float | None] = []
    for v in values:
        if is_number(v) and (best is None or (v > best if sense == MAX else v < best)):
            best = float(v)
        out.append(best)
    return out


# ------------------------------------------------------------------ EDFs (Radosavovic et al. 2019)
def edf(errors: Iterable[float], weights: Sequence[float] | None = None) -> dict:
    """Error empirical distribution function F(e) = sum_i w_i [e_i <= e] as a step curve.

    Returns ``{"x": sorted errors, "y": F at each, "n": count}``; without weights every
    model weighs 1/n.
    """
    pairs = [(float(e), 1.0 if weights is None else float(w))
             for e, w in zip(errors, weights if weights is not None else _ones())
             if is_number(e)]
    if weights is not None and len(pairs) != len(weights):
        raise ValueError("edf: need one finite error per weight")
    pairs.sort()
    total = sum(w for _, w in pairs)
    xs, ys, acc = [], [], 0.0
    for e, w in pairs:
        acc += w
        xs.append(e)
        ys.append(acc / total if total else 0.0)
    return {"x": xs, "y": ys, "n": len(pairs)}


def _ones():
    while True:
        yield 1.0


def log_bins(values: Iterable[float], k: int = 10) -> list[float]:
    """``k`` log-spaced bins spanning the positive ``values``: k + 1 edges."""
    vals = [float(v) for v in values if is_number(v) and v > 0]
    if not vals:
        raise ValueError("log_bins: no positive complexity values")
    lo, hi = math.log(min(vals)), math.log(max(vals))
    if hi == lo:
        hi = lo + 1e-9
    return [math.exp(lo + (hi - lo) * i / k) for i in range(k + 1)]


def complexity_weights(complexities: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Weights that give every non-empty complexity bin equal total mass (they sum to 1).

    This is the normalisation of Radosavovic et al. 2019 ("On Network Design Spaces for
    Visual Recognition"): comparing design spaces at a matched complexity distribution, so
    a space does not look better only because it samples bigger models. Values outside the
    edges fall in the first/last bin.
    """
    bins = [min(max(bisect.bisect_right(edges, c) - 1, 0), len(edges) - 2) for c in complexities]
    counts: dict[int, int] = defaultdict(int)
    for b in bins:
        counts[b] += 1
    k = len(counts)
    return [1.0 / (k * counts[b]) for b in bins]


def design_space_edfs(groups: dict[str, list[dict]], *, complexity: str = "target_macs",
                      k: int = 10) -> dict:
    """Plain and complexity-normalised error EDFs of COMPLETE trials, per group (space or study).

    Error is ``1 - accuracy``. All groups share one set of log-spaced complexity bins, so
    their normalised curves are comparable.
    """
    data = {name: [(1.0 - t["accuracy"], t.get(complexity)) for t in trials
                   if usable(t)]
            for name, trials in groups.items()}
    cx = [c for rows in data.values() for _, c in rows if is_number(c) and c > 0]
    edges = log_bins(cx, k) if cx else []
    out = {"edges": edges, "complexity": complexity, "groups": {}}
    for name, rows in data.items():
        errors = [e for e, _ in rows]
        entry = {"plain": edf(errors), "normalized": None}
        rated = [(e, c) for e, c in rows if is_number(c) and c > 0]
        if rated and edges:
            w = complexity_weights([c for _, c in rated], edges)
            entry["normalized"] = edf([e for e, _ in rated], w)
        out["groups"][name] = entry
    return out


# ------------------------------------------------------------------ parameter effects
def parameter_effects(trials: Sequence[dict], metric: str = "accuracy") -> list[dict]:
    """How each search parameter relates to ``metric`` over COMPLETE trials.

    One dict per parameter, strongest effect first: ``name``, ``values`` and ``scores``
    (the scatter), ``levels`` (per distinct value: n, mean, best) and ``eta2`` (correlation
    ratio: share of the metric's variance explained by the parameter's levels, in [0, 1]).
    """
    done = [t for t in trials if usable(t, metric)]
    names = sorted({k for t in done for k in (t.get("params") or {})})
    effects = []
    for name in names:
        pairs = [(t["params"][name], float(t[metric])) for t in done if name in t["params"]]
        if not pairs:
            continue
        effects.append({"name": name, "values": [v for v, _ in pairs],
                        "scores": [s for _, s in pairs], "levels": _levels(pairs),
                        "eta2": _eta_squared(pairs)})
    effects.sort(key=lambda e: (-e["eta2"], e["name"]))
    return effects


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _levels(pairs: list[tuple[Any, float]]) -> list[dict]:
    by: dict[str, list] = {}
    raw: dict[str, Any] = {}
    for v, s in pairs:
        by.setdefault(_key(v), []).append(s)
        raw[_key(v)] = v
    order = sorted(by, key=lambda k: (not is_number(raw[k]), raw[k] if is_number(raw[k]) else 0, k))
    return [{"value": raw[k], "n": len(by[k]), "mean": sum(by[k]) / len(by[k]),
             "best": max(by[k])} for k in order]


def _eta_squared(pairs: list[tuple[Any, float]]) -> float:
    scores = [s for _, s in pairs]
    mean = sum(scores) / len(scores)
    total = sum((s - mean) ** 2 for s in scores)
    if total == 0:
        return 0.0
    between = sum(lv["n"] * (lv["mean"] - mean) ** 2 for lv in _levels(pairs))
    return between / total


# ------------------------------------------------------------------ architectures
_BLOCK = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(\d+)\.")


def arch_summary(genotype_json: str | None, params: dict | None = None) -> dict:
    """What a person wants to see of an architecture, from its genotype JSON.

    ``stages``: [{"name", "depth" (blocks), "width" (output channels)}] from node ids
    scoped ``<stage>.<block>.`` (the builders' convention); ``groups``: sorted distinct
    conv group counts > 1 (grouped, not depthwise); ``se``: whether squeeze-excitation
    scopes (``.se.``) occur; ``nodes``; and the trial's space ``params`` as given.
    Unparseable genotypes give an ``error`` entry instead of raising (a dashboard shows
    what it can).
    """
    out = {"params": dict(params or {}), "stages": [], "groups": [], "se": False, "nodes": 0}
    if genotype_json:
        out.update(copy.deepcopy(_genotype_summary(genotype_json)))
    return out


@functools.lru_cache(maxsize=4096)
def _genotype_summary(genotype_json: str) -> dict:
    # cached: every figure's hover text asks again for the same trials
    from nas.errors import NasError
    from nas.genotype import Genotype
    try:
        g = Genotype.from_json(genotype_json)
        shapes = g.infer_shapes()
    except NasError as e:
        return {"error": str(e)}
    stages: dict[str, dict] = {}
    groups: set[int] = set()
    se = False
    for n in g.topological_order():
        m = _BLOCK.match(n)
        if m:
            st = stages.setdefault(m.group(1), {"name": m.group(1), "blocks": set(), "width": 0})
            st["blocks"].add(int(m.group(2)))
            st["width"] = shapes[n][0]
        se = se or ".se." in f".{n}."
        gr = g.resolved_attrs(n).get("groups")
        if isinstance(gr, int) and 1 < gr < shapes[g.inputs(n)[0]][0]:
            groups.add(gr)
    return {"nodes": len(g), "se": se, "groups": sorted(groups),
            "stages": [{"name": s["name"], "depth": len(s["blocks"]), "width": s["width"]}
                       for s in stages.values()]}


def dag_layout(genotype_json: str) -> dict:
    """Node positions for drawing a genotype: x = topological generation, y = slot in it.

    Returns ``{"nodes": [{"id", "op", "attrs", "shape", "x", "y"}], "edges": [(src, dst)],
    "output": id}``; branches of a block sit side by side, centred on y = 0.
    """
    import networkx as nx

    from nas.genotype import Genotype
    g = Genotype.from_json(genotype_json)
    shapes = g.infer_shapes()
    order = {n: i for i, n in enumerate(g.topological_order())}
    nodes = []
    for x, gen in enumerate(nx.topological_generations(g.graph)):
        gen = sorted(gen, key=order.__getitem__)
        for slot, n in enumerate(gen):
            nodes.append({"id": n, "op": g.op(n), "attrs": dict(g.attrs(n)),
                          "shape": list(shapes[n]), "x": x, "y": slot - (len(gen) - 1) / 2})
    edges = [(i, n) for n in g.graph for i in g.inputs(n)]
    return {"nodes": nodes, "edges": edges, "output": g.output}


# ------------------------------------------------------------------ trial selections
def finished(trials: Sequence[dict]) -> list[dict]:
    """COMPLETE trials that have a finite accuracy and are not marked infeasible
    (``feasible`` False: over a budget)."""
    return [t for t in trials if usable(t)]


def usable(trial: dict, metric: str = "accuracy") -> bool:
    """True for a COMPLETE trial with a finite ``metric``, not marked infeasible and not a
    repeat of an architecture evaluated earlier (``duplicate_of``: its result is reused)."""
    return (trial.get("state") == "COMPLETE" and is_number(trial.get(metric))
            and trial.get("feasible", True) is not False and trial.get("duplicate_of") is None)


def best_trial(trials: Sequence[dict]) -> dict | None:
    """The COMPLETE trial with the highest accuracy (fewest MACs, then lowest number, on ties)."""
    done = finished(trials)
    if not done:
        return None
    return min(done, key=lambda t: (-t["accuracy"], t.get("target_macs") or 0, t.get("number", 0)))


def accuracy_front(trials: Sequence[dict], cost: str = "target_macs") -> list[dict]:
    """The finished trials on the (max accuracy, min ``cost``) Pareto front, cheapest first."""
    done = [t for t in finished(trials) if is_number(t.get(cost))]
    idx = pareto_front([(t["accuracy"], t[cost]) for t in done], (MAX, MIN))
    return sorted((done[i] for i in idx), key=lambda t: (t[cost], -t["accuracy"]))


def progress(trials: Sequence[dict], *, budget_macs: int | None = None,
             cost: str = "target_macs") -> dict:
    """Search progress by trial number: each trial's accuracy (None if it has none), the
    best-so-far accuracy and the hypervolume of
    (accuracy, cost / reference) with reference (0, 1), i.e. the share of the box
    [0, 1] x [0, reference cost] dominated so far.

    The reference cost is the MAC budget when given, else 1.1 x the largest cost seen.
    """
    ordered = sorted(trials, key=lambda t: t.get("number", 0))
    costs = [t.get(cost) for t in finished(ordered) if is_number(t.get(cost))]
    ref = float(budget_macs) if budget_macs else (1.1 * max(costs) if costs else 1.0)
    points = [(t["accuracy"], t[cost] / ref)
              if usable(t) and is_number(t.get(cost))
              else None for t in ordered]
    acc = [p[0] if p else None for p in points]
    return {"number": [t.get("number") for t in ordered], "accuracy": acc,
            "best": best_so_far(acc, MAX),
            "hypervolume": hypervolume_history(points, (MAX, MIN), (0.0, 1.0)),
            "reference_cost": ref, "cost": cost}


def learning_curves(trials: Sequence[dict]) -> list[dict]:
    """Per-epoch validation accuracy of trials that recorded two or more epochs:
    [{"number", "state", "epoch": [...], "val_accuracy": [...]}], by trial number."""
    out = []
    for t in sorted(trials, key=lambda t: t.get("number", 0)):
        eps = [e for e in t.get("epochs") or [] if is_number(e.get("val_accuracy"))]
        if len(eps) >= 2:
            out.append({"number": t.get("number"), "state": t.get("state"),
                        "epoch": [e["epoch"] for e in eps],
                        "val_accuracy": [e["val_accuracy"] for e in eps]})
    return out


# ------------------------------------------------------------------ the zoo
def classic_nets() -> list[dict]:
    """Zoo entries with a published top-1: name, top1 (%), params and MACs counted at the
    entry's input spec, input_shape, family, source."""
    from nas.cost import count
    from nas.zoo import ZOO
    rows = []
    for name, e in ZOO.items():
        if e.top1 is None:
            continue
        c = count(e.builder())
        rows.append({"name": name, "top1": float(e.top1), "params": c.params, "macs": c.macs,
                     "source": e.source, "input_shape": list(e.input_shape),
                     "family": e.family})
    return rows
