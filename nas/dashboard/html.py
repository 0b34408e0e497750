"""Assemble one self-contained HTML page (plotly.js inlined, works offline) from studies.

All user text is escaped with :func:`html.escape`; figure JSON is plotly's own encoding,
which writes ``<``, ``>`` and ``/`` as ``\\u00XX`` so nothing can close the script tag.
"""
from __future__ import annotations

import datetime as _dt
import html
from collections import Counter
from typing import Any, Sequence

from nas.dashboard import compute as C
from nas.dashboard import figures as F

MAX_TABLE_ROWS = 1000
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:0 16px 40px;color:#222}
h1{font-size:1.6em;margin:18px 0 4px} h2{margin-top:34px;border-bottom:2px solid #ddd}
h3{margin:22px 0 4px} .meta{color:#555;font-size:.9em} .note{color:#777;font-style:italic}
.row{display:flex;flex-wrap:wrap;gap:8px}.row>div{flex:1 1 600px;min-width:0}
table{border-collapse:collapse;font-size:.8em;width:100%} th,td{border:1px solid #ddd;padding:2px 6px;
text-align:left;vertical-align:top} th{background:#f3f3f3;position:sticky;top:0}
tr.FAIL td{background:#fde8e8} tr.RUNNING td{background:#fff8e0} tr.PRUNED td{background:#eef}
.tablewrap{max-height:520px;overflow:auto} dl{display:grid;grid-template-columns:max-content auto;
gap:2px 12px;font-size:.9em} dt{font-weight:600}
"""


def esc(text: Any) -> str:
    """``text`` escaped for HTML element content and attribute values."""
    return html.escape(str(text), quote=True)


class Page:
    """An HTML page under construction: sections of escaped text and plotly figures."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self.scripts: list[str] = []
        self._n = 0

    def add(self, markup: str) -> None:
        """Append trusted markup (built from escaped pieces)."""
        self.parts.append(markup)

    def figure(self, fig, css_class: str = "plot") -> str:
        """Markup for one figure's div; the script drawing it runs once the page is laid out
        (drawing during parsing would size side-by-side plots before their siblings exist)."""
        self._n += 1
        div = f"fig{self._n}"
        self.scripts.append(f'Plotly.newPlot("{div}",(f={fig.to_json()}).data,f.layout,'
                            '{"responsive":true,"displaylogo":false,"showLink":false,'
                            '"showSendToCloud":false,"showEditInChartStudio":false});')
        return f'<div id="{div}" class="{css_class}"></div>'

    def render(self) -> str:
        """The complete document."""
        from plotly.offline import get_plotlyjs
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{esc(self.title)}</title><style>{CSS}</style>"
                f"<script>{get_plotlyjs()}</script></head><body>\n"
                + "\n".join(self.parts)
                + "\n<script>(function(){var f;\n" + "\n".join(self.scripts) + "\n})();</script>"
                + "\n</body></html>\n")


def build_page(studies: Sequence[tuple[dict, list[dict]]], storage: str) -> str:
    """The dashboard for ``studies`` (pairs of a study dict and its trial dicts)."""
    names = [s["name"] for s, _ in studies]
    page = Page("nas dashboard: " + ", ".join(names))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page.add(f"<h1>nas dashboard: {esc(', '.join(names))}</h1>"
             f'<p class="meta">storage {esc(storage)} &middot; generated {now} &middot; '
             "MACs = multiply-accumulates of conv and linear layers (the papers' \"FLOPs\"), "
             "counted at the space's target spec</p>")
    for study, trials in studies:
        _study_section(page, study, trials)
    if len(studies) > 1:
        _edf_section(page, studies)
    page.add("<h2>Classic nets (zoo)</h2>")
    page.add(page.figure(F.classic_figure(C.classic_nets())))
    return page.render()


def _study_section(page: Page, study: dict, trials: list[dict]) -> None:
    states = Counter(t.get("state") for t in trials)
    m = C.Q.study_metric(study, trials)
    page.add(f"<h2>Study {esc(study['name'])}</h2>" + _study_meta(study, states, m))
    done = C.finished(trials, m)
    if not done:
        page.add('<p class="note">No finished trials yet: nothing to plot.</p>')
        page.add(_trials_table(trials))
        return
    costs = ["target_macs", "target_params"]
    if any(C.is_number(t.get("latency_ms")) for t in done):
        costs.append("latency_ms")
    page.add('<h3>Pareto fronts</h3><div class="row">'
             + "".join(f"<div>{page.figure(F.pareto_figure(trials, c, m))}</div>" for c in costs)
             + "</div>")
    prog = C.progress(trials, budget_macs=study.get("budget_macs"), metric=m)
    best = C.best_trial(trials, m)
    page.add('<h3>Search progress</h3>' + page.figure(F.progress_figure(prog)))
    curves = C.learning_curves(trials, m)
    if curves:
        page.add('<h3>Learning curves</h3>' + page.figure(F.curves_figure(curves)))
    effects = C.parameter_effects(trials, m)
    if effects:
        page.add(f'<h3>Per-parameter effects</h3><p class="meta">{esc(m.label.capitalize())} '
                 "against each search parameter (red: mean per value), strongest first by η², "
                 f"the share of the {esc(m.name)} variance that a parameter's values explain (it "
                 "overstates effects when values have few trials).</p>"
                 + page.figure(F.effects_figure(effects)))
    if best and best.get("genotype"):
        page.add('<h3>Best architecture</h3>' + _summary_block(best)
                 + page.figure(F.dag_figure(_dag_choices(best, C.accuracy_front(trials, metric=m),
                                                         m))))
    page.add("<h3>Trials</h3>" + _trials_table(trials))


MAX_DAGS = 12


def _dag_choices(best: dict, front: list[dict], m=None) -> list[tuple[str, dict]]:
    """The best trial's DAG first, then the other Pareto-optimal trials' (cheapest first)."""
    from nas.cost import human
    m = C.Q.metric(m)
    chosen = [best] + [t for t in front if t is not best and t.get("genotype")][:MAX_DAGS - 1]
    out = []
    for t in chosen:
        lay = C.dag_layout(t["genotype"])
        macs = f", {human(t['target_macs'])}MACs" if C.is_number(t.get("target_macs")) else ""
        tag = "best" if t is best else "Pareto"
        out.append((f"trial {t['number']} ({tag}): {m.name} {m.fmt(m.value(t))}{macs}, "
                    f"{len(lay['nodes'])} nodes (drag to pan, scroll to zoom)", lay))
    return out


def _study_meta(study: dict, states: Counter, m=None) -> str:
    from nas.cost import human
    m = C.Q.metric(m)
    items = [("space", study.get("space")),
             ("ranked by", f"{m.name} ({m.direction})"),
             ("budget", f"{human(study['budget_macs'])}MACs" if study.get("budget_macs") else "none"),
             ("params budget", human(study["params_budget"]) if study.get("params_budget") else "none"),
             ("objectives", ", ".join(map(str, study.get("objectives") or []))),
             ("trials", ", ".join(f"{n} {s}" for s, n in sorted(states.items(), key=str)) or "0"),
             ("created", study.get("created_at"))]
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def _summary_block(trial: dict) -> str:
    s = C.arch_summary(trial.get("genotype"), trial.get("params"))
    stages = "; ".join(f"{esc(st['name'])}: {st['depth']} blocks x {st['width']} ch"
                       for st in s["stages"]) or "n/a"
    params = ", ".join(f"{esc(k)}={esc(v)}" for k, v in sorted(s["params"].items())) or "n/a"
    return (f"<dl><dt>stages</dt><dd>{stages}</dd><dt>groups</dt>"
            f"<dd>{esc(', '.join(map(str, s['groups'])) or '1')}</dd><dt>SE</dt>"
            f"<dd>{'yes' if s['se'] else 'no'}</dd><dt>space params</dt><dd>{params}</dd></dl>")


COLUMNS = ("number", "state", "seed_name", "params", "target_params", "target_macs",
           "proxy_macs", "accuracy", "val_loss", "proxy_score", "latency_ms", "duration_s",
           "worker", "error")
#: Shown only when some trial has a value (a proxy study has no accuracy, and vice versa).
OPTIONAL = ("val_loss", "proxy_score")

HEADERS = {"number": "#", "seed_name": "seed", "params": "space params",
           "target_params": "params (target)", "target_macs": "MACs (target)",
           "proxy_macs": "MACs (proxy)", "latency_ms": "latency ms", "duration_s": "seconds",
           "val_loss": "val loss", "proxy_score": "proxy score"}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "<td></td>"
    if key == "state" and isinstance(value, tuple):          # (state, feasible)
        return f"<td>{esc(value[0])}{'' if value[1] is not False else ' (infeasible)'}</td>"
    if key == "params" and isinstance(value, dict):
        return "<td>" + esc(", ".join(f"{k}={v}" for k, v in sorted(value.items()))) + "</td>"
    if key in ("target_params", "target_macs", "proxy_macs") and isinstance(value, (int, float)):
        from nas.cost import human
        return f'<td title="{value}">{human(value)}</td>'
    if isinstance(value, float):
        return f"<td>{value:.4f}</td>"
    if key == "error":
        text = str(value)
        return f'<td title="{esc(text)}">{esc(text[:300])}{"..." if len(text) > 300 else ""}</td>'
    return f"<td>{esc(value)}</td>"


def _trials_table(trials: list[dict]) -> str:
    rows = sorted(trials, key=lambda t: t.get("number", 0))
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = f'<p class="note">showing the last {MAX_TABLE_ROWS} of {len(rows)} trials</p>'
        rows = rows[-MAX_TABLE_ROWS:]
    cols = [c for c in COLUMNS if c not in OPTIONAL or any(t.get(c) is not None for t in rows)]
    head = "".join(f"<th>{esc(HEADERS.get(c, c))}</th>" for c in cols)
    body = "".join(f'<tr class="{esc(t.get("state"))}">'
                   + "".join(_cell(c, (t.get(c), t.get("feasible")) if c == "state" else t.get(c))
                             for c in cols) + "</tr>" for t in rows)
    return (f'{note}<div class="tablewrap"><table class="trials"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _edf_section(page: Page, studies: Sequence[tuple[dict, list[dict]]]) -> None:
    groups = {f"{s['name']} [{s.get('space')}]": trials for s, trials in studies}
    edfs = C.design_space_edfs(groups)
    page.add("<h2>Design spaces compared: error EDFs</h2>"
             '<p class="meta">F(e) = share of models with validation error below e; the '
             "normalised curves weight models so every complexity bin (log-spaced MACs) has "
             "equal mass (Radosavovic et al. 2019, On Network Design Spaces for Visual "
             "Recognition).</p>" + page.figure(F.edf_figure(edfs)))
