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
CONFIDENCE = 0.95
N_BOOT = 1000
MAX_BINS = 5        # ordinal parameters with more distinct values are shown (and split) in bins


def parameter_effects(trials: Sequence[dict], metric: str | Metric | None = None, *,
                      n_boot: int = N_BOOT, seed: int = 0,
                      confidence: float = CONFIDENCE) -> list[dict]:
    """How each search parameter relates to the quality ``metric`` (:mod:`nas.quality`;
    default accuracy) over usable trials, with uncertainty. Effects are signed by quality:
    ``rho`` > 0 means larger values are better (higher accuracy, or lower validation loss).

    Ordinal parameters (every value a number: depths, widths, kernels, expansion ratios;
    bools as 0/1) are measured by their order: Spearman's rank correlation ``rho`` between
    the value and the metric, signed (positive: larger values score higher). Unordered
    parameters with three or more values (strings) are measured by epsilon-squared of the
    metric's ranks (the rank ANOVA's share of variance explained, adjusted for the number
    of levels, so it is about 0 for noise and may be negative); two-valued strings are
    ordered alphabetically and get a ``rho``.

    Every effect has a percentile bootstrap interval (``low``, ``high``; ``n_boot``
    resamples of the trials, fixed ``seed``) at ``confidence`` and the number of trials
    behind it (``n``); ``includes_zero`` is True when the interval contains 0 (or there are
    too few trials for an interval): no evidence of an effect. ``strength`` is the share of
    rank variance explained (rho squared, or epsilon-squared) and orders effects with
    evidence first, strongest first, then the others by strength.

    Each dict also has ``values``/``scores`` (the scatter), ``levels`` (per distinct value:
    n, mean, best) and ``groups`` (the display and EDF-split groups: every value, or up to
    :data:`MAX_BINS` bins of adjacent values with similar counts for ordinal parameters
    with more values; each with ``label``, ``n``, ``mean`` and a normal-theory interval of
    the mean ``low``/``high``).
    """
    import numpy as np

    m = Q.metric(metric)
    done = Q.finished(trials, m)
    sign = 1.0 if m.sense == MAX else -1.0
    names = sorted({k for t in done for k in (t.get("params") or {})})
    rng = np.random.default_rng(seed)
    effects = []
    for name in names:
        pairs = [(t["params"][name], m.value(t)) for t in done if name in t["params"]]
        keys = {_key(v) for v, _ in pairs}
        if len(keys) < 2:
            continue                       # never varied: nothing to say
        values = [v for v, _ in pairs]
        scores = np.array([s for _, s in pairs])
        good = sign * scores                # oriented: larger is better
        ordinal = all(_is_ordinal(v) for v in values) or len(keys) == 2
        if ordinal:
            x = np.array([_order_value(v, values) for v in values], dtype=float)
            stat, effect = "spearman", _spearman_rows(x[None, :], good[None, :])[0]
            boot = _bootstrap(lambda idx: _spearman_rows(x[idx], good[idx]), len(x), n_boot, rng)
            strength = effect ** 2 if math.isfinite(effect) else 0.0
        else:
            codes = np.unique([_key(v) for v in values], return_inverse=True)[1]
            stat, effect = "epsilon2", _epsilon2_rows(codes[None, :], good[None, :])[0]
            boot = _bootstrap(lambda idx: _epsilon2_rows(codes[idx], good[idx]), len(codes),
                              n_boot, rng)
            strength = max(effect, 0.0) if math.isfinite(effect) else 0.0
        low = high = None
        if boot is not None:
            a = (1 - confidence) / 2
            low, high = (float(q) for q in np.quantile(boot, [a, 1 - a]))
        includes_zero = low is None or low <= 0 <= high
        levels = _levels(pairs, m.sense)
        effects.append({"name": name, "metric": m.name, "sense": m.sense, "kind": "ordinal" if ordinal else "categorical",
                        "statistic": stat, "effect": float(effect), "low": low, "high": high,
                        "includes_zero": includes_zero, "strength": float(strength),
                        "n": len(pairs), "values": values, "scores": [float(s) for s in scores],
                        "levels": levels, "groups": _groups(pairs, ordinal)})
    effects.sort(key=lambda e: (e["includes_zero"], -e["strength"], e["name"]))
    return effects


