"""Thin functions turning the plain data of :mod:`nas.dashboard.compute` into Plotly figures.

Any user text placed in a figure (study and parameter names, seed names, values) goes
through :func:`esc`: plotly.js reads label strings as a small HTML subset, so escaping is
what makes ``<script>`` render as text.
"""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

from nas.dashboard import compute as C

TEMPLATE = "plotly_white"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
COSTS = {"target_macs": ("MACs (target spec)", 1e9, "GMACs"),
         "target_params": ("params (target spec)", 1e6, "M"),
         "latency_ms": ("latency", 1.0, "ms")}


def esc(text: Any) -> str:
    """``text`` as a string that plotly.js shows literally."""
    return html.escape(str(text), quote=False)


def _go():
    import plotly.graph_objects as go
    return go


def _human(n: float | None) -> str:
    from nas.cost import human
    return "n/a" if n is None else human(n)


def summary_text(trial: dict, metric: "C.Metric | str | None" = None) -> str:
    """Hover text for a trial: number, quality, costs, stages, groups, SE and params."""
    m = C.Q.metric(metric)
    s = C.arch_summary(trial.get("genotype"), trial.get("params"))
    v = m.value(trial)
    head = (f"<b>baseline {esc(trial['seed_name'])}</b> (zoo net, study protocol)"
            if trial.get("baseline") else f"<b>trial {trial.get('number')}</b>"
            + (f" ({esc(trial['seed_name'])})" if trial.get("seed_name") else ""))
    lines = [head,
             f"{esc(m.name)} {m.fmt(v)}",
             f"{_human(trial.get('target_params'))} params, {_human(trial.get('target_macs'))}MACs"]
    if trial.get("latency_ms") is not None:
        lines.append(f"latency {trial['latency_ms']:.2f} ms")
    if s["stages"]:
        lines.append("depths " + " ".join(str(st["depth"]) for st in s["stages"]))
        lines.append("widths " + " ".join(str(st["width"]) for st in s["stages"]))
    lines.append(f"convs {C.conv_text(s)}, SE {'yes' if s['se'] else 'no'}")
    items = [f"{esc(k)}={esc(v)}" for k, v in sorted(s["params"].items())]
    for i in range(0, len(items), 4):
        lines.append(", ".join(items[i:i + 4]))
    return "<br>".join(lines)


def _layout(fig, title: str, **kw) -> Any:
    # title just above the plot area, below the modebar (which sits at the top right)
    kw.setdefault("margin", dict(l=60, r=20, t=80, b=50))
    fig.update_layout(template=TEMPLATE,
                      title=dict(text=title, x=0, xref="paper", y=1.0, yref="paper",
                                 yanchor="bottom", pad=dict(b=12), font=dict(size=15)),
                      hoverlabel=dict(align="left"), **kw)
    return fig


