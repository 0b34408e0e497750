"""Write the report of a design-space study: markdown with the dashboard's numbers and PNG
screenshots of the dashboard's sections (headless Chromium).

    python experiments/design_space_report.py --storage /tmp/dse/dse.db \\
        --study resnet_like-600M-sweep --study mobilenet_like-600M-sweep \\
        --out experiments/results/design_space_600M

Every number in the markdown is computed here from the store by the dashboard's own
functions (nas.dashboard.compute), so the page and the report agree.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from nas.cost import human
from nas.dashboard import compute as C
from nas.dashboard import load
from nas.dashboard.figures import effect_text
from nas.dashboard.html import _analyse, build_page

SECTIONS = ("answers", "effects", "split-edfs", "baselines", "edfs", "zoo")
PROBE = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var out = {height: document.documentElement.scrollHeight, tops: {}};
  document.querySelectorAll("[id]").forEach(function (e) {
    if (!/^fig/.test(e.id) && !(e.id in out.tops))
      out.tops[e.id] = e.getBoundingClientRect().top + window.scrollY; });
  out.h2 = [].map.call(document.querySelectorAll("h2, h3"), function (h) {
    return [h.tagName + ":" + h.textContent, h.getBoundingClientRect().top + window.scrollY]; });
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre); }, 1500); });</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--virtual-time-budget=30000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no chromium: apt-get install -y chromium")


def screenshots(page: Path, out: Path, width: int = 1400) -> list[Path]:
    """Full-page screenshot of ``page`` cut into one PNG per section of the first study."""
    from PIL import Image

    tmp = Path(tempfile.mkdtemp())
    probed = tmp / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    base = [chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}"]
    r = subprocess.run(base + [f"--window-size={width},1200", "--dump-dom", probed.as_uri()],
                       capture_output=True, text=True, timeout=300)
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    info = json.loads(html.unescape(m.group(1)))
    height = int(info["height"]) + 20
    full = tmp / "full.png"
    subprocess.run(base + [f"--window-size={width},{height}", f"--screenshot={full}", page.as_uri()],
                   capture_output=True, text=True, timeout=300)
    img = Image.open(full)
    heads = [(top, text) for text, top in info["h2"]]
    written = []
    for name in SECTIONS:
        if name not in info["tops"]:
            continue
        top = info["tops"][name]
        # the answers run to the next h2 (they hold h3s); other sections to the next heading
        end = min((t for t, text in heads if t > top + 60
                   and (text.startswith("H2:") or name != "answers")), default=height)
        end = min(end, top + 2600)
        crop = img.crop((0, max(0, int(top) - 10), width, int(end)))
        path = out / f"dashboard_{name}.png"
        crop.save(path, optimize=True)
        written.append(path)
    return written


def effects_table(effects: list[dict]) -> list[str]:
    rows = ["| parameter | statistic | effect [95% interval] | n | evidence |", "|---|---|---|---|---|"]
    for e in effects:
        stat = "Spearman rho" if e["statistic"] == "spearman" else "epsilon^2 (ranks)"
        ci = f"[{e['low']:+.2f}, {e['high']:+.2f}]" if e["low"] is not None else "[too few]"
        rows.append(f"| {e['name']} | {stat} | {e['effect']:+.2f} {ci} | {e['n']} | "
                    f"{'no (interval includes 0)' if e['includes_zero'] else '**yes**'} |")
    return rows


def split_lines(trials: list[dict], effects: list[dict], m, k: int = 3) -> list[str]:
    label, to = C.edf_value(m)
    out = []
    for e in effects[:k]:
        curves = C.split_edfs(trials, e, m)
        parts = []
        for g in e["groups"]:
            vals = [to(m.value(t)) for t in trials
                    if C.usable(t, m) and e["name"] in (t.get("params") or {})
                    and C._key(t["params"][e["name"]]) in {C._key(v) for v in g["values"]}]
            if vals:
                parts.append(f"{g['label']}: median {statistics.median(vals):.3f} "
                             f"(n={curves[g['label']]['n']})")
        out.append(f"- **{e['name']}** ({effect_text(e)}): {label} by value: " + "; ".join(parts))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", required=True)
    p.add_argument("--study", action="append", required=True)
    p.add_argument("--out", required=True, help="folder for report.md and the PNGs")
    p.add_argument("--title", default="Design-space study")
    p.add_argument("--note", action="append", default=[], help="a paragraph for the report")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load(a.storage, a.study)
    page = (out / "dashboard.html").resolve()
    page.write_text(build_page(data, a.storage))
    lines = [f"# {a.title}", ""] + [n + "\n" for n in a.note]
    for study, trials in data:
        an = _analyse(study, trials)
        m, kind, effects = an["metric"], an["sample"], an["effects"]
        cfg = study.get("config") or {}
        done = C.finished(trials, m)
        secs = [t["duration_s"] for t in done if C.is_number(t.get("duration_s"))]
        start = min((t["started_at"] for t in trials if t.get("started_at")), default=None)
        end = max((t["finished_at"] for t in trials if t.get("finished_at")), default=None)
        states = {}
        for t in trials:
            key = t["state"] + ("" if t.get("feasible", True) else " (over budget)") + \
                (" (repeat)" if t.get("duplicate_of") is not None else "")
            states[key] = states.get(key, 0) + 1
        lines += [f"## {study['name']}", "",
                  f"- space `{study['space']}`, budget {human(study['budget_macs'])}MACs, "
                  f"sampler `{cfg.get('sampler')}`, seeds {'on' if cfg.get('seeds') else 'off'}: "
                  f"{kind['why']}",
                  f"- protocol: dataset {cfg.get('dataset')}, {cfg.get('limit')} images "
                  f"(train + val), {cfg.get('resolution')} px, {cfg.get('epochs')} epoch(s), "
                  f"batch {cfg.get('batch_size')}, lr {cfg.get('lr')}, training seed "
                  f"{cfg.get('seed')}; ranked by {m.name}",
                  f"- trials: {', '.join(f'{n} {s}' for s, n in sorted(states.items()))}; "
                  f"{len(done)} usable; wall {start:%H:%M}-{end:%H:%M} UTC; median "
                  f"{statistics.median(secs):.0f} s per trained trial" if secs and start and end
                  else f"- trials: {len(trials)}",
                  f"- best found: trial {an['verdict']['found']['number']}, {m.name} "
                  f"{m.value(an['verdict']['found']):.4f}, "
                  f"{human(an['verdict']['found']['target_macs'])}MACs" if an["verdict"]["found"]
                  else "- best found: none", "",
                  "**Does it beat the baselines?** " + an["verdict"]["text"], "",
                  "**What matters?** " + C.sample_size_note(effects), ""]
        lines += effects_table(effects) + [""]
        lines += ["Error EDFs split by the three strongest parameters:", ""]
        lines += split_lines(kind["trials"], effects, m) + [""]
        bl = study.get("baselines") or []
        if bl:
            lines += ["Baselines (zoo nets trained under this study's protocol):", "",
                      "| net | seed | state | " + m.name + " | MACs | published ImageNet top-1 | seconds |",
                      "|---|---|---|---|---|---|---|"]
            for b in bl:
                v = m.value(b)
                lines.append(f"| {b['name']} | {b['seed']} | {b['state']} | "
                             f"{'' if v is None else f'{v:.4f}'} | {human(b['target_macs'])} | "
                             f"{'' if b.get('published_top1') is None else b['published_top1']} | "
                             f"{b.get('duration_s') or 0:.0f} |")
            noise = C.seed_noise(bl, study, m)
            lines += ["", f"Seed-to-seed sd: {noise['sd']:.4f} ({noise['source']})" if noise
                      else "Seed-to-seed noise: unknown (baselines on one seed).", ""]
    if len(data) > 1:
        lines += ["## Design spaces compared", ""]
        for study, trials in data:
            an = _analyse(study, trials)
            label, to = C.edf_value(an["metric"])
            vals = [to(an["metric"].value(t)) for t in C.finished(an["sample"]["trials"], an["metric"])]
            q = statistics.quantiles(vals, n=4) if len(vals) >= 4 else []
            lines.append(f"- {study['name']}: {len(vals)} models, {label} median "
                         f"{statistics.median(vals):.3f}" + (f", quartiles {q[0]:.3f} / {q[2]:.3f}"
                                                              if q else "")
                         + f"; {an['sample']['why']}")
        lines.append("")
    shots = screenshots(page, out)
    lines += ["## Screenshots", ""] + [f"![{s.stem}]({s.name})" for s in shots] + [""]
    (out / "report.md").write_text("\n".join(lines))
    page.unlink()                              # 4+ MB of inlined plotly: not committed
    print(out / "report.md")
    for s in shots:
        print(s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