def detectable_rho(n: int, confidence: float = CONFIDENCE) -> float | None:
    """The smallest |Spearman rho| that ``n`` trials tell apart from zero at ``confidence``
    (Fisher z approximation); None for n < 5."""
    if n < 5:
        return None
    z = _normal_quantile(1 - (1 - confidence) / 2)
    return math.tanh(z / math.sqrt(n - 3))


def sample_size_note(effects: Sequence[dict], confidence: float = CONFIDENCE) -> str:
    """One sentence on what the sample can and cannot show (empty when there are no effects)."""
    if not effects:
        return ""
    n = max(e["n"] for e in effects)
    k = len(effects)
    rho = detectable_rho(n, confidence)
    parts = [f"{n} trials, {k} parameters"]
    if rho is None:
        parts.append("too few trials for any interval: nothing can be told from noise")
    else:
        parts.append(f"an ordinal effect must reach |rho| > {rho:.2f} to be told from noise "
                     f"at {confidence:.0%}")
    parts.append(f"about {k * (1 - confidence):.1f} of {k} intervals exclude zero by chance alone")
    if n < 30:
        parts.insert(0, "SMALL SAMPLE")
    return "; ".join(parts) + "."


def _is_ordinal(v: Any) -> bool:
    return isinstance(v, bool) or is_number(v)


def _order_value(v: Any, values: Sequence[Any]) -> float:
    """A number that orders ``v`` among ``values``: the value itself (bools 0/1), else the
    position of its key among the sorted distinct keys (two-valued strings)."""
    if _is_ordinal(v) and all(_is_ordinal(u) for u in values):
        return float(v)
    return float(sorted({_key(u) for u in values}).index(_key(v)))


def _bootstrap(stat, n: int, n_boot: int, rng) -> Any:
    """``n_boot`` values of ``stat`` over resamples of the n trials (non-finite replicates,
    e.g. a resample where the parameter does not vary, dropped); None when n < 4 or fewer
    than half the replicates are finite."""
    import numpy as np

    if n < 4 or n_boot < 1:
        return None
    out = []
    for lo in range(0, n_boot, 250):         # chunks bound the memory to 250 x n
        idx = rng.integers(0, n, size=(min(250, n_boot - lo), n))
        out.append(stat(idx))
    vals = np.concatenate(out)
    vals = vals[np.isfinite(vals)]
    return vals if len(vals) >= n_boot / 2 else None


def _avg_ranks_rows(a):
    """Average ranks (ties share their mean rank, 0-based) of each row of a 2-D array."""
    import numpy as np

    a = np.asarray(a, dtype=float)
    rows, n = a.shape
    dense = np.unique(a, return_inverse=True)[1].reshape(rows, n)
    m = int(dense.max()) + 1 if dense.size else 1
    flat = (dense + np.arange(rows)[:, None] * m).ravel()
    srt = np.sort(flat)
    lo = np.searchsorted(srt, flat, "left")
    hi = np.searchsorted(srt, flat, "right")
    return ((lo + hi - 1) / 2).reshape(rows, n) - (np.arange(rows) * n)[:, None]