def pareto_figure(trials: Sequence[dict], cost: str = "target_macs",
                  metric: "C.Metric | str | None" = None, baselines: Sequence[dict] = ()):
    """Quality vs ``cost``: every finished trial, the non-dominated set highlighted as a
    staircase, seeds (classic nets) labelled, baselines (classic nets trained under the
    study's protocol) as labelled diamonds, architecture summary on hover."""
    go = _go()
    m = C.Q.metric(metric)
    label, scale, unit = COSTS[cost]
    done = [t for t in C.finished(trials, m) if C.is_number(t.get(cost))]
    front = C.accuracy_front(done, cost, m)
    on_front = {id(t) for t in front}
    fig = go.Figure()

    def scatter(ts, name, **kw):
        fig.add_trace(go.Scatter(
            x=[t[cost] / scale for t in ts], y=[m.value(t) for t in ts], name=name,
            text=[summary_text(t, m) for t in ts], hovertemplate="%{text}<extra></extra>", **kw))

    rest = [t for t in done if id(t) not in on_front and not t.get("seed_name")]
    scatter(rest, "trials", mode="markers", marker=dict(color="#9bb3cc", size=8))
    scatter(front, "Pareto front", mode="markers+lines", line=dict(shape="hv", color="#d62728"),
            marker=dict(color="#d62728", size=11, line=dict(color="black", width=1)))
    log = cost != "latency_ms"
    seeds = [t for t in done if t.get("seed_name")]
    base = [b for b in C.baseline_runs(baselines, None, m) if C.is_number(b.get(cost))]
    labelled = [(t, "seed") for t in seeds] + [(b, "baseline") for b in base]
    if labelled:
        pts = [(t[cost] / scale, m.value(t)) for t, _ in labelled]
        others = [(t[cost] / scale, m.value(t)) for t in done]
        pos = label_positions(pts, [esc(t["seed_name"]) for t, _ in labelled], log_x=log,
                              obstacles=others)
        for kind, name, marker in (
                ("seed", "seeds (classic nets in the space)",
                 dict(symbol="star", size=15, color="#ff7f0e", line=dict(color="black", width=1))),
                ("baseline", "baselines (zoo nets, same protocol)",
                 dict(symbol="diamond", size=13, color="#2ca02c", line=dict(color="black", width=1)))):
            idx = [i for i, (_, k) in enumerate(labelled) if k == kind]
            if not idx:
                continue
            ts = [labelled[i][0] for i in idx]
            scatter(ts, name, mode="markers+text", textfont=dict(size=11),
                    texttemplate=[esc(t["seed_name"]) if pos[i] else "" for t, i in zip(ts, idx)],
                    textposition=[pos[i] or "top center" for i in idx], marker=marker)
    return _layout(fig, f"{esc(m.name).capitalize()} vs {label}: {len(front)} of {len(done)} "
                        "non-dominated",
                   xaxis_title=f"{label} [{unit}]", yaxis_title=esc(m.label),
                   xaxis_type="log" if cost != "latency_ms" else "linear",
                   legend=dict(orientation="h", y=-0.25))


#: Plot areas assumed when placing labels (pixels), a little smaller than the charts draw
#: them (a Pareto chart in a two-column row; full-width charts), so estimates err on the safe side.
LABEL_AREA = (520.0, 280.0)
WIDE_AREA = (1150.0, 260.0)
_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right",
              "top left", "bottom right", "bottom left")


def label_positions(points: Sequence[tuple[float, float]], labels: Sequence[str], *,
                    log_x: bool = True, obstacles: Sequence[tuple[float, float]] = (),
                    area: tuple[float, float] = LABEL_AREA, font_px: float = 11) -> list[str | None]:
    """A plotly ``textposition`` per point such that no two labels overlap each other or a
    marker, or None where no position is free (the label is left off; hover still names it).

    Greedy, in order of x: boxes are estimated in pixels of a plot of ``area`` (character
    width 0.6 x font size), so the result holds for charts of about that size.
    """
    def tx(x):
        return math.log10(x) if log_x and x > 0 else x
    xs = [tx(x) for x, _ in list(points) + list(obstacles)]
    ys = [y for _, y in list(points) + list(obstacles)]
    if not points:
        return []
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    sx = area[0] / ((x1 - x0) or 1.0) * 0.9
    sy = area[1] / ((y1 - y0) or 1.0) * 0.9
    px = [((tx(x) - x0) * sx, (y1 - y) * sy) for x, y in points]
    marks = [((tx(x) - x0) * sx, (y1 - y) * sy) for x, y in list(points) + list(obstacles)]
    h, r = font_px * 1.3, 7.0
    boxes: list[tuple[float, float, float, float]] = [(mx - r, my - r, mx + r, my + r)
                                                      for mx, my in marks]
    out: list[str | None] = [None] * len(points)
    for i in sorted(range(len(points)), key=lambda i: px[i]):
        w = 0.6 * font_px * len(labels[i])
        cx, cy = px[i]
        for p in _POSITIONS:
            vert, horiz = p.split()
            bx = {"center": cx - w / 2, "right": cx + r, "left": cx - r - w}[horiz]
            by = {"top": cy - r - h, "bottom": cy + r, "middle": cy - h / 2}[vert]
            box = (bx, by, bx + w, by + h)
            own = (cx - r, cy - r, cx + r, cy + r)
            if not any(_overlap(box, b) for b in boxes if b != own):
                boxes.append(box)
                out[i] = p
                break
    return out


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def progress_figure(prog: dict):
    """Best-so-far quality and hypervolume against trial number (two y axes)."""
    go = _go()
    name, axis = esc(prog.get("metric", "accuracy")), esc(prog.get("label", "validation accuracy"))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=prog["number"], y=prog["quality"], name=f"trial {name}",
                             mode="markers", marker=dict(color="#9bb3cc", size=7)))
    fig.add_trace(go.Scatter(x=prog["number"], y=prog["best"], name=f"best {name} so far",
                             mode="lines+markers", line=dict(shape="hv", color="#1f77b4")))
    fig.add_trace(go.Scatter(x=prog["number"], y=prog["hypervolume"], name="hypervolume",
                             mode="lines", yaxis="y2", line=dict(shape="hv", color="#2ca02c")))
    label, _, _ = COSTS.get(prog["cost"], (prog["cost"], 1, ""))
    ref = _human(prog["reference_cost"]) + ("MACs" if prog["cost"] == "target_macs" else "")
    worst = "0" if prog.get("metric", "accuracy") == "accuracy" else f"worst {name}"
    return _layout(fig, f"Search progress (hypervolume of {name} vs {label}, "
                        f"reference point ({worst}, {ref}))",
                   xaxis_title="trial number", yaxis_title=axis,
                   yaxis2=dict(title="hypervolume (share of box)", overlaying="y", side="right",
                               rangemode="tozero", tickformat=".2f"),
                   legend=dict(orientation="h", y=-0.2))


