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
#answers{background:#f7f9fc;border:1px solid #d8e0ea;border-radius:6px;padding:4px 16px 10px;
margin-top:16px} #answers h2{border:none;margin-top:10px} .answer{margin:6px 0} .biased{color:#b00020}
.unbiased{color:#2a6a2a}
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

    def figure(self, fig, css_class: str = "plot", config: dict | None = None) -> str:
        """Markup for one figure's div; the script drawing it runs once the page is laid out
        (drawing during parsing would size side-by-side plots before their siblings exist).
        ``config`` adds plotly config options (e.g. scrollZoom)."""
        import json
        self._n += 1
        div = f"fig{self._n}"
        cfg = {"responsive": True, "displaylogo": False, "showLink": False,
               "showSendToCloud": False, "showEditInChartStudio": False, **(config or {})}
        self.scripts.append(f'Plotly.newPlot("{div}",(f={fig.to_json()}).data,f.layout,'
                            f'{json.dumps(cfg)});')

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
    """The dashboard for ``studies`` (pairs of a study dict and its trial dicts; a study's
    ``baselines``, if any, are classic nets trained under its protocol)."""
    names = [s["name"] for s, _ in studies]
    page = Page("nas dashboard: " + ", ".join(names))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page.add(f"<h1>nas dashboard: {esc(', '.join(names))}</h1>"
             f'<p class="meta">storage {esc(storage)} &middot; generated {now} &middot; '
             "MACs = multiply-accumulates of conv and linear layers (the papers' \"FLOPs\"), "
             "counted at the space's target spec</p>")
    analyses = [(study, trials, _analyse(study, trials)) for study, trials in studies]
    _answers_section(page, analyses)
    for study, trials, a in analyses:
        _study_section(page, study, trials, a)
    if len(studies) > 1:
        _edf_section(page, studies)
    _zoo_section(page, studies)
    return page.render()


def _analyse(study: dict, trials: list[dict]) -> dict:
    """The numbers the answers and the charts share: sample kind, effects on the sample,
    the baseline verdict."""
    m = C.Q.study_metric(study, trials)
    kind = C.sample_kind(study, trials)
    effects = C.parameter_effects(kind["trials"], m)
    return {"metric": m, "sample": kind, "effects": effects,
            "verdict": C.baseline_verdict(trials, study.get("baselines") or [], study, m)}


MAX_ANSWER_EFFECTS = 5


def _answers_section(page: Page, analyses) -> None:
    """The two answers a designer came for, before any chart."""
    page.add('<section id="answers"><h2>Answers</h2>')
    for study, trials, a in analyses:
        page.add(f'<h3>{esc(study["name"])}</h3>' + _what_matters(a)
                 + f'<p class="answer verdict"><b>Does it beat the baselines?</b> '
                   f'{esc(a["verdict"]["text"])}</p>')
    if len(analyses) > 1:
        page.add(_spaces_answer(analyses))
    page.add("</section>")


def _what_matters(a: dict) -> str:
    effects, kind = a["effects"], a["sample"]
    sample = (f'<span class="{"unbiased" if kind["unbiased"] else "biased"}">'
              f'{esc(kind["why"])}</span>')
    if not effects:
        return (f'<p class="answer matters"><b>What matters?</b> not enough finished trials '
                f'with varied parameters to say. {sample}</p>')
    strong = [e for e in effects if not e["includes_zero"]][:MAX_ANSWER_EFFECTS]
    none = [e for e in effects if e["includes_zero"]]
    from nas.dashboard.figures import effect_text
    if strong:
        items = "".join(f"<li><b>{esc(e['name'])}</b> {esc(_direction(e))}: "
                        f"{esc(effect_text(e))}</li>" for e in strong)
        head = (f"{len([e for e in effects if not e['includes_zero']])} of {len(effects)} "
                "parameters have an effect whose interval excludes zero:")
    else:
        items, head = "", (f"no parameter's effect interval excludes zero ({len(effects)} "
                           "parameters): on this sample, none can be told from noise.")
    rest = (f"<p class=\"meta\">No evidence of an effect ({len(none)}): "
            + esc(", ".join(e["name"] for e in none)) + "</p>") if none and strong else ""
    return (f'<div class="answer matters"><p><b>What matters?</b> {esc(head)}</p>'
            + (f"<ul>{items}</ul>" if items else "") + rest
            + f'<p class="meta">Sample: {sample}. {esc(C.sample_size_note(effects))}</p></div>')


def _direction(e: dict) -> str:
    if e["statistic"] != "spearman":
        best = (max if e.get("sense", "max") == "max" else min)(e["levels"], key=lambda lv: lv["mean"])
        return f"(best mean with {C._fmt(best['value'])})"
    lo, hi = e["levels"][0]["value"], e["levels"][-1]["value"]
    if len(e["levels"]) == 2:                      # bools, two choices: name the better one
        return f"(better with {C._fmt(hi if e['effect'] > 0 else lo)})"
    return f"({'larger' if e['effect'] > 0 else 'smaller'} is better, {C._fmt(lo)}..{C._fmt(hi)})"


def _spaces_answer(analyses) -> str:
    """Which design space is better: median error of each study's sample."""
    parts = []
    for study, trials, a in analyses:
        label, to = C.edf_value(a["metric"])
        errs = sorted(to(a["metric"].value(t)) for t in C.finished(a["sample"]["trials"], a["metric"]))
        if errs:
            med = errs[len(errs) // 2] if len(errs) % 2 else (errs[len(errs) // 2 - 1] + errs[len(errs) // 2]) / 2
            parts.append(f"{study['name']}: median {label} {med:.4f} over {len(errs)} trials "
                         f"({'random sample' if a['sample']['unbiased'] else 'BIASED sample'})")
    return ('<p class="answer spaces"><b>Which design space?</b> ' + esc("; ".join(parts))
            + " (the EDFs below compare the whole distributions).</p>")


def _study_section(page: Page, study: dict, trials: list[dict], a: dict | None = None) -> None:
    a = a or _analyse(study, trials)
    m = a["metric"]
    baselines = study.get("baselines") or []
    states = Counter(t.get("state") for t in trials)
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
             + "".join(f"<div>{page.figure(F.pareto_figure(trials, c, m, baselines))}</div>"
                       for c in costs)
             + "</div>")
    prog = C.progress(trials, budget_macs=study.get("budget_macs"), metric=m)
    best = C.best_trial(trials, m)
    page.add('<h3>Search progress</h3>' + page.figure(F.progress_figure(prog)))
    curves = C.learning_curves(trials, m)
    if curves:
        page.add('<h3>Learning curves</h3>' + page.figure(F.curves_figure(curves)))
    effects = a["effects"]
    if effects:
        kind = a["sample"]
        page.add('<h3 id="effects">Per-parameter effects</h3><p class="meta">Ordinal parameters '
                 f"(numbers, bools) by Spearman's ρ between value and {esc(m.name)} (signed: ρ &gt; 0 "
                 "means larger values are better); unordered choices by ε², the share of the "
                 f"{esc(m.name)} ranks' variance their values explain, adjusted for the number of "
                 f"values. Intervals: {C.CONFIDENCE:.0%} percentile bootstrap over trials "
                 f"({C.N_BOOT} resamples); grey: the interval includes zero, no evidence. "
                 + esc(C.sample_size_note(effects)) + " "
                 + f'<span class="{"unbiased" if kind["unbiased"] else "biased"}">'
                 + esc(kind["why"]) + "</span></p>"
                 + page.figure(F.forest_figure(effects))
                 + f'<p class="meta">{esc(m.label.capitalize())} per value (parameters with '
                   "many values: bins of adjacent values), with each group's mean and its 95% "
                   "interval.</p>"
                 + page.figure(F.effects_figure(effects)))
        top = effects[:6]
        splits = [(e, C.split_edfs(kind["trials"], e, m)) for e in top]
        page.add('<h3 id="split-edfs">Error EDFs split by parameter value</h3>'
                 f'<p class="meta">F(e) = share of models with {esc(C.edf_value(m)[0])} below e, per '
                 f"value (or bin) of the {len(top)} parameters with the strongest effects; "
                 "ordinal values from light (low) to dark (high). "
                 + ("<b>" + esc(kind["why"]) + "</b>" if not kind["unbiased"]
                    else esc(kind["why"]) + ".")
                 + "</p>" + page.figure(F.split_edf_figure(splits)))
    if best and best.get("genotype"):
        page.add('<h3>Best architecture</h3>' + _summary_block(best)
                 + page.figure(F.dag_figure(_dag_choices(best, C.accuracy_front(trials, metric=m),
                                                         m)), config={"scrollZoom": True}))
    if baselines:
        page.add('<h3 id="baselines">Baselines (zoo nets trained under this study\'s '
                 'protocol)</h3>' + _baselines_table(baselines))
    page.add("<h3>Trials</h3>" + _trials_table(trials))


def _baselines_table(baselines: list[dict]) -> str:
    from nas.cost import human
    head = "".join(f"<th>{h}</th>" for h in ("net", "family", "seed", "state", "accuracy",
                                              "val loss", "MACs (target)", "params (target)",
                                              "published ImageNet top-1 (not comparable)",
                                              "seconds", "error"))
    rows = []
    for b in baselines:
        def num(v, f="{:.4f}"):
            return f.format(v) if C.is_number(v) else ""
        rows.append(f'<tr class="{esc(b.get("state"))}"><td>{esc(b["name"])}</td>'
                    f"<td>{esc(b.get('family') or '')}</td><td>{esc(b.get('seed'))}</td>"
                    f"<td>{esc(b.get('state'))}</td><td>{num(b.get('accuracy'))}</td>"
                    f"<td>{num(b.get('val_loss'))}</td>"
                    f"<td>{human(b['target_macs']) if C.is_number(b.get('target_macs')) else ''}</td>"
                    f"<td>{human(b['target_params']) if C.is_number(b.get('target_params')) else ''}</td>"
                    f"<td>{num(b.get('published_top1'), '{:.2f}%')}</td>"
                    f"<td>{num(b.get('duration_s'), '{:.0f}')}</td>"
                    f"<td>{esc((b.get('error') or '')[:200])}</td></tr>")
    return (f'<div class="tablewrap"><table class="baselines"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _zoo_section(page: Page, studies) -> None:
    page.add('<h2 id="zoo">Classic nets (zoo)</h2>')
    trained = [(s, t, s.get("baselines") or []) for s, t in studies if s.get("baselines")]
    if trained:
        page.add('<p class="meta">Accuracy under each study\'s own protocol (the only figure '
                 "comparable with its trials).</p>" + page.figure(F.baselines_figure(trained)))
    else:
        page.add('<p class="note">No zoo net has been trained under a study\'s protocol yet: '
                 "python -m nas.baselines --storage DB --study NAME trains the classics near "
                 "the budget.</p>")
    page.add('<h3>Published ImageNet figures (reference only)</h3><p class="meta">Top-1 as '
             "published for ImageNet at full training: a different task, data and budget from "
             "any study above, so not comparable with its accuracies.</p>"
             + page.figure(F.classic_figure(C.classic_nets())))


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
    return (f"<dl><dt>stages</dt><dd>{stages}</dd><dt>convs</dt>"
            f"<dd>{esc(C.conv_text(s))}</dd><dt>SE</dt>"
            f"<dd>{'yes' if s['se'] else 'no'}</dd><dt>space params</dt><dd>{params}</dd></dl>")


COLUMNS = ("number", "state", "seed_name", "params", "target_params", "target_macs",
           "proxy_macs", "accuracy", "val_loss", "train_loss", "proxy_score", "latency_ms",
           "duration_s", "worker", "error")
#: Shown only when some trial has a value (a proxy study has no accuracy, and vice versa).
OPTIONAL = ("val_loss", "train_loss", "proxy_score")

HEADERS = {"number": "#", "seed_name": "seed", "params": "space params",
           "target_params": "params (target)", "target_macs": "MACs (target)",
           "proxy_macs": "MACs (proxy)", "latency_ms": "latency ms", "duration_s": "seconds",
           "val_loss": "val loss", "train_loss": "train loss", "proxy_score": "proxy score"}


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
    # error = 1 - accuracy: studies ranked by a proxy score have no error to compare
    studies = [(s, trials) for s, trials in studies if C.finished(trials, C.Q.ACCURACY)]
    if not studies:
        return
    kinds = {s["name"]: C.sample_kind(s, trials) for s, trials in studies}
    groups = {f"{s['name']} [{s.get('space')}; "
              f"{'random sample' if kinds[s['name']]['unbiased'] else 'BIASED sample'}]":
              kinds[s["name"]]["trials"] for s, trials in studies}
    edfs = C.design_space_edfs(groups)
    biased = [n for n, k in kinds.items() if not k["unbiased"]]
    warn = ("" if not biased else
            '<p class="biased"><b>Biased sample:</b> '
            + esc("; ".join(f"{n}: {kinds[n]['why']}" for n in biased))
            + ". An EDF of a biased sample shows where the sampler went, not the design "
              "space.</p>")
    page.add('<h2 id="edfs">Design spaces compared: error EDFs</h2>'
             '<p class="meta">F(e) = share of models with validation error below e; the '
             "normalised curves weight models so every complexity bin (log-spaced MACs) has "
             "equal mass (Radosavovic et al. 2019, On Network Design Spaces for Visual "
             "Recognition). The method assumes each curve comes from a random sample of its "
             "design space.</p>" + warn + page.figure(F.edf_figure(edfs)))
