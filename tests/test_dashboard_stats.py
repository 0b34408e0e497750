"""Statistics of the dashboard on synthetic data with a known answer: parameter effects with
bootstrap intervals, bins, split EDFs, sample kinds, the baseline verdict and label placement."""
from __future__ import annotations

import math
import random

import pytest

from nas.dashboard import compute as C
from nas.dashboard import figures as F


def planted(n=60, seed=1, sd=0.05):
    """Trials where accuracy rises with ``depth`` (planted effect); ``width`` (many integer
    values), ``kind`` (three strings) and ``se`` (bool) are pure noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = {"depth": rng.randint(1, 8), "width": rng.randrange(80, 321, 8),
             "kind": rng.choice(["x", "y", "z"]), "se": rng.choice([True, False])}
        out.append({"number": i, "state": "COMPLETE", "params": p,
                    "accuracy": 0.5 + 0.03 * p["depth"] + rng.gauss(0, sd)})
    return out


def by_name(effects):
    return {e["name"]: e for e in effects}


def test_planted_effect_ranks_first_and_its_interval_excludes_zero():
    effects = C.parameter_effects(planted())
    e = effects[0]
    assert e["name"] == "depth" and e["statistic"] == "spearman" and e["kind"] == "ordinal"
    assert e["n"] == 60 and e["low"] > 0 and not e["includes_zero"]
    assert e["low"] < e["effect"] < e["high"]


def test_pure_noise_parameters_intervals_include_zero():
    effects = by_name(C.parameter_effects(planted()))
    for name in ("width", "kind", "se"):
        e = effects[name]
        assert e["includes_zero"] and e["low"] <= 0 <= e["high"], name
    assert effects["kind"]["statistic"] == "epsilon2" and effects["kind"]["kind"] == "categorical"
    assert effects["se"]["statistic"] == "spearman"                    # a bool is ordered


def test_the_issue_case_many_valued_noise_at_twelve_trials_is_not_an_effect():
    # 12 trials, a width with 10 distinct values and no effect: eta^2 called this 0.76
    rng = random.Random(3)
    trials = [{"state": "COMPLETE", "accuracy": rng.random(),
               "params": {"width6": 80 + 8 * (i % 10), "depth": rng.randint(1, 3)}}
              for i in range(12)]
    effects = by_name(C.parameter_effects(trials))
    assert effects["width6"]["includes_zero"] and effects["width6"]["n"] == 12
    assert len(effects["width6"]["groups"]) == C.MAX_BINS                # binned by order
    assert "SMALL SAMPLE" in C.sample_size_note(list(effects.values()))


def test_negative_effect_has_negative_rho():
    trials = [{"state": "COMPLETE", "accuracy": 1 - 0.05 * k + 0.001 * (i % 3),
               "params": {"k": k}} for i, k in enumerate([1, 2, 3, 4, 5, 6] * 5)]
    (e,) = C.parameter_effects(trials)
    assert e["effect"] < -0.9 and e["high"] < 0


def test_categorical_planted_effect_excludes_zero():
    rng = random.Random(5)
    trials = []
    for i in range(60):
        k = rng.choice(["bad", "good", "mid"])
        trials.append({"state": "COMPLETE", "params": {"k": k},
                       "accuracy": {"bad": 0.2, "mid": 0.5, "good": 0.8}[k] + rng.gauss(0, 0.1)})
    (e,) = C.parameter_effects(trials)
    assert e["statistic"] == "epsilon2" and not e["includes_zero"] and e["effect"] > 0.5


def test_intervals_are_reproducible_and_need_four_trials():
    a, b = C.parameter_effects(planted(seed=2)), C.parameter_effects(planted(seed=2))
    assert [(e["low"], e["high"]) for e in a] == [(e["low"], e["high"]) for e in b]
    few = [{"state": "COMPLETE", "accuracy": 0.1 * i, "params": {"d": i}} for i in range(3)]
    (e,) = C.parameter_effects(few)
    assert e["low"] is None and e["includes_zero"] and e["effect"] == pytest.approx(1.0)


def test_constant_parameters_and_conditional_ones():
    trials = [{"state": "COMPLETE", "accuracy": 0.1 * i,
               "params": {"fixed": 3, **({"groups": i % 4 + 1} if i % 2 else {})}}
              for i in range(20)]
    effects = by_name(C.parameter_effects(trials))
    assert "fixed" not in effects                                     # never varied
    assert effects["groups"]["n"] == 10                               # only where it applies


def test_average_ranks_share_ties():
    import numpy as np
    r = C._avg_ranks_rows(np.array([[3.0, 1.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]]))
    assert r.tolist() == [[2.5, 0.0, 2.5, 1.0], [1.5, 1.5, 1.5, 1.5]]


def test_spearman_matches_a_hand_computed_value():
    # ranks x: 0 1 2 3 4; ranks y: 1 0 2 4 3 -> rho = 1 - 6 * sum d^2 / (n (n^2 - 1)) = 0.8
    rho = C._spearman_rows([[1, 2, 3, 4, 5]], [[0.2, 0.1, 0.3, 0.9, 0.5]])[0]
    assert rho == pytest.approx(0.8)


def test_bins_keep_order_and_never_split_a_value():
    trials = [{"state": "COMPLETE", "accuracy": 0.5, "params": {"w": 8 * (i % 20)}}
              for i in range(100)]
    (e,) = C.parameter_effects(trials)
    groups = e["groups"]
    assert len(groups) == C.MAX_BINS and sum(g["n"] for g in groups) == 100
    flat = [v for g in groups for v in g["values"]]
    assert flat == sorted(flat) and len(flat) == len(set(flat)) == 20
    assert groups[0]["label"] == f"0-{groups[0]['values'][-1]}"


def test_detectable_rho_and_note():
    assert C.detectable_rho(50) == pytest.approx(math.tanh(1.959964 / math.sqrt(47)), abs=1e-6)
    assert C.detectable_rho(4) is None
    note = C.sample_size_note(C.parameter_effects(planted()))
    assert "60 trials, 4 parameters" in note and "|rho| > 0.25" in note
    assert "about 0.2 of 4 intervals exclude zero by chance" in note and "SMALL" not in note


def test_split_edfs_count_each_group():
    trials = planted()
    e = by_name(C.parameter_effects(trials))["kind"]
    curves = C.split_edfs(trials, e)
    assert sorted(curves) == ["x", "y", "z"]
    assert sum(c["n"] for c in curves.values()) == 60
    assert all(c["y"][-1] == pytest.approx(1.0) for c in curves.values())


def test_sample_kind_random_vs_tpe():
    trials = planted(10) + [{"number": 99, "state": "COMPLETE", "accuracy": 0.9,
                             "seed_name": "resnet18", "params": {}}]
    rnd = C.sample_kind({"config": {"sampler": "random"}}, trials)
    assert rnd["unbiased"] and len(rnd["trials"]) == 10 and "1 seed" in rnd["why"]
    tpe = C.sample_kind({"config": {"sampler": "tpe", "seeds": True}}, trials)
    assert not tpe["unbiased"] and "BIASED" in tpe["why"] and len(tpe["trials"]) == 11
    assert not C.sample_kind({}, trials)["unbiased"]                    # unknown sampler


# ------------------------------------------------------------------ baselines verdict
def trial(n, acc, macs):
    return {"number": n, "state": "COMPLETE", "accuracy": acc, "target_macs": macs}


def base(name, acc, macs, seed=0):
    return {"name": name, "seed_name": name, "baseline": True, "state": "COMPLETE",
            "accuracy": acc, "target_macs": macs, "target_params": 1, "seed": seed}


def test_verdict_without_baselines_or_trials():
    assert C.baseline_verdict([], [])["status"] == "no-trials"
    v = C.baseline_verdict([trial(0, 0.8, 100)], [])
    assert v["status"] == "no-baselines" and "python -m nas.baselines" in v["text"]


def test_verdict_compares_with_the_best_baseline_at_no_more_macs():
    trials = [trial(0, 0.80, 500), trial(1, 0.90, 550), trial(2, 0.95, 700)]
    trials[2]["feasible"] = False                                     # over budget: not found
    baselines = [base("small", 0.70, 300), base("mid", 0.85, 540), base("big", 0.99, 600)]
    v = C.baseline_verdict(trials, baselines, {"config": {"seed": 0}})
    assert v["found"]["number"] == 1 and v["baseline"]["name"] == "mid"
    assert v["diff"] == pytest.approx(0.05) and v["status"] == "beats"
    assert "noise unknown" in v["text"] and "+0.0500" in v["text"] and "mid" in v["text"]


def test_verdict_with_noise_from_two_seeds():
    trials = [trial(0, 0.90, 550)]
    baselines = [base("a", 0.86, 500, 0), base("a", 0.88, 500, 1),
                 base("b", 0.50, 400, 0), base("b", 0.54, 400, 1)]
    noise = C.seed_noise(baselines)
    # pooled within-net variance: ((0.01^2 * 2) + (0.02^2 * 2)) / 2 dof
    assert noise["sd"] == pytest.approx(math.sqrt((2e-4 + 8e-4) / 2)) and noise["n"] == 2
    v = C.baseline_verdict(trials, baselines, {"config": {"seed": 0}})
    assert v["baseline"]["name"] == "a" and v["baseline"]["seed"] == 0   # the study's seed
    assert v["diff"] == pytest.approx(0.04)
    assert v["status"] == "beats-within-noise" and "within noise" in v["text"]   # 0.04 < 2*sqrt2*0.0224
    cal = C.baseline_verdict(trials, baselines, {"config": {"seed": 0, "seed_noise": 0.005}})
    assert cal["status"] == "beats" and "protocol calibration" in cal["text"]


def test_verdict_names_a_better_baseline_that_costs_more_within_the_budget():
    trials = [trial(0, 0.80, 500)]
    baselines = [base("cheap", 0.10, 300), base("dear", 0.60, 510), base("over", 0.95, 700)]
    v = C.baseline_verdict(trials, baselines, {"budget_macs": 600, "config": {}})
    assert v["baseline"]["name"] == "cheap" and [b["name"] for b in v["dearer"]] == ["dear"]
    assert "best baseline within the budget costs more MACs than the found net: dear" in v["text"]


def test_verdict_when_every_baseline_costs_more():
    v = C.baseline_verdict([trial(0, 0.9, 100)], [base("big", 0.5, 300)])
    assert v["status"] == "no-cheaper-baseline" and "big" in v["text"]


# ------------------------------------------------------------------ label placement
def boxes_overlap(points, labels, pos, font_px=11, area=F.LABEL_AREA):
    """Re-derive the label boxes as label_positions does and report any overlap."""
    xs = [math.log10(x) for x, _ in points]
    ys = [y for _, y in points]
    sx = area[0] / ((max(xs) - min(xs)) or 1) * 0.9
    sy = area[1] / ((max(ys) - min(ys)) or 1) * 0.9
    r, h = 7.0, font_px * 1.3
    boxes = []
    for (x, y), text, p in zip(points, labels, pos):
        if p is None:
            continue
        cx, cy, w = (math.log10(x) - min(xs)) * sx, (max(ys) - y) * sy, 0.6 * font_px * len(text)
        vert, horiz = p.split()
        bx = {"center": cx - w / 2, "right": cx + r, "left": cx - r - w}[horiz]
        by = {"top": cy - r - h, "bottom": cy + r, "middle": cy - h / 2}[vert]
        boxes.append((bx, by, bx + w, by + h))
    return any(F._overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_labels_never_overlap_and_crowded_ones_are_left_off():
    pts = [(1e9, 70.0)] * 12 + [(2e9, 75.0), (8e9, 60.0)]
    labels = [f"net_{i}" for i in range(14)]
    pos = F.label_positions(pts, labels)
    assert pos[-1] is not None and pos[-2] is not None                 # lone points labelled
    assert 1 <= sum(p is not None for p in pos[:12]) < 12               # the pile: some left off
    assert not boxes_overlap(pts, labels, pos)


def test_zoo_chart_labels_do_not_overlap():
    rows = C.classic_nets()
    pts = [(r["macs"] / 1e9, r["top1"]) for r in rows]
    labels = [r["name"] for r in rows]
    pos = F.label_positions(pts, labels, font_px=10, area=(1150.0, 400.0))
    assert not boxes_overlap(pts, labels, pos, font_px=10, area=(1150.0, 400.0))
    assert sum(p is not None for p in pos) >= len(rows) // 2
