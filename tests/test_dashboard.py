"""Dashboard compute layer (Pareto sets, hypervolume, EDFs, effects, summaries) and render()."""
from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.cost import count
from nas.dashboard import DashboardError, main, render
from nas.dashboard import compute as C
from nas.genotype import Genotype
from nas.zoo.resnet import resnet

EVIL = "<script>alert(1)</script>"


# ------------------------------------------------------------------ a real store to read
def small_resnet(depths, width=16, groups=1, se=None, block="basic"):
    """A tiny ResNet genotype at 3x32x32 (fast to count and lay out)."""
    widths = tuple(width * 2 ** i for i in range(len(depths)))
    return resnet(block, tuple(depths), widths=widths, groups=groups, width_per_group=4 * width,
                  se_reduction=se, input_shape=(3, 32, 32), num_classes=10, name="t")


def make_store(path, study="demo", space="resnet_like", n=10, seed=0, fail_at=(3,), running_at=(7,),
               config=None):
    """Write a study of ``n`` trials of small ResNets through TrialStore's public API."""
    from nas.store import TrialStore
    store = TrialStore(path)
    store.open_study(study, space=space, budget_macs=200_000_000, params_budget=None,
                     objectives=["accuracy", "target_macs"], config={"n": n, **(config or {})})
    rng = random.Random(seed)
    seen = set()
    for i in range(n):
        while True:  # distinct architectures (the store records a repeat as a repeat)
            depths = [rng.choice([1, 2]) for _ in range(3)]
            width = rng.choice([8, 16])
            se = rng.choice([None, 4])
            if (tuple(depths), width, se) not in seen:
                seen.add((tuple(depths), width, se))
                break
        g = small_resnet(depths, width, se=se)
        c = count(g)
        run = store.join(study, "test-worker:1")["id"]
        slot = store.claim(study, run, None, params={"depth": sum(depths), "width": width,
                                                     "se": bool(se), "i": i},
                           genotype=g.to_json(), genotype_hash=g.canonical_hash(),
                           seed_name="resnet_tiny" if i == 0 else None,
                           target_params=c.params, target_macs=c.macs).trial_id
        if i in fail_at:
            store.finish(slot, "FAIL", error="TrialFailure: loss is NaN <b>at epoch 1</b>")
        elif i not in running_at:
            acc = 0.5 + 0.05 * sum(depths) + 0.01 * rng.random()
            epochs = [{"epoch": e, "val_accuracy": acc - 0.1 * (1 - e), "train_loss": 1.0}
                      for e in range(2)]
            store.finish(slot, "COMPLETE", accuracy=acc, epochs=epochs)
    store.close()
    return path


# ------------------------------------------------------------------ Pareto front
def brute_front(points, senses):
    return [i for i, p in enumerate(points)
            if all(C.is_number(v) for v in p)
            and not any(C.dominates(q, p, senses) for q in points)]


def test_pareto_front_max_accuracy_min_macs():
    pts = [(0.9, 10), (0.8, 5), (0.85, 12), (0.9, 10), (0.7, 5), (0.95, 20)]
    assert C.pareto_front(pts, ("max", "min")) == [0, 1, 3, 5]


def test_pareto_front_skips_missing_values():
    pts = [(None, 1), (0.5, float("nan")), (0.4, 3), (0.3, 4)]
    assert C.pareto_front(pts, ("max", "min")) == [2]


def test_pareto_front_three_objectives():
    pts = [(1, 1, 1), (0, 0, 2), (2, 2, 0), (2, 2, 2)]
    assert C.pareto_front(pts, ("min", "min", "min")) == [0, 1, 2]


def test_pareto_front_rejects_bad_senses():
    with pytest.raises(ValueError, match="'max' or 'min'"):
        C.pareto_front([(1, 2)], ("max", "smallest"))
    with pytest.raises(ValueError, match="one 'max' or 'min' per objective"):
        C.pareto_front([(1, 2)], ("max",))


coords = st.integers(0, 6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(coords, coords), max_size=14),
       st.sampled_from([("max", "min"), ("min", "min"), ("max", "max"), ("min", "max")]))
def test_pareto_front_2d_matches_definition(points, senses):
    assert C.pareto_front(points, senses) == brute_front(points, senses)


# ------------------------------------------------------------------ hypervolume
def test_hypervolume_single_point_is_a_rectangle():
    assert C.hypervolume_2d([(0.8, 0.25)], ("max", "min"), (0.0, 1.0)) == pytest.approx(0.8 * 0.75)


def test_hypervolume_two_points_union():
    # rectangles [0,0.6]x[0.5,1] and [0,0.9]x[0.8,1] overlap on [0,0.6]x[0.8,1]
    hv = C.hypervolume_2d([(0.6, 0.5), (0.9, 0.8)], ("max", "min"), (0.0, 1.0))
    assert hv == pytest.approx(0.6 * 0.5 + 0.9 * 0.2 - 0.6 * 0.2)