def curves_figure(curves: Sequence[dict]):
    """Validation accuracy (or loss) per epoch, one line per trial (dashed: not COMPLETE)."""
    go = _go()
    fig = go.Figure()
    for c in curves:
        fig.add_trace(go.Scatter(
            x=c["epoch"], y=c["values"], mode="lines+markers", name=f"trial {c['number']}",
            line=dict(dash="solid" if c["state"] == "COMPLETE" else "dash", width=1),
            hovertemplate=f"trial {c['number']} ({esc(c['state'])})<br>epoch %{{x}}: "
                          "%{y:.4f}<extra></extra>"))
    axis = "validation loss" if curves and curves[0].get("key") == "val_loss" \
        else "validation accuracy"
    return _layout(fig, "Learning curves (dashed: pruned, failed or running)",
                   xaxis_title="epoch", yaxis_title=axis, height=380,
                   showlegend=len(curves) <= 20)


def effect_text(e: dict) -> str:
    """'rho=+0.45 [+0.20, +0.65], n=50' (or eps²=...), 'no evidence' when the interval has 0."""
    sym = "ρ" if e["statistic"] == "spearman" else "ε²"
    ci = (f" [{e['low']:+.2f}, {e['high']:+.2f}]" if e["low"] is not None else " [too few trials]")
    return f"{sym}={e['effect']:+.2f}{ci}, n={e['n']}" + (" (no evidence)" if e["includes_zero"] else "")


def forest_figure(effects: Sequence[dict], max_params: int = 60):
    """Each parameter's effect with its bootstrap interval, strongest evidence at the top;
    grey: the interval includes zero (no evidence of an effect)."""
    go = _go()
    shown = list(effects[:max_params])[::-1]
    fig = go.Figure()
    for has, color, name in ((True, "#1f77b4", "interval excludes 0"),
                             (False, "#b0b0b0", "interval includes 0 (no evidence)")):
        es = [e for e in shown if (not e["includes_zero"]) == has]
        if not es:
            continue
        fig.add_trace(go.Scatter(
            x=[e["effect"] for e in es], y=[esc(e["name"]) for e in es], mode="markers", name=name,
            marker=dict(color=color, size=10,
                        symbol=["circle" if e["statistic"] == "spearman" else "diamond" for e in es]),
            error_x=dict(type="data", symmetric=False, color=color, thickness=2,
                         array=[(e["high"] - e["effect"]) if e["high"] is not None else 0 for e in es],
                         arrayminus=[(e["effect"] - e["low"]) if e["low"] is not None else 0 for e in es]),
            text=[esc(e["name"]) + ": " + effect_text(e) for e in es],
            hovertemplate="%{text}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#444", width=1))
    title = (f"Parameter effects with {C.CONFIDENCE:.0%} bootstrap intervals "
             f"(●: Spearman ρ of value vs {esc(effects[0].get('metric', 'accuracy')) if effects else 'quality'}; "
             "◆: ε² of unordered choices)")
    if len(effects) > max_params:
        title += f"; {max_params} of {len(effects)} shown"
    return _layout(fig, title, height=max(260, 60 + 24 * len(shown)),
                   xaxis=dict(title="effect (ρ > 0: larger values are better)", range=[-1, 1],
                              zeroline=False),
                   yaxis=dict(type="category", categoryorder="array",
                              categoryarray=[esc(e["name"]) for e in shown], automargin=True),
                   legend=dict(orientation="h", y=-0.15 if len(shown) > 8 else -0.35),
                   margin=dict(l=120, r=20, t=80, b=60))


