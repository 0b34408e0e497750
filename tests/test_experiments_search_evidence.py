"""experiments/search_evidence.py on tiny inputs: hypervolume, equal-count comparison, report."""
import random

import pytest

from tests.conftest import experiment

se = experiment("search_evidence")


def test_hypervolume_by_hand():
    ref = (0.1, 2.0)
    # one point: a single rectangle
    assert se.hypervolume_2d([(0.6, 1.0)], ref) == pytest.approx(0.5 * 1.0)
    # a staircase of two front points plus a dominated one
    pts = [(0.5, 0.5), (0.9, 1.5), (0.4, 1.0)]
    assert se.hypervolume_2d(pts, ref) == pytest.approx(0.4 * 1.5 + 0.4 * 0.5)
    # points no better than the reference add nothing; order does not matter
    assert se.hypervolume_2d([(0.05, 1.0), (0.9, 2.5)], ref) == 0.0
    assert se.hypervolume_2d([], ref) == 0.0
    assert se.hypervolume_2d(pts[::-1], ref) == se.hypervolume_2d(pts, ref)


def test_hypervolume_matches_optuna():
    np = pytest.importorskip("numpy")
    hv = pytest.importorskip("optuna._hypervolume")
    rng = random.Random(3)
    for _ in range(20):
        pts = [(rng.random(), rng.uniform(0, 2)) for _ in range(rng.randint(1, 12))]
        ref = (0.1, 2.0)
        # optuna minimises both: negate quality
        inside = [(-q, c) for q, c in pts if q > ref[0] and c < ref[1]]
        want = (hv.compute_hypervolume(np.array(inside), np.array([-ref[0], ref[1]]))
                if inside else 0.0)
        assert se.hypervolume_2d(pts, ref) == pytest.approx(want, rel=1e-12, abs=1e-15)


def _trial(number, acc, macs, state="COMPLETE", **kw):
    return {"number": number, "state": state, "accuracy": acc, "val_loss": None if acc is None else 1 - acc,
            "target_macs": int(macs * 1e9), "params": {"n": number}, "duration_s": 2.0, **kw}


def test_run_points_takes_the_first_k_trained_by_number():
    ts = [_trial(2, 0.9, 1.0), _trial(0, 0.5, 1.5), _trial(1, None, 1.0, state="FAIL"),
          _trial(3, 0.7, 0.5)]
    assert se.run_points(ts, 2) == [(0.5, 1.5), (0.9, 1.0)]
    # a repeat reuses an earlier trial's result and does not count toward K
    assert se.run_points(ts + [_trial(4, 0.9, 1.0, duplicate_of=2)]) == se.run_points(ts)
    flat = [x for p in se.run_points(ts, None, "val_loss") for x in p]
    assert flat == pytest.approx([-0.5, 1.5, -0.1, 1.0, -0.3, 0.5])


def test_summary_compares_at_equal_counts_and_renders(tmp_path):
    runs = {
        "tpe-s0": [_trial(0, 0.5, 1.0), _trial(1, 0.9, 1.0), _trial(2, 0.95, 0.5)],
        "tpe-s1": [_trial(0, 0.6, 1.0), _trial(1, 0.7, 1.0)],
        "nsga2-s0": [_trial(0, 0.5, 1.0), _trial(1, 0.6, 1.0), _trial(2, 0.6, 1.9)],
        "nsga2-s1": [_trial(0, 0.6, 1.0), _trial(1, 0.6, 1.0)],
        "random-s0": [_trial(0, 0.5, 1.0), _trial(1, 0.6, 1.0), _trial(2, 0.1, 1.0),
                      _trial(3, None, 0.2, feasible=False, state="PRUNED")],
        "random-s1": [_trial(0, 0.6, 1.0), _trial(1, 0.6, 1.0)],
    }
    s = se.build_summary(runs, budget_macs=2_000_000_000)
    assert s["ks"] == [2] and s["k_all"] == 2
    c = s["compare"]["2"]
    # K=2, ref (0.1, 2): tpe-s0 (0.9-0.1)*1, tpe-s1 0.6; random 0.5 on both seeds
    assert c["tpe"]["hv"]["mean"] == pytest.approx(0.7)
    assert c["random"]["hv"]["mean"] == pytest.approx(0.5)
    assert c["tpe"]["ratio_of_means"] == pytest.approx(1.4)
    assert c["tpe"]["paired_ratio"]["min"] == pytest.approx(1.2)
    assert c["tpe"]["paired_ratio"]["max"] == pytest.approx(1.6)
    assert c["tpe"]["wins_vs_baseline"] == 2 and c["nsga2"]["ties_vs_baseline"] == 2
    r0 = s["runs"]["random-s0"]
    assert r0["trained"] == 3 and r0["over_budget"] == 1 and r0["best"]["accuracy"] == 0.6
    md = se.render(s, charted=False)
    assert "| 2 | tpe | 2 | 0.7000 |" in md and "| random-s0 | 3 |" in md
    assert "Not run yet." in md


def test_best_found_respects_the_mac_cap():
    runs = {"tpe-s0": [_trial(0, 0.99, 1.9), _trial(1, 0.9, 1.5)],
            "random-s0": [_trial(0, 0.9, 1.2), _trial(1, 0.8, 0.1)]}
    b = se.best_found(runs, max_macs=1_814_073_344)
    # 0.99 is over the cap; of the two 0.9s the cheaper one wins
    assert (b["run"], b["number"], b["search_score"]) == ("random-s0", 0, 0.9)
    with pytest.raises(se.NasError):
        se.best_found(runs, max_macs=10)


def test_report_without_databases_exits_2(tmp_path, capsys):
    assert se.main(["--out", str(tmp_path), "report"]) == 2
    assert "no search databases" in capsys.readouterr().err


def test_search_one_caches_trainings_across_samplers(tmp_path, tiny_space, capsys, monkeypatch,
                                                     one_torch_thread):
    """Random and TPE of one seed start with the same proposals: TPE's are cache hits, with
    the very results random's run trained; a dry run lists random's proposals."""
    from nas.genotype import Genotype

    monkeypatch.setattr(se, "SPACE", str(tiny_space))
    cache = tmp_path / "cache.sqlite"
    runs = {}
    for sampler in ("random", "tpe"):
        argv = ["search-one", "--cache", str(cache), "--",
                *se.search_args(sampler, 1, 3, tmp_path), "--limit", "60", "--resolution", "8"]
        assert se.main(argv) == 0
        runs[sampler] = se.read_trials(tmp_path / f"{se.run_name(sampler, 1)}.db")
    out = capsys.readouterr().out
    assert "cache: 0 hit(s), 3 training(s)" in out and "cache: 3 hit(s), 0 training(s)" in out
    assert ([(t["params"], t["accuracy"]) for t in runs["tpe"]]
            == [(t["params"], t["accuracy"]) for t in runs["random"]])
    # random's proposals do not depend on the results: a dry run lists the same ones
    (tmp_path / "dry").mkdir()
    dry = se.random_proposals(1, 3, tmp_path / "dry")
    assert ([Genotype.from_json(g).canonical_hash() for g in dry]
            == [Genotype.from_json(t["genotype"]).canonical_hash() for t in runs["random"]])