def test_hypervolume_ignores_points_beyond_reference():
    assert C.hypervolume_2d([(0.9, 2.0), (-0.1, 0.1)], ("max", "min"), (0.0, 1.0)) == 0.0


def grid_area(points, ref):
    """Exact union area of the boxes [p, ref] (minimisation) by coordinate compression."""
    xs = sorted({p[0] for p in points} | {ref[0]})
    ys = sorted({p[1] for p in points} | {ref[1]})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(p[0] <= x0 and p[1] <= y0 for p in points):
            area += (x1 - x0) * (y1 - y0)
    return area


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=12))
def test_hypervolume_matches_union_of_boxes(points):
    inside = [p for p in points if p[0] < 10 and p[1] < 10]
    assert C.hypervolume_2d(points, ("min", "min"), (10, 10)) == pytest.approx(grid_area(inside, (10, 10)))


def test_hypervolume_history_is_monotone_and_ends_at_total():
    rng = random.Random(1)
    pts = [(rng.random(), rng.random()) if rng.random() > 0.2 else None for _ in range(40)]
    hist = C.hypervolume_history(pts, ("max", "min"), (0.0, 1.0))
    assert len(hist) == 40
    assert all(a <= b for a, b in zip(hist, hist[1:]))
    assert hist[-1] == pytest.approx(C.hypervolume_2d([p for p in pts if p], ("max", "min"), (0, 1)))


def test_best_so_far_carries_over_missing_values():
    assert C.best_so_far([None, 0.5, 0.4, None, 0.7, float("nan"), 0.6]) == \
        [None, 0.5, 0.5, 0.5, 0.7, 0.7, 0.7]
    assert C.best_so_far([3, 5, 1, 2], "min") == [3, 3, 1, 1]


# ------------------------------------------------------------------ EDFs
def test_edf_steps():
    curve = C.edf([0.3, 0.1, 0.2, float("nan")])
    assert curve == {"x": [0.1, 0.2, 0.3], "y": pytest.approx([1 / 3, 2 / 3, 1.0]), "n": 3}


def test_weighted_edf_uses_weights():
    curve = C.edf([0.1, 0.2], weights=[3, 1])
    assert curve["y"] == pytest.approx([0.75, 1.0])


def test_complexity_weights_give_each_bin_equal_mass():
    cx = [1e6, 1.1e6, 1.2e6, 5e8, 1e9]
    edges = C.log_bins(cx, k=3)
    w = C.complexity_weights(cx, edges)
    assert sum(w) == pytest.approx(1.0)
    assert w[0] == w[1] == w[2] == pytest.approx(1 / 6)     # 3 models share bin 0 (of 2 used)
    assert w[3] + w[4] == pytest.approx(0.5)


def test_normalized_edfs_remove_the_complexity_confound():
    # error depends only on complexity; space "big" samples mostly big (good) models
    def err(c):
        return 1.0 - 0.1 * math.log10(c)

    def trials(cxs):
        return [{"state": "COMPLETE", "accuracy": 1 - err(c), "target_macs": c} for c in cxs]

    small = trials([10 ** (6 + 3 * i / 40) for i in range(40)])
    big = trials([10 ** (6 + 3 * i / 40) for i in range(40) if i % 4 == 0]
                 + [10 ** (8 + i / 30) for i in range(30)])
    out = C.design_space_edfs({"small": small, "big": big}, k=6)
    plain, norm = ({n: out["groups"][n][k] for n in out["groups"]} for k in ("plain", "normalized"))

    def median(curve):
        return next(x for x, y in zip(curve["x"], curve["y"]) if y >= 0.5)
    assert median(plain["big"]) < median(plain["small"]) - 0.05   # confounded
    assert abs(median(norm["big"]) - median(norm["small"])) < 0.05  # matched complexity


# ------------------------------------------------------------------ effects
def test_parameter_effects_rank_the_parameter_that_matters_first():
    rng = random.Random(0)
    trials = []
    for i in range(30):
        depth, noise = rng.choice([1, 2, 3]), rng.choice(["a", "b"])
        trials.append({"state": "COMPLETE", "accuracy": 0.1 * depth, "params": {"depth": depth, "noise": noise}})
    trials.append({"state": "FAIL", "accuracy": None, "params": {"depth": 9, "noise": "a"}})
    effects = C.parameter_effects(trials)
    assert [e["name"] for e in effects] == ["depth", "noise"]
    assert effects[0]["effect"] == pytest.approx(1.0) and not effects[0]["includes_zero"]
    assert effects[1]["includes_zero"]
    assert [lv["value"] for lv in effects[0]["levels"]] == [1, 2, 3]
    assert [lv["mean"] for lv in effects[0]["levels"]] == pytest.approx([0.1, 0.2, 0.3])
    assert 9 not in effects[0]["values"]                          # failed trials excluded