def effects_figure(effects: Sequence[dict], max_params: int = 12):
    """Accuracy vs each parameter (strongest first): trials as points per value or bin of
    adjacent values, the group mean with its 95% interval; titles give the effect, its
    interval and n, greyed when the interval includes zero."""
    from plotly.subplots import make_subplots
    go = _go()
    shown = list(effects[:max_params])
    cols = 3
    rows = max(1, math.ceil(len(shown) / cols))
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=min(0.5 / rows, 0.12),
                        horizontal_spacing=0.06,
                        subplot_titles=[f"{esc(e['name'])}: {effect_text(e)}" for e in shown])
    for i, e in enumerate(shown):
        r, c = i // cols + 1, i % cols + 1
        member = {C._key(v): g["label"] for g in e["groups"] for v in g["values"]}
        labels = [esc(g["label"]) for g in e["groups"]]
        fig.add_trace(go.Scatter(x=[esc(member[C._key(v)]) for v in e["values"]], y=e["scores"],
                                 mode="markers", showlegend=False, name=esc(e["name"]),
                                 marker=dict(color="#9bb3cc", size=6, opacity=0.7),
                                 hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=r, col=c)
        fig.add_trace(go.Scatter(
            x=labels, y=[g["mean"] for g in e["groups"]], mode="lines+markers", showlegend=False,
            name="mean", line=dict(color="#b0b0b0" if e["includes_zero"] else "#d62728"),
            error_y=dict(type="data", symmetric=False,
                         array=[(g["high"] - g["mean"]) if g["high"] is not None else 0 for g in e["groups"]],
                         arrayminus=[(g["mean"] - g["low"]) if g["low"] is not None else 0 for g in e["groups"]]),
            text=[f"n={g['n']}" for g in e["groups"]],
            hovertemplate="%{x}: mean %{y:.4f}, %{text}<extra></extra>"), row=r, col=c)
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels, row=r, col=c)
    for ann, e in zip(fig.layout.annotations, shown):
        ann.font = dict(size=12, color="#999999" if e["includes_zero"] else "#222222")
    # no figure title: it would collide with the subplot titles (the page's heading says it)
    return _layout(fig, "", height=max(320, 280 * rows))