def _spearman_rows(x, y):
    """Spearman's rho of each row pair (NaN where a row does not vary)."""
    import numpy as np

    rx, ry = _avg_ranks_rows(np.atleast_2d(x)), _avg_ranks_rows(np.atleast_2d(y))
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def _epsilon2_rows(codes, y):
    """Epsilon-squared of the ranks of ``y`` grouped by integer ``codes``, per row:
    (SS_between - (k - 1) MS_within) / SS_total, k = levels present in the row."""
    import numpy as np

    codes, r = np.atleast_2d(codes), _avg_ranks_rows(np.atleast_2d(y))
    rows, n = r.shape
    k_all = int(codes.max()) + 1
    onehot = codes[:, :, None] == np.arange(k_all)[None, None, :]          # rows x n x k
    cnt = onehot.sum(axis=1)
    sums = (onehot * r[:, :, None]).sum(axis=1)
    mean = r.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        gmean = np.where(cnt > 0, sums / np.where(cnt > 0, cnt, 1), 0.0)
        ssb = (cnt * (gmean - mean) ** 2).sum(axis=1)
        sst = ((r - mean) ** 2).sum(axis=1)
        k = (cnt > 0).sum(axis=1)
        msw = (sst - ssb) / (n - k)
        eps = (ssb - (k - 1) * msw) / sst
    return np.where((sst > 0) & (k >= 2) & (n > k), eps, np.nan)


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist
    return NormalDist().inv_cdf(p)


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _levels(pairs: list[tuple[Any, float]], sense: str = MAX) -> list[dict]:
    by: dict[str, list] = {}
    raw: dict[str, Any] = {}
    for v, s in pairs:
        by.setdefault(_key(v), []).append(s)
        raw[_key(v)] = v
    order = sorted(by, key=lambda k: (not _is_ordinal(raw[k]),
                                      float(raw[k]) if _is_ordinal(raw[k]) else 0, k))
    return [{"value": raw[k], "n": len(by[k]), "mean": sum(by[k]) / len(by[k]),
             "best": (max if sense == MAX else min)(by[k])} for k in order]


def _groups(pairs: list[tuple[Any, float]], ordinal: bool) -> list[dict]:
    """Display groups: the levels, or for ordinal parameters with more than MAX_BINS values,
    MAX_BINS bins of adjacent values with about equal trial counts (a value never split)."""
    levels = _levels(pairs)
    by: dict[str, list[float]] = {}
    for v, s in pairs:
        by.setdefault(_key(v), []).append(s)
    if not ordinal or len(levels) <= MAX_BINS:
        chunks = [[lv] for lv in levels]
    else:
        total, chunks, cur, filled = len(pairs), [], [], 0
        for i, lv in enumerate(levels):
            cur.append(lv)
            filled += lv["n"]
            left = len(levels) - i - 1
            if (filled >= total * (len(chunks) + 1) / MAX_BINS or left == MAX_BINS - len(chunks) - 1) \
                    and len(chunks) < MAX_BINS - 1 and left > 0:
                chunks.append(cur)
                cur = []
        if cur:
            chunks.append(cur)
    out = []
    for chunk in chunks:
        scores = [s for lv in chunk for s in by[_key(lv["value"])]]
        lo_v, hi_v = chunk[0]["value"], chunk[-1]["value"]
        label = _fmt(lo_v) if len(chunk) == 1 else f"{_fmt(lo_v)}-{_fmt(hi_v)}"
        n = len(scores)
        mean = sum(scores) / n
        half = None
        if n >= 2:
            sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
            half = _normal_quantile(1 - (1 - CONFIDENCE) / 2) * sd / math.sqrt(n)
        out.append({"label": label, "values": [lv["value"] for lv in chunk], "n": n,
                    "mean": mean, "low": None if half is None else mean - half,
                    "high": None if half is None else mean + half})
    return out


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def edf_value(m: Metric) -> tuple[str, Any]:
    """What an EDF of quality ``m`` counts, smaller being better: ('validation error',
    1 - accuracy), the metric itself when minimized (a loss), else its negative."""
    if m.name == "accuracy":
        return "validation error (1 - accuracy)", lambda v: 1.0 - v
    if m.sense == MIN:
        return m.label, lambda v: v
    return f"-{m.name}", lambda v: -v