# ------------------------------------------------------------------ architectures
def test_arch_summary_reads_stages_groups_and_se():
    g = resnet("bottleneck", (2, 1, 3), widths=(16, 32, 64), groups=4, width_per_group=4,
               se_reduction=4, input_shape=(3, 32, 32), num_classes=10)
    s = C.arch_summary(g.to_json(), {"d": 6})
    assert [(st["name"], st["depth"], st["width"]) for st in s["stages"]] == \
        [("layer1", 2, 64), ("layer2", 1, 128), ("layer3", 3, 256)]
    assert s["groups"] == [4] and s["se"] is True and s["params"] == {"d": 6}
    # layer1's 3x3 convs have 4 channels in 4 groups: depthwise; the wider ones are grouped
    assert s["depthwise"] == 2 and C.conv_text(s) == "depthwise (2 convs), grouped (groups 4)"
    plain = C.arch_summary(small_resnet([1, 1]).to_json())
    assert plain["groups"] == [] and plain["se"] is False
    assert C.conv_text(plain) == "dense (groups 1)"


def test_arch_summary_counts_depthwise_convs_of_a_mobilenet():
    from nas.zoo import build
    g = build("mobilenet_v2")
    s = C.arch_summary(g.to_json())
    depthwise = sum(1 for n in g.graph if g.op(n) == "conv" and g.resolved_attrs(n)["groups"] > 1)
    assert depthwise == 17 and s["depthwise"] == 17 and s["groups"] == []
    assert C.conv_text(s) == "depthwise (17 convs)"


def test_arch_summary_reports_bad_genotype_instead_of_raising():
    assert "error" in C.arch_summary('{"format": "nope"}')


def test_dag_layout_orders_edges_left_to_right():
    g = small_resnet([2, 1])
    lay = C.dag_layout(g.to_json())
    x = {n["id"]: n["x"] for n in lay["nodes"]}
    assert len(lay["nodes"]) == len(g)
    assert lay["edges"] and all(x[a] < x[b] for a, b in lay["edges"])
    assert x[g.output] == max(x.values())


def test_classic_nets_are_counted_zoo_entries_with_top1():
    from nas.zoo import ZOO, build
    rows = C.classic_nets()
    assert {r["name"] for r in rows} == {n for n, e in ZOO.items() if e.top1 is not None}
    for r in rows[:2]:
        assert r["macs"] == count(build(r["name"])).macs


def test_progress_hypervolume_uses_the_budget_as_reference():
    trials = [{"number": 0, "state": "COMPLETE", "accuracy": 0.5, "target_macs": 50},
              {"number": 1, "state": "FAIL", "accuracy": None, "target_macs": 10},
              {"number": 2, "state": "COMPLETE", "accuracy": 0.8, "target_macs": 100}]
    p = C.progress(trials, budget_macs=200)
    assert p["best"] == [0.5, 0.5, 0.8]
    assert p["hypervolume"] == pytest.approx([0.5 * 0.75, 0.5 * 0.75, 0.5 * 0.75 + 0.3 * 0.5])


# ------------------------------------------------------------------ render and CLI
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "nas.db"
    make_store(path, "demo", n=10)
    make_store(path, EVIL, space="other_space", n=6, seed=1, fail_at=(), running_at=())
    return path


def test_render_writes_a_self_contained_page(store, tmp_path):
    out = render(str(store), ["demo"], tmp_path / "d.html")
    text = out.read_text()
    assert out == tmp_path / "d.html"
    assert "plotly.js v" in text and 'src="http' not in text            # inlined, offline
    assert text.count('class="plot"') >= 6                                # pareto x2, progress, effects, dag, zoo
    assert "Pareto front" in text and "Best architecture" in text and "Learning curves" in text
    assert "TrialFailure: loss is NaN &lt;b&gt;at epoch 1&lt;/b&gt;" in text   # error shown, escaped
    assert "Design spaces compared" not in text                           # one study: no EDFs


