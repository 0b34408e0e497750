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
    lines = [f"<b>trial {trial.get('number')}</b>"
             + (f" ({esc(trial['seed_name'])})" if trial.get("seed_name") else ""),
             f"{esc(m.name)} {m.fmt(v)}",
             f"{_human(trial.get('target_params'))} params, {_human(trial.get('target_macs'))}MACs"]
    if trial.get("latency_ms") is not None:
        lines.append(f"latency {trial['latency_ms']:.2f} ms")
    if s["stages"]:
        lines.append("depths " + " ".join(str(st["depth"]) for st in s["stages"]))
        lines.append("widths " + " ".join(str(st["width"]) for st in s["stages"]))
    lines.append(f"groups {', '.join(map(str, s['groups'])) or '1'}, SE {'yes' if s['se'] else 'no'}")
    items = [f"{esc(k)}={esc(v)}" for k, v in sorted(s["params"].items())]
    for i in range(0, len(items), 4):
        lines.append(", ".join(items[i:i + 4]))
    return "<br>".join(lines)


def _layout(fig, title: str, **kw) -> Any:
    # title just above the plot area, below the modebar (which sits at the top right)
    fig.update_layout(template=TEMPLATE, margin=dict(l=60, r=20, t=80, b=50),
                      title=dict(text=title, x=0, xref="paper", y=1.0, yref="paper",
                                 yanchor="bottom", pad=dict(b=12), font=dict(size=15)),
                      hoverlabel=dict(align="left"), **kw)
    return fig


def pareto_figure(trials: Sequence[dict], cost: str = "target_macs",
                  metric: "C.Metric | str | None" = None):
    """Quality vs ``cost``: every finished trial, the non-dominated set highlighted as a
    staircase, seeds (classic nets) labelled, architecture summary on hover."""
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
    seeds = [t for t in done if t.get("seed_name")]
    if seeds:
        scatter(seeds, "seeds (classic nets)", mode="markers+text",
                textposition="top center", textfont=dict(size=11),
                texttemplate=[esc(t["seed_name"]) for t in seeds],
                marker=dict(symbol="star", size=15, color="#ff7f0e",
                            line=dict(color="black", width=1)))
    return _layout(fig, f"{esc(m.name).capitalize()} vs {label}: {len(front)} of {len(done)} "
                        "non-dominated",
                   xaxis_title=f"{label} [{unit}]", yaxis_title=esc(m.label),
                   xaxis_type="log" if cost != "latency_ms" else "linear",
                   legend=dict(orientation="h", y=-0.25))


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


def effects_figure(effects: Sequence[dict], max_params: int = 12):
    """Quality vs each parameter (strongest first): trials as points, level means as a line."""
    from plotly.subplots import make_subplots
    go = _go()
    shown = list(effects[:max_params])
    cols = 3
    rows = max(1, math.ceil(len(shown) / cols))
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=0.5 / rows, horizontal_spacing=0.06,
                        subplot_titles=[f"{esc(e['name'])} (η²={e['eta2']:.2f}, {len(e['scores'])} trials)"
                                        for e in shown])
    for i, e in enumerate(shown):
        r, c = i // cols + 1, i % cols + 1
        cats = [esc(_fmt(v)) for v in e["values"]]
        levels = [esc(_fmt(lv["value"])) for lv in e["levels"]]
        fig.add_trace(go.Scatter(x=cats, y=e["scores"], mode="markers", showlegend=False,
                                 marker=dict(color="#9bb3cc", size=7), name=esc(e["name"]),
                                 hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=r, col=c)
        fig.add_trace(go.Scatter(x=levels, y=[lv["mean"] for lv in e["levels"]],
                                 mode="lines+markers", showlegend=False, name="mean",
                                 line=dict(color="#d62728"),
                                 hovertemplate="mean %{y:.4f}<extra></extra>"), row=r, col=c)
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=levels, row=r, col=c)
    # no figure title: it would collide with the subplot titles (the page's heading says it)
    return _layout(fig, "",
                   height=max(320, 280 * rows))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


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
    buttons = []
    for i, (title, _) in enumerate(choices):
        visible = [j == i for j, c in enumerate(counts) for _ in range(c)]
        buttons.append(dict(label=title.split(":")[0], method="update",
                            args=[{"visible": visible},
                                  {"title.text": title, "xaxis.range": _dag_range(spans[i])}]))
    menus = [dict(buttons=buttons, x=1.0, xanchor="right", y=1.18, yanchor="top")] \
        if len(choices) > 1 else []
    return _layout(fig, choices[0][0], height=460, updatemenus=menus,
                   xaxis=dict(title="topological generation", range=_dag_range(spans[0])),
                   yaxis=dict(visible=False), dragmode="pan")


def _dag_range(span: float) -> list[float]:
    return [-1, min(span, 60) + 1]


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
    bubble area ~ params."""
    go = _go()
    biggest = max((r["params"] for r in rows), default=1)
    fig = go.Figure()
    families = sorted({r["family"] for r in rows})
    for k, fam in enumerate(families):
        rs = [r for r in rows if r["family"] == fam]
        fig.add_trace(go.Scatter(
            x=[r["macs"] / 1e9 for r in rs], y=[r["top1"] for r in rs], mode="markers+text",
            name=esc(fam), texttemplate=[esc(r["name"]) for r in rs], textposition="top center",
            marker=dict(size=[r["params"] for r in rs], sizemode="area", sizemin=6,
                        sizeref=2.0 * biggest / 60 ** 2, color=PALETTE[k % len(PALETTE)],
                        opacity=0.6, line=dict(color="black", width=1)),
            text=[f"<b>{esc(r['name'])}</b><br>top-1 {r['top1']:.2f}% (published)<br>"
                  f"{_human(r['macs'])}MACs, {_human(r['params'])} params (counted at "
                  f"{'x'.join(map(str, r['input_shape']))})<br>{esc(r['source'])}" for r in rs],
            hovertemplate="%{text}<extra></extra>"))
    return _layout(fig, "Classic nets: published ImageNet top-1 vs counted MACs (bubble area = params)",
                   xaxis_title="counted MACs at the net's input spec [GMACs]", xaxis_type="log",
                   yaxis_title="top-1 accuracy [%]", height=560)