def split_edfs(trials: Sequence[dict], effect: dict, metric: str | Metric | None = None) -> dict:
    """EDFs of ``trials`` split by the groups of one parameter effect (see
    :func:`parameter_effects`): ``{group label: edf}`` of :func:`edf_value` (error =
    1 - accuracy by default)."""
    m = Q.metric(metric if metric is not None else effect.get("metric"))
    _, to = edf_value(m)
    member = {_key(v): g["label"] for g in effect["groups"] for v in g["values"]}
    errors: dict[str, list[float]] = {g["label"]: [] for g in effect["groups"]}
    for t in trials:
        if Q.usable(t, m) and effect["name"] in (t.get("params") or {}):
            label = member.get(_key(t["params"][effect["name"]]))
            if label is not None:
                errors[label].append(to(m.value(t)))
    return {label: edf(e) for label, e in errors.items()}


# ------------------------------------------------------------------ samples
def sample_kind(study: dict, trials: Sequence[dict] = ()) -> dict:
    """Whether a study's trials are an unbiased sample of its design space.

    A study is a random sample when its sampler was ``random`` (``python -m nas.sweep``, or
    ``nas.search --sampler random``): every architecture was drawn from the space's own
    distribution under the budget, independently of results. Seed architectures (classic
    nets queued by name) are fixed points, not draws: they are left out of the sample.
    Any other sampler chose its points from earlier results (TPE, NSGA-II, ...), so its
    EDFs and effects describe where the sampler went, not the space.

    Returns ``{"unbiased": bool, "sampler": name, "why": text, "trials": the sample}``.
    """
    config = study.get("config") or {}
    sampler = config.get("sampler") or "unknown"
    seeds = [t for t in trials if t.get("seed_name")]
    sample = [t for t in trials if not t.get("seed_name") and not t.get("baseline")]
    if sampler == "random":
        why = (f"random sample of the space under the budget (sampler random{', sweep' if config.get('sweep') else ''})"
               + (f"; {len(seeds)} seed architecture(s) left out" if seeds else ""))
        return {"unbiased": True, "sampler": sampler, "why": why, "trials": sample}
    why = (f"BIASED sample: sampler {sampler} chose its architectures from earlier results"
           + (f" and {len(seeds)} are seed architectures" if seeds else "")
           + "; for an unbiased EDF of the space run python -m nas.sweep")
    return {"unbiased": False, "sampler": sampler, "why": why, "trials": list(trials)}


# ------------------------------------------------------------------ architectures
_BLOCK = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(\d+)\.")


def arch_summary(genotype_json: str | None, params: dict | None = None) -> dict:
    """What a person wants to see of an architecture, from its genotype JSON.

    ``stages``: [{"name", "depth" (blocks), "width" (output channels)}] from node ids
    scoped ``<stage>.<block>.`` (the builders' convention); ``groups``: sorted distinct
    conv group counts > 1 (grouped, not depthwise); ``depthwise``: how many convs are
    depthwise (groups = input channels); ``se``: whether squeeze-excitation
    scopes (``.se.``) occur; ``nodes``; and the trial's space ``params`` as given.
    Unparseable genotypes give an ``error`` entry instead of raising (a dashboard shows
    what it can).
    """
    out = {"params": dict(params or {}), "stages": [], "groups": [], "depthwise": 0,
           "se": False, "nodes": 0}
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
    depthwise = 0
    se = False
    for n in g.topological_order():
        m = _BLOCK.match(n)
        if m:
            st = stages.setdefault(m.group(1), {"name": m.group(1), "blocks": set(), "width": 0})
            st["blocks"].add(int(m.group(2)))
            st["width"] = shapes[n][0]
        se = se or ".se." in f".{n}."
        gr = g.resolved_attrs(n).get("groups")
        if isinstance(gr, int) and gr > 1 and g.inputs(n):
            if gr < shapes[g.inputs(n)[0]][0]:
                groups.add(gr)
            else:
                depthwise += 1
    return {"nodes": len(g), "se": se, "groups": sorted(groups), "depthwise": depthwise,
            "stages": [{"name": s["name"], "depth": len(s["blocks"]), "width": s["width"]}
                       for s in stages.values()]}