def test_render_compares_studies_and_escapes_names(store, tmp_path):
    out = render(str(store), ["demo", EVIL], tmp_path / "both.html")
    text = out.read_text()
    assert "Design spaces compared" in text
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_render_default_path_is_dashboards_study(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = render(str(store), [EVIL])
    assert out.parent.name == "dashboards" and out.suffix == ".html" and out.is_file()
    assert "<" not in out.name and "/" not in out.stem


def test_cli_renders_and_prints_path(store, tmp_path, capsys):
    assert main(["--storage", str(store), "--study", "demo", "-o", str(tmp_path / "x.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "x.html")


def test_cli_unknown_study(store, tmp_path, capsys):
    assert main(["--storage", str(store), "--study", "dem0", "-o", str(tmp_path / "y.html")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "unknown study 'dem0'" in err and "did you mean demo" in err
    assert not (tmp_path / "y.html").exists()


def test_cli_several_studies_and_all_studies(store, tmp_path):
    both = tmp_path / "both.html"
    assert main(["--storage", str(store), "--study", "demo", EVIL, "-o", str(both)]) == 0
    assert "Design spaces compared" in both.read_text()
    every = tmp_path / "all.html"
    assert main(["--storage", str(store), "-o", str(every)]) == 0
    assert "Study demo" in every.read_text()


def test_cli_unreadable_storage(tmp_path, capsys):
    assert main(["--storage", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n" * 100)
    assert main(["--storage", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.db" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "missing.db").exists()                         # nothing created


def test_dashboard_error_is_a_nas_error():
    from nas.errors import NasError
    with pytest.raises(NasError):
        render("/nonexistent/nas.db")


def test_python_m_entry_point_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nas.dashboard", "--storage", str(tmp_path / "no.db")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no.db" in r.stderr


def test_import_is_cheap():
    code = "import sys, nas.dashboard; print(any(m.split('.')[0] in ('plotly', 'torch') for m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


def test_trials_json_roundtrip_for_summaries(store):
    from nas.store import TrialStore
    trials = TrialStore(str(store)).trials("demo")
    best = C.best_trial(trials)
    assert best["accuracy"] == max(t["accuracy"] for t in trials if t["state"] == "COMPLETE")
    assert Genotype.from_json(best["genotype"]).canonical_hash() == best["genotype_hash"]
    assert json.loads(best["genotype"])["format"].startswith("nas-genotype")


def test_render_study_without_finished_trials(tmp_path):
    db = make_store(tmp_path / "e.db", "fresh", n=2, fail_at=(0,), running_at=(1,))
    text = render(str(db), None, tmp_path / "e.html").read_text()
    assert "No finished trials yet" in text and "TrialFailure" in text
    assert "Pareto fronts" not in text


def test_render_empty_storage_says_run_a_search(tmp_path):
    from nas.store import TrialStore
    TrialStore(tmp_path / "empty.db").close()
    with pytest.raises(DashboardError, match="holds no studies; run a search first"):
        render(str(tmp_path / "empty.db"))


def test_learning_curves_need_two_epochs():
    trials = [{"number": 1, "state": "PRUNED", "epochs": [
                  {"epoch": 0, "val_accuracy": 0.3}, {"epoch": 1, "val_accuracy": None},
                  {"epoch": 2, "val_accuracy": 0.5}]},
              {"number": 0, "state": "COMPLETE", "epochs": [{"epoch": 0, "val_accuracy": 0.4}]},
              {"number": 2, "state": "FAIL", "epochs": []}]
    assert C.learning_curves(trials) == [{"number": 1, "state": "PRUNED", "epoch": [0, 2],
                                          "values": [0.3, 0.5], "key": "val_accuracy"}]


def test_infeasible_trials_stay_off_the_front():
    trials = [{"number": 0, "state": "COMPLETE", "accuracy": 0.9, "target_macs": 10, "feasible": False},
              {"number": 1, "state": "COMPLETE", "accuracy": 0.5, "target_macs": 20}]
    assert [t["number"] for t in C.accuracy_front(trials)] == [1]
    assert C.best_trial(trials)["number"] == 1


def test_trials_table_marks_infeasible_and_escapes_errors():
    from nas.dashboard.html import _trials_table
    table = _trials_table([{"number": 1, "state": "PRUNED", "feasible": False, "error": "a < b",
                            "target_macs": 3_000_000_000, "params": {"w": 64}}])
    assert "PRUNED (infeasible)" in table and "a &lt; b" in table
    assert "3.000G" in table and "w=64" in table


def test_dag_view_of_a_long_net_says_what_is_in_view_and_shows_the_whole_net():
    from nas.dashboard import figures as F
    from nas.zoo import build
    lay = C.dag_layout(build("resnet50").to_json())
    span = max(n["x"] for n in lay["nodes"])
    assert span > F.DAG_WINDOW
    fig = F.dag_figure([("trial 1 (best)", lay)])
    assert fig.layout.xaxis.rangeslider.visible is True
    assert f"generations 0-{F.DAG_WINDOW} of 0-{span}" in fig.layout.title.text
    short = F.dag_figure([("trial 2", C.dag_layout(small_resnet([1, 1]).to_json()))])
    assert not short.layout.xaxis.rangeslider.visible and "generations" not in short.layout.title.text
