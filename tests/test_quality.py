"""nas.quality: one definition of a trial's quality, the best trial and the Pareto front, and the
places that use it (search summary, export --best, dashboard) agreeing on a proxy study."""
import math

import pytest

from nas import quality
from nas.quality import ACCURACY, VAL_LOSS


def T(n, *, acc=None, loss=None, score=None, macs=100, state="COMPLETE", **kw):
    return {"number": n, "state": state, "accuracy": acc, "val_loss": loss, "proxy_score": score,
            "target_macs": macs, "feasible": True, "duplicate_of": None, "genotype": "{}", **kw}


def test_metrics_name_their_key_and_direction():
    assert (ACCURACY.key, ACCURACY.direction) == ("accuracy", "maximize")
    assert (VAL_LOSS.key, VAL_LOSS.direction) == ("val_loss", "minimize")
    naswot = quality.metric("naswot")
    assert (naswot.name, naswot.key, naswot.direction) == ("naswot", "proxy_score", "maximize")
    assert quality.metric(None) is ACCURACY and quality.metric("val_loss") is VAL_LOSS
    assert quality.metric(naswot) is naswot


def test_train_val_loss_is_the_geometric_mean_of_validation_and_training_loss():
    tv = quality.metric("train_val_loss")
    assert tv.direction == "minimize" and tv is quality.TRAIN_VAL_LOSS
    assert tv.value(T(0, loss=0.4, train_loss=0.9)) == pytest.approx(0.6)
    # a trial dict without the column (a baseline, an older store): its last epoch's
    assert tv.value(T(0, loss=0.4, epochs=[{"train_loss": 2.0}, {"train_loss": 0.1}])) == \
        pytest.approx(0.2)
    assert tv.value(T(0, loss=0.4)) is None and tv.value(T(0, train_loss=0.4)) is None
    trials = [T(0, loss=0.2, train_loss=0.8), T(1, loss=0.3, train_loss=0.3), T(2, loss=0.25)]
    assert quality.best(trials, tv)["number"] == 1       # 0.3 < 0.4; trial 2 has no value
    assert quality.best(trials, VAL_LOSS)["number"] == 0


def test_values_are_finite_floats_or_none():
    assert ACCURACY.value({"accuracy": 1}) == 1.0
    for bad in (None, math.nan, math.inf, True, "0.5"):
        assert ACCURACY.value({"accuracy": bad}) is None
    assert ACCURACY.value({}) is None


def test_usable_excludes_unfinished_infeasible_duplicates_and_missing_values():
    ok = T(0, acc=0.5)
    assert quality.usable(ok)
    assert not quality.usable({**ok, "state": "PRUNED"})
    assert not quality.usable({**ok, "feasible": False})
    assert not quality.usable({**ok, "duplicate_of": 3})
    assert not quality.usable(ok, "val_loss")            # no loss recorded
    assert quality.usable(T(1, score=3.0), "synflow") and not quality.usable(T(1, score=3.0))


def test_best_follows_the_direction_then_cost_then_number():
    trials = [T(0, acc=0.8, loss=0.9, macs=50), T(1, acc=0.9, loss=0.4, macs=70),
              T(2, acc=0.9, loss=0.4, macs=60), T(3, acc=0.95, loss=0.2, state="FAIL"),
              T(4, acc=0.99, loss=0.1, feasible=False), T(5, acc=0.9, loss=0.4, macs=60)]
    assert quality.best(trials)["number"] == 2
    assert quality.best(trials, "val_loss")["number"] == 2
    losses = [T(0, loss=0.3), T(1, loss=0.2, macs=500), T(2, loss=0.25)]
    assert quality.best(losses, VAL_LOSS)["number"] == 1     # lower loss wins over cost
    assert quality.best([T(0, acc=None)]) is None


