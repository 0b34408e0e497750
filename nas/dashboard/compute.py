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

# Quality, best and Pareto fronts live in nas.quality (one definition for the search, export
# and dashboards); the names below are re-exported for the figures.
from nas import quality as Q
from nas.quality import (MAX, MIN, Metric, check_senses, dominates, is_number,  # noqa: F401
                         minimized, pareto_front)


# ------------------------------------------------------------------ hypervolume
def hypervolume_2d(points: Sequence[Sequence[float]], senses: Sequence[str],
                   reference: Sequence[float]) -> float:
    """Area dominated by ``points`` and bounded by the ``reference`` point (2 objectives).

    The reference is the worst acceptable corner, e.g. (accuracy 0, MACs = budget) for
    ``("max", "min")``. Points not strictly better than the reference in both objectives
    add nothing.
    """
    (ref,) = minimized([reference], senses)
    if ref is None:
        raise ValueError(f"reference point {tuple(reference)} must be finite")
    inside = sorted(p for p in minimized(points, senses)
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
    check_senses([sense], 1)
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
def parameter_effects(trials: Sequence[dict], metric: str | Metric | None = None) -> list[dict]:
    """How each search parameter relates to the quality ``metric`` (:mod:`nas.quality`;
    default accuracy) over usable trials.

    One dict per parameter, strongest effect first: ``name``, ``values`` and ``scores``
    (the scatter), ``levels`` (per distinct value: n, mean, best) and ``eta2`` (correlation
    ratio: share of the metric's variance explained by the parameter's levels, in [0, 1]).
    """
    m = Q.metric(metric)
    done = Q.finished(trials, m)
    names = sorted({k for t in done for k in (t.get("params") or {})})
    effects = []
    for name in names:
        pairs = [(t["params"][name], m.value(t)) for t in done if name in t["params"]]
        if not pairs:
            continue
        effects.append({"name": name, "values": [v for v, _ in pairs],
                        "scores": [s for _, s in pairs], "levels": _levels(pairs, m.sense),
                        "eta2": _eta_squared(pairs)})
    effects.sort(key=lambda e: (-e["eta2"], e["name"]))
    return effects


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _levels(pairs: list[tuple[Any, float]], sense: str = MAX) -> list[dict]:
    by: dict[str, list] = {}
    raw: dict[str, Any] = {}
    for v, s in pairs:
        by.setdefault(_key(v), []).append(s)
        raw[_key(v)] = v
    order = sorted(by, key=lambda k: (not is_number(raw[k]), raw[k] if is_number(raw[k]) else 0, k))
    return [{"value": raw[k], "n": len(by[k]), "mean": sum(by[k]) / len(by[k]),
             "best": (max if sense == MAX else min)(by[k])} for k in order]


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
def finished(trials: Sequence[dict], metric: str | Metric | None = None) -> list[dict]:
    """Usable trials (:func:`nas.quality.usable`) under ``metric`` (default accuracy)."""
    return Q.finished(trials, metric)


def usable(trial: dict, metric: str | Metric | None = None) -> bool:
    """:func:`nas.quality.usable`: COMPLETE, a finite quality, feasible, not a duplicate."""
    return Q.usable(trial, metric)


def best_trial(trials: Sequence[dict], metric: str | Metric | None = None) -> dict | None:
    """:func:`nas.quality.best`: best quality, then fewest MACs, then lowest number."""
    return Q.best(trials, metric)


def accuracy_front(trials: Sequence[dict], cost: str = "target_macs",
                   metric: str | Metric | None = None) -> list[dict]:
    """:func:`nas.quality.front`: the (best quality, least ``cost``) front, cheapest first."""
    return Q.front(trials, metric, cost)


def progress(trials: Sequence[dict], *, budget_macs: int | None = None,
             cost: str = "target_macs", metric: str | Metric | None = None) -> dict:
    """Search progress by trial number: each trial's quality (None if it has none), the
    best-so-far quality and the hypervolume of (quality, cost / reference cost), i.e. the
    share of the box [worst, best quality] x [0, reference cost] dominated so far.

    Accuracy spans the fixed box [0, 1]; other metrics (a loss, a proxy score) are scaled
    between the worst and best value the study has reached. The reference cost is the MAC
    budget when given, else 1.1 x the largest cost seen.
    """
    m = Q.metric(metric)
    ordered = sorted(trials, key=lambda t: t.get("number", 0))
    done = Q.finished(ordered, m)
    costs = [t.get(cost) for t in done if is_number(t.get(cost))]
    ref = float(budget_macs) if budget_macs else (1.1 * max(costs) if costs else 1.0)
    values = [m.value(t) if Q.usable(t, m) else None for t in ordered]
    if m == Q.ACCURACY:
        lo, hi = 0.0, 1.0
    else:
        seen = [v for v in values if v is not None]
        lo, hi = (min(seen), max(seen)) if seen else (0.0, 1.0)
        if m.sense == MIN:
            lo, hi = hi, lo
    span = (hi - lo) or 1.0
    points = [((v - lo) / span, t[cost] / ref) if v is not None and is_number(t.get(cost))
              else None for v, t in zip(values, ordered)]
    return {"number": [t.get("number") for t in ordered], "quality": values,
            "best": best_so_far(values, m.sense),
            "hypervolume": hypervolume_history(points, (MAX, MIN), (0.0, 1.0)),
            "reference_cost": ref, "cost": cost, "metric": m.name, "label": m.label}


def learning_curves(trials: Sequence[dict], metric: str | Metric | None = None) -> list[dict]:
    """Per-epoch validation accuracy (validation loss when ``metric`` is val_loss) of trials
    that recorded two or more epochs: [{"number", "state", "epoch": [...], "values": [...],
    "key"}], by trial number."""
    key = "val_loss" if Q.metric(metric).name == "val_loss" else "val_accuracy"
    out = []
    for t in sorted(trials, key=lambda t: t.get("number", 0)):
        eps = [e for e in t.get("epochs") or [] if is_number(e.get(key))]
        if len(eps) >= 2:
            out.append({"number": t.get("number"), "state": t.get("state"), "key": key,
                        "epoch": [e["epoch"] for e in eps], "values": [e[key] for e in eps]})
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