def conv_text(summary: dict) -> str:
    """How an architecture's convs are grouped, in words: 'depthwise (17 convs), grouped
    (groups 4)', or 'dense (groups 1)' when every conv is dense."""
    parts = []
    if summary.get("depthwise"):
        parts.append(f"depthwise ({summary['depthwise']} conv{'s' if summary['depthwise'] > 1 else ''})")
    if summary.get("groups"):
        parts.append(f"grouped (groups {', '.join(map(str, summary['groups']))})")
    return ", ".join(parts) or "dense (groups 1)"


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
    """Per-epoch validation accuracy (validation loss when ``metric`` is a loss) of trials
    that recorded two or more epochs: [{"number", "state", "epoch": [...], "values": [...],
    "key"}], by trial number."""
    key = "val_loss" if Q.metric(metric).name in ("val_loss", "train_val_loss") else "val_accuracy"
    out = []
    for t in sorted(trials, key=lambda t: t.get("number", 0)):
        eps = [e for e in t.get("epochs") or [] if is_number(e.get(key))]
        if len(eps) >= 2:
            out.append({"number": t.get("number"), "state": t.get("state"), "key": key,
                        "epoch": [e["epoch"] for e in eps], "values": [e[key] for e in eps]})
    return out


# ------------------------------------------------------------------ baselines
def seed_noise(baselines: Sequence[dict], study: dict | None = None,
               metric: str | Metric | None = None) -> dict | None:
    """The seed-to-seed standard deviation of one run's ``metric`` under the study's
    protocol: the study's calibrated value (``config["seed_noise"]``) when it has one, else
    pooled from baselines trained on two or more seeds; None when neither exists.

    Returns ``{"sd", "source", "n"}`` (n: nets with repeated seeds, or None)."""
    m = Q.metric(metric)
    cal = ((study or {}).get("config") or {}).get("seed_noise")
    if is_number(cal):
        return {"sd": float(cal), "source": "protocol calibration", "n": None}
    by: dict[str, list[float]] = defaultdict(list)
    for b in baselines:
        if b.get("state") == "COMPLETE" and m.value(b) is not None:
            by[b["name"]].append(m.value(b))
    ss, dof, nets = 0.0, 0, 0
    for vals in by.values():
        if len(vals) >= 2:
            m = sum(vals) / len(vals)
            ss += sum((v - m) ** 2 for v in vals)
            dof += len(vals) - 1
            nets += 1
    if not dof:
        return None
    return {"sd": math.sqrt(ss / dof), "source": f"{nets} baseline net(s) on several seeds",
            "n": nets}


def baseline_runs(baselines: Sequence[dict], study: dict | None = None,
                  metric: str | Metric | None = None) -> list[dict]:
    """One entry per baseline net: its run with the study's own training seed (the seed
    every search trial used) when stored, else its first COMPLETE run; the mean over seeds
    is kept as ``mean`` and the seed count as ``runs``."""
    m = Q.metric(metric)
    seed = ((study or {}).get("config") or {}).get("seed")
    by: dict[str, list[dict]] = defaultdict(list)
    for b in baselines:
        if b.get("state") == "COMPLETE" and m.value(b) is not None:
            by[b["name"]].append(b)
    out = []
    for name, runs in by.items():
        pick = next((b for b in runs if b.get("seed") == seed), runs[0])
        out.append({**pick, "runs": len(runs),
                    "mean": sum(m.value(b) for b in runs) / len(runs)})
    return sorted(out, key=lambda b: (b.get("target_macs") or 0, b["name"]))