def split_edf_figure(splits: Sequence[tuple[dict, dict]], metric=None):
    """Error EDFs split by a parameter's value (one panel per parameter): ``splits`` are
    (effect, {group label: edf}) pairs; ordinal groups from light (low) to dark (high)."""
    from plotly.subplots import make_subplots
    go = _go()
    cols = min(3, max(1, len(splits)))
    rows = max(1, math.ceil(len(splits) / cols))
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=min(0.6 / rows, 0.2),
                        horizontal_spacing=0.06,
                        subplot_titles=[f"{esc(e['name'])}: {effect_text(e)}" for e, _ in splits])
    for i, (e, curves) in enumerate(splits):
        r, c = i // cols + 1, i % cols + 1
        k = len(curves)
        for j, (label, curve) in enumerate(curves.items()):
            if not curve["n"]:
                continue
            color = (_ramp(j / max(k - 1, 1)) if e["kind"] == "ordinal"
                     else PALETTE[j % len(PALETTE)])
            fig.add_trace(go.Scatter(
                x=curve["x"], y=curve["y"], mode="lines", line=dict(shape="hv", color=color, width=2),
                name=f"{esc(e['name'])}={esc(label)} (n={curve['n']})", legendgroup=str(i),
                hovertemplate=f"{esc(e['name'])}={esc(label)} (n={curve['n']})<br>"
                              "error %{x:.4f}: %{y:.2f}<extra></extra>"), row=r, col=c)
    label, _ = C.edf_value(C.Q.metric(metric if metric is not None else
                                      (splits[0][0].get("metric") if splits else None)))
    fig.update_xaxes(title_text=esc(label), row=rows)   # the bottom row only: no overlap
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, "", height=max(360, 330 * rows), legend=dict(font=dict(size=10)))


def _ramp(t: float) -> str:
    """Light blue (t=0) to dark blue (t=1)."""
    a, b = (158, 202, 225), (8, 48, 107)
    return "rgb({},{},{})".format(*(round(x + (y - x) * t) for x, y in zip(a, b)))


def dag_figure(choices: Sequence[tuple[str, dict]]):
    """Genotype DAGs, nodes by topological generation (left to right) coloured by op.

    ``choices`` are (title, :func:`~nas.dashboard.compute.dag_layout`) pairs; the first is
    shown and a dropdown switches between them.
    """
    go = _go()
    ops = sorted({n["op"] for _, lay in choices for n in lay["nodes"]})
    color = {op: PALETTE[k % len(PALETTE)] for k, op in enumerate(ops)}
    fig = go.Figure()
    spans, counts = [], []
    for i, (_, lay) in enumerate(choices):
        before = len(fig.data)
        _add_dag(fig, lay, color, visible=i == 0)
        counts.append(len(fig.data) - before)
        spans.append(max((n["x"] for n in lay["nodes"]), default=1))
    titles = [title + (f"<br>generations 0-{DAG_WINDOW} of 0-{spans[i]:g} in view: the slider "
                       "below shows the whole net" if spans[i] > DAG_WINDOW else "")
              for i, (title, _) in enumerate(choices)]
    buttons = []
    for i, title in enumerate(titles):
        visible = [j == i for j, c in enumerate(counts) for _ in range(c)]
        buttons.append(dict(label=title.split(":")[0], method="update",
                            args=[{"visible": visible},
                                  {"title.text": title, "xaxis.range": _dag_range(spans[i])}]))
    menus = [dict(buttons=buttons, x=1.0, xanchor="right", y=1.18, yanchor="top")] \
        if len(choices) > 1 else []
    long = max(spans) > DAG_WINDOW
    xaxis = dict(title="topological generation", range=_dag_range(spans[0]))
    if long:  # the slider under the plot shows the whole net and moves the window over it
        xaxis["rangeslider"] = dict(visible=True, thickness=0.12)
    return _layout(fig, titles[0], height=520 if long else 460, updatemenus=menus,
                   xaxis=xaxis, yaxis=dict(visible=False), dragmode="pan")


#: Generations shown at once in the DAG view; longer nets get a range slider (whole-net overview).
DAG_WINDOW = 60


def _dag_range(span: float) -> list[float]:
    return [-1, min(span, DAG_WINDOW) + 1]


def _add_dag(fig, layout: dict, color: dict, visible: bool) -> None:
    go = _go()
    pos = {n["id"]: (n["x"], n["y"]) for n in layout["nodes"]}
    ex, ey = [], []
    for a, b in layout["edges"]:
        xs, ys = _edge_path(pos[a], pos[b])
        ex += xs + [None]
        ey += ys + [None]
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", hoverinfo="skip", showlegend=False,
                             line=dict(color="#aaaaaa", width=1), visible=visible))
    for op in sorted({n["op"] for n in layout["nodes"]}):
        ns = [n for n in layout["nodes"] if n["op"] == op]
        fig.add_trace(go.Scatter(
            x=[n["x"] for n in ns], y=[n["y"] for n in ns], mode="markers", name=esc(op),
            marker=dict(size=10, color=color[op], line=dict(width=1, color="#333")),
            text=[_node_text(n) for n in ns], hovertemplate="%{text}<extra></extra>",
            visible=visible))