def test_front_is_non_dominated_cheapest_first_in_both_directions():
    trials = [T(0, acc=0.5, loss=0.9, macs=10), T(1, acc=0.4, loss=1.0, macs=20),
              T(2, acc=0.7, loss=0.6, macs=30), T(3, acc=0.9, loss=0.1, macs=5, state="FAIL"),
              T(4, acc=0.99, loss=0.01, macs=40, feasible=False), T(5, acc=0.7, loss=0.6, macs=25),
              T(6, macs=1)]
    assert [t["number"] for t in quality.front(trials)] == [0, 5]
    assert [t["number"] for t in quality.front(trials, "val_loss")] == [0, 5]
    scores = [T(0, score=600.0, macs=10), T(1, score=700.0, macs=30), T(2, score=650.0, macs=40)]
    assert [t["number"] for t in quality.front(scores, "naswot")] == [0, 1]


def test_study_metric_reads_the_config_then_the_trials():
    assert quality.study_metric({"config": {"proxy": "naswot"}}).name == "naswot"
    assert quality.study_metric({"config": {"signal": "val_loss"}}) is VAL_LOSS
    assert quality.study_metric({"config": {"proxy": None}}) is ACCURACY
    assert quality.study_metric(None, [T(0, score=1.0)]).key == "proxy_score"
    assert quality.study_metric(None, [T(0, acc=0.1)]) is ACCURACY


def test_search_export_and_dashboard_agree_on_a_proxy_study(tmp_path):
    from nas.dashboard import render
    from nas.export import select_trial
    from nas.search import pareto
    from nas.store import TrialStore

    db = tmp_path / "p.db"
    store = TrialStore(db)
    from nas.zoo.resnet import resnet

    for study in ("px", "py"):
        store.open_study(study, space="tiny", budget_macs=None, params_budget=None,
                         objectives=["accuracy", "macs"], config={"proxy": "naswot"})
        run = store.join(study, "w:1")["id"]
        for n, (score, macs) in enumerate([(600.0, 10), (700.0, 30), (650.0, 40)]):
            g = resnet("basic", (1, 1), widths=(8, 8 * (n + 1)), groups=1, width_per_group=32,
                       input_shape=(3, 16, 16), num_classes=10, name=f"t{n}")
            slot = store.claim(study, run, None, params={"w": n}, genotype=g.to_json(),
                               genotype_hash=g.canonical_hash(), target_macs=macs,
                               target_params=1).trial_id
            store.finish(slot, "COMPLETE", proxy_score=score)
    trials = store.trials("px")
    store.close()
    assert select_trial(str(db), "px", None)["number"] == 1
    assert [t["number"] for t in pareto(trials, "naswot")] == [0, 1]
    html = render(str(db), ["px"], tmp_path / "d.html").read_text()
    assert "No finished trials yet" not in html
    assert "Pareto fronts" in html and "naswot (maximize)" in html
    assert "Naswot vs MACs (target spec): 2 of 3 non-dominated" in html
    both = render(str(db), None, tmp_path / "both.html").read_text()
    assert both.count("naswot (maximize)") == 2
    assert "error EDFs" not in both          # error = 1 - accuracy: proxy studies have none


@pytest.mark.parametrize("metric, best, hv", [
    ("accuracy", [0.5, 0.5, 0.8], [0.375, 0.375, 0.525]),   # fixed box: accuracy in [0, 1]
    ("val_loss", [0.9, 0.9, 0.3], [0.0, 0.0, 0.5]),         # box: worst..best loss seen
])
def test_dashboard_progress_follows_the_direction(metric, best, hv):
    from nas.dashboard import compute as C

    trials = [T(0, acc=0.5, loss=0.9, macs=50), T(1, state="FAIL"),
              T(2, acc=0.8, loss=0.3, macs=100)]
    p = C.progress(trials, budget_macs=200, metric=metric)
    assert p["best"] == best and p["metric"] == metric
    assert p["hypervolume"] == pytest.approx(hv)