def baseline_verdict(trials: Sequence[dict], baselines: Sequence[dict],
                     study: dict | None = None, metric: str | Metric | None = None) -> dict:
    """Does the best found net beat the best baseline at <= its MACs, and by how much
    relative to the seed-to-seed noise?

    ``metric`` defaults to the study's own (:func:`nas.quality.study_metric`); ``diff`` is
    signed so that > 0 means the found net is better. Returns ``{"status", "found",
    "baseline", "diff", "noise", "text"}``; status is one of
    ``no-trials``, ``no-baselines``, ``no-cheaper-baseline``, ``beats``, ``beats-within-noise``,
    ``ties-or-loses``, ``loses``. The text is the one-line answer. A difference counts as
    beyond noise when it exceeds twice the standard deviation of a difference of two runs
    (2 x sqrt(2) x sd); the found net is the best of many trials, which favours it.
    """
    from nas.cost import human

    m = Q.metric(metric) if metric is not None else Q.study_metric(study, trials)
    metric = m.name
    found = Q.best([t for t in trials if not t.get("baseline")], m)
    runs = baseline_runs(baselines, study, m)
    out = {"status": "", "found": found, "baseline": None, "diff": None,
           "noise": seed_noise(baselines, study, m), "text": ""}
    if found is None:
        out.update(status="no-trials", text="Found vs baselines: no finished search trial yet.")
        return out
    f_macs = found.get("target_macs")
    f_txt = (f"best found net (trial {found.get('number')}: {metric} {m.value(found):.4f}, "
             f"{human(f_macs)}MACs)" if is_number(f_macs) else
             f"best found net (trial {found.get('number')}: {metric} {m.value(found):.4f})")
    if not runs:
        out.update(status="no-baselines",
                   text=f"Found vs baselines: no baselines trained under this study's protocol; "
                        f"run python -m nas.baselines --storage DB --study NAME. ({f_txt})")
        return out
    cheaper = [b for b in runs if is_number(f_macs) and is_number(b.get("target_macs"))
               and b["target_macs"] <= f_macs]
    if not cheaper:
        cheapest = min(runs, key=lambda b: b.get("target_macs") or 0)
        out.update(status="no-cheaper-baseline",
                   text=f"Found vs baselines: no baseline at <= {human(f_macs)}MACs (cheapest: "
                        f"{cheapest['name']}, {human(cheapest['target_macs'])}MACs); {f_txt}.")
        return out
    base = min(cheaper, key=lambda b: (m.rank(m.value(b)), b.get("target_macs") or 0))
    diff = (m.value(found) - m.value(base)) * (1 if m.sense == MAX else -1)   # > 0: found better
    out.update(baseline=base, diff=diff)
    noise = out["noise"]
    if noise is None:
        judged = "noise unknown (train baselines with --seeds 2 or calibrate the protocol)"
        status = "beats" if diff > 0 else "loses"
    else:
        band = 2 * math.sqrt(2) * noise["sd"]
        ratio = abs(diff) / (math.sqrt(2) * noise["sd"]) if noise["sd"] > 0 else math.inf
        judged = (f"{ratio:.1f}x the sd of a two-run difference (seed-to-seed sd "
                  f"{noise['sd']:.4f}, from {noise['source']}): "
                  + ("beyond noise" if abs(diff) > band else "within noise"))
        status = ("beats" if diff > band else "beats-within-noise" if diff > 0
                  else "ties-or-loses" if diff > -band else "loses")
    verb = "beats" if diff > 0 else ("ties" if diff == 0 else "does not beat")
    by = "by" if m.sense == MAX else "by (loss lower by)"
    budget = (study or {}).get("budget_macs")
    dearer = [b for b in runs if b not in cheaper and is_number(b.get("target_macs"))
              and (budget is None or b["target_macs"] <= budget)
              and m.better(m.value(b), m.value(base))]
    also = ""
    if dearer:
        b = min(dearer, key=lambda b: (m.rank(m.value(b)), b["target_macs"]))
        also = (f" The best baseline within the budget costs more MACs than the found net: "
                f"{b['name']} ({metric} {m.value(b):.4f}, {human(b['target_macs'])}MACs).")
    out.update(status=status, dearer=dearer,
               text=f"Found vs baselines: the {f_txt} {verb} the best baseline at <= its MACs "
                    f"({base['name']}: {metric} {m.value(base):.4f}, "
                    f"{human(base['target_macs'])}MACs) {by} {diff:+.4f}; {judged}.{also}")
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