def _edge_path(a: tuple[float, float], b: tuple[float, float], steps: int = 12):
    """A straight segment between neighbouring generations; an arc above the nodes for
    edges that skip generations (residual shortcuts), so they do not hide the main path."""
    span = b[0] - a[0]
    if span <= 1:
        return [a[0], b[0]], [a[1], b[1]]
    h = min(0.35 + 0.12 * span, 1.5)
    ts = [i / steps for i in range(steps + 1)]
    return ([a[0] + t * span for t in ts],
            [a[1] + t * (b[1] - a[1]) + h * math.sin(math.pi * t) for t in ts])


def _node_text(n: dict) -> str:
    attrs = ", ".join(f"{esc(k)}={esc(v)}" for k, v in n["attrs"].items())
    return (f"<b>{esc(n['id'])}</b><br>{esc(n['op'])}({attrs})<br>"
            f"out {'x'.join(map(str, n['shape']))}")


def edf_figure(edfs: dict):
    """Error EDFs per design space/study: plain (left) and complexity-normalised (right)."""
    from plotly.subplots import make_subplots
    go = _go()
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "error EDF", f"complexity-normalised error EDF ({max(len(edfs['edges']) - 1, 0)} "
                     f"log bins of {esc(edfs['complexity'])})"))
    for k, (name, entry) in enumerate(edfs["groups"].items()):
        color = PALETTE[k % len(PALETTE)]
        for col, key in ((1, "plain"), (2, "normalized")):
            curve = entry[key]
            if not curve or not curve["n"]:
                continue
            fig.add_trace(go.Scatter(
                x=curve["x"], y=curve["y"], mode="lines", line=dict(shape="hv", color=color),
                name=f"{esc(name)} (n={curve['n']})", legendgroup=str(k), showlegend=col == 1,
                hovertemplate="error %{x:.4f}: %{y:.2f}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="validation error")
    fig.update_yaxes(title_text="cumulative prob.", range=[0, 1.02])
    return _layout(fig, "", height=440)


def classic_figure(rows: Sequence[dict]):
    """Published ImageNet top-1 vs counted MACs of zoo nets, one colour per family;
    bubble area ~ params. Labels that would overlap are left off (hover names every net)."""
    go = _go()
    biggest = max((r["params"] for r in rows), default=1)
    pos = label_positions([(r["macs"] / 1e9, r["top1"]) for r in rows],
                          [r["name"] for r in rows], font_px=10, area=(1150.0, 400.0))
    fig = go.Figure()
    families = sorted({r["family"] for r in rows})
    for k, fam in enumerate(families):
        idx = [i for i, r in enumerate(rows) if r["family"] == fam]
        rs = [rows[i] for i in idx]
        fig.add_trace(go.Scatter(
            x=[r["macs"] / 1e9 for r in rs], y=[r["top1"] for r in rs], mode="markers+text",
            name=esc(fam), texttemplate=[esc(r["name"]) if pos[i] else "" for r, i in zip(rs, idx)],
            textposition=[pos[i] or "top center" for i in idx], textfont=dict(size=10),
            marker=dict(size=[r["params"] for r in rs], sizemode="area", sizemin=6,
                        sizeref=2.0 * biggest / 60 ** 2, color=PALETTE[k % len(PALETTE)],
                        opacity=0.6, line=dict(color="black", width=1)),
            text=[f"<b>{esc(r['name'])}</b><br>top-1 {r['top1']:.2f}% (published, ImageNet)<br>"
                  f"{_human(r['macs'])}MACs, {_human(r['params'])} params (counted at "
                  f"{'x'.join(map(str, r['input_shape']))})<br>{esc(r['source'])}" for r in rs],
            hovertemplate="%{text}<extra></extra>"))
    return _layout(fig, "Published ImageNet top-1 (reference only: not comparable with a study's "
                        "proxy accuracy) vs counted MACs; bubble area = params",
                   xaxis_title="counted MACs at the net's input spec [GMACs]", xaxis_type="log",
                   yaxis_title="published top-1 accuracy [%]", height=560)


def baselines_figure(studies: Sequence[tuple[dict, list[dict], list[dict]]]):
    """Baselines trained under each study's protocol: study accuracy vs MACs, one colour per
    study, with the study's best found net as a star for comparison."""
    go = _go()
    fig = go.Figure()
    pts, names = [], []
    metrics = [C.Q.study_metric(study, trials) for study, trials, _ in studies]
    for (study, trials, baselines), m in zip(studies, metrics):
        for b in C.baseline_runs(baselines, study, m):
            pts.append((b["target_macs"] / 1e9, m.value(b)))
            names.append(b["name"])
    stars = []
    for (study, trials, _), m in zip(studies, metrics):
        best = C.best_trial(trials, m)
        if best and C.is_number(best.get("target_macs")):
            stars.append((best["target_macs"] / 1e9, m.value(best)))
    pos = label_positions(pts, names, font_px=10, obstacles=stars, area=WIDE_AREA)
    n = 0
    for k, ((study, trials, baselines), m) in enumerate(zip(studies, metrics)):
        color = PALETTE[k % len(PALETTE)]
        runs = [b for b in C.baseline_runs(baselines, study, m) if C.is_number(b.get("target_macs"))]
        fig.add_trace(go.Scatter(
            x=[b["target_macs"] / 1e9 for b in runs], y=[m.value(b) for b in runs],
            mode="markers+text", name=f"baselines, {esc(study['name'])}",
            texttemplate=[esc(b["name"]) if pos[n + i] else "" for i, b in enumerate(runs)],
            textposition=[pos[n + i] or "top center" for i in range(len(runs))],
            textfont=dict(size=10),
            marker=dict(symbol="diamond", size=12, color=color, line=dict(color="black", width=1)),
            text=[f"<b>{esc(b['name'])}</b> ({esc(b.get('family'))})<br>{esc(m.name)} {m.value(b):.4f} "
                  f"under study {esc(study['name'])}'s protocol (seed {b.get('seed')}; "
                  f"{b['runs']} seed(s), mean {b['mean']:.4f})<br>"
                  f"{_human(b['target_macs'])}MACs, {_human(b['target_params'])} params"
                  + (f"<br>published ImageNet top-1 {b['published_top1']:.2f}% (not comparable)"
                     if C.is_number(b.get("published_top1")) else "") for b in runs],
            hovertemplate="%{text}<extra></extra>"))
        n += len(runs)
        best = C.best_trial(trials, m)
        if best and C.is_number(best.get("target_macs")):
            fig.add_trace(go.Scatter(
                x=[best["target_macs"] / 1e9], y=[m.value(best)], mode="markers",
                name=f"best found, {esc(study['name'])}",
                marker=dict(symbol="star", size=16, color=color, line=dict(color="black", width=1)),
                text=[summary_text(best, m)], hovertemplate="%{text}<extra></extra>"))
        if study.get("budget_macs"):
            # a trace, not add_vline + annotation: annotations on a log axis take log10(x)
            lo = min([y for _, y in pts + stars if y is not None] or [0.0])
            hi = max([y for _, y in pts + stars if y is not None] or [1.0])
            fig.add_trace(go.Scatter(
                x=[study["budget_macs"] / 1e9] * 2, y=[lo, hi], mode="lines",
                line=dict(color=color, dash="dot"), name=f"budget, {esc(study['name'])}",
                hovertemplate=f"budget {_human(study['budget_macs'])}MACs<extra></extra>"))
    return _layout(fig, "Classic nets trained under each study's protocol (◆) vs the best found "
                        "net (★): quality under the study's protocol vs MACs",
                   xaxis_title="MACs at the target spec [GMACs]", xaxis_type="log",
                   yaxis_title=esc(metrics[0].label if len({m.name for m in metrics}) == 1
                                   else "quality (study protocol)") + " (study protocol)",
                   height=480,
                   legend=dict(orientation="h", y=-0.2))
