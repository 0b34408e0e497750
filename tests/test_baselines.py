"""``nas.baselines``: zoo nets trained under a study's protocol, stored beside its trials."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import pytest

from nas import baselines as B
from nas.cost import count
from nas.dashboard import compute as C
from nas.dashboard import render
from nas.search import SearchConfig
from nas.store import TrialStore
from nas.zoo import ZOO, build
from tests.test_dashboard import make_store


def new_study(path, name="s", budget="600MFLOPs", **cfg):
    """A study as nas.search opens it: its SearchConfig stored as the config."""
    c = SearchConfig(space="mobilenet_like", budget=budget, **cfg)
    store = TrialStore(path)
    store.open_study(name, space="mobilenet_like", budget_macs=c.budget_macs(),
                     params_budget=None, objectives=["accuracy", "macs"],
                     config={**asdict(c), "space_name": "mobilenet_like"})
    store.close()
    return path


class FakeEvaluator:
    """Stands in for training (tests of the bookkeeping): accuracy from the net's MACs."""

    def __init__(self):
        self.seen = []

    def __call__(self, genotype, on_epoch):
        macs = count(genotype).macs
        self.seen.append(genotype.name)
        if "shufflenet" in genotype.name:
            raise RuntimeError("loss is NaN")
        return {"accuracy": round(macs / 1e9, 4), "val_loss": 1.0, "proxy_macs": macs // 64,
                "proxy_params": 1, "epochs": [{"epoch": 0, "val_accuracy": 0.5}]}


def test_candidates_pick_the_classic_nearest_the_budget_per_family():
    rows = B.candidates((3, 224, 224), 1000, 600_000_000)
    names = [r["name"] for r in rows]
    assert names == ["squeezenet1_1", "mobilenet_v1", "mobilenet_v2_x1_4", "shufflenet_v2_x2_0",
                     "regnetx_600mf", "regnety_600mf"]
    assert all(300e6 <= r["macs"] <= 660e6 for r in rows)
    assert len({r["family"] for r in rows}) == len(rows)
    two = B.candidates((3, 224, 224), 1000, 600_000_000, per_family=2)
    assert "mobilenet_v2" in [r["name"] for r in two] and len(two) > len(rows)
    assert [r["name"] for r in B.candidates((3, 32, 32), 10, 600_000_000)] == ["wrn_40_2"]
    assert B.candidates((3, 64, 64), 1000, 600_000_000) == []          # no zoo net at 64 px


def test_candidates_by_name_and_no_budget():
    assert [r["name"] for r in B.candidates((3, 224, 224), 1000, None, names=["resnet18"])] == ["resnet18"]
    with pytest.raises(B.BaselineError, match="no MAC budget"):
        B.candidates((3, 224, 224), 1000, None)


def test_train_stores_baselines_skips_done_ones_and_records_failures(tmp_path):
    db = new_study(tmp_path / "b.db", seed=7)
    ev = FakeEvaluator()
    lines = []
    out = B.train_baselines(str(db), "s", nets=["mobilenet_v1_x0_5", "shufflenet_v2_x1_0"],
                            seeds=2, evaluator=ev, out=lines.append)
    assert sorted(ev.seen) == sorted(["mobilenet_v1_x0_5", "shufflenet_v2_x1_0"] * 2)
    assert [(b["name"], b["seed"], b["state"]) for b in out] == [
        ("shufflenet_v2_x1_0", 7, "FAIL"), ("shufflenet_v2_x1_0", 8, "FAIL"),
        ("mobilenet_v1_x0_5", 7, "COMPLETE"), ("mobilenet_v1_x0_5", 8, "COMPLETE")]
    m = out[2]
    g = build("mobilenet_v1_x0_5")
    assert m["target_macs"] == count(g).macs and m["genotype_hash"] == g.canonical_hash()
    assert m["accuracy"] == round(count(g).macs / 1e9, 4) and m["baseline"] is True
    assert m["evaluation"]["seed"] == 7 and m["evaluation"]["dataset"] == "mnist"
    assert m["published_top1"] == ZOO.get("mobilenet_v1_x0_5").top1
    assert "loss is NaN" in out[0]["error"]
    assert "4 to train (0 already stored)" in lines[0]
    ev2 = FakeEvaluator()
    B.train_baselines(str(db), "s", nets=["mobilenet_v1_x0_5", "shufflenet_v2_x1_0"], seeds=2,
                      evaluator=ev2, out=lines.append)
    assert ev2.seen == ["shufflenet_v2_x1_0"] * 2                      # only the failed ones again
    store = TrialStore(db)
    assert store.trials("s") == []                                     # never search trials
    assert len(B.read(store, "s")) == 4
    store.close()


def test_read_without_a_baselines_table(tmp_path):
    db = make_store(tmp_path / "t.db", "demo", n=3, fail_at=(), running_at=())
    store = TrialStore(db)
    assert B.read(store, "demo") == []
    store.close()


def test_dashboard_draws_baselines_and_the_verdict(tmp_path):
    db = make_store(tmp_path / "d.db", "demo", n=10)
    B.write(TrialStore(db), "demo", {"name": "mobilenet_v2", "family": "mobilenet_v2", "seed": 0,
                                     "state": "COMPLETE", "accuracy": 0.55, "target_macs": 1000,
                                     "target_params": 10, "published_top1": 71.878,
                                     "genotype": build("mobilenet_v2").to_json()})
    text = render(str(db), ["demo"], tmp_path / "d.html").read_text()
    answers = text.index('id="answers"')
    assert answers < text.index('class="plot"')                         # answers before charts
    assert "Does it beat the baselines?" in text and "beats the best baseline" in text
    assert "noise unknown" in text and "mobilenet_v2: accuracy 0.5500" in text
    assert "baselines (zoo nets, same protocol)" in text                 # on the Pareto charts
    assert "Classic nets trained under each study" in text
    assert "Published ImageNet figures (reference only)" in text
    assert "depthwise (17 convs)" in text                               # baseline hover summary


def test_cli_bad_inputs_are_one_line(tmp_path):
    db = new_study(tmp_path / "c.db")
    def files():
        return {f.name: f.read_bytes() for f in sorted(db.parent.glob(db.name + "*"))}

    before = files()
    for args, msg in ((["--study", "nope"], "no study 'nope'"),
                      (["--study", "s", "--band", "x"], "--band 'x' is not LOW,HIGH"),
                      (["--study", "s", "--nets", "resnet_18"], "resnet_18"),
                      (["--study", "s", "--seeds", "0"], "--seeds")):
        r = subprocess.run([sys.executable, "-m", "nas.baselines", "--storage", str(db), *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert msg in r.stderr and "Traceback" not in r.stderr
        assert files() == before, args  # bad input leaves the store as it was
    r = subprocess.run([sys.executable, "-m", "nas.baselines", "--storage", str(tmp_path / "no.db"),
                        "--study", "s"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no database" in r.stderr and not (tmp_path / "no.db").exists()


@pytest.mark.slow
def test_cli_trains_a_net_for_real_with_the_studys_protocol(tmp_path):
    db = new_study(tmp_path / "r.db", limit=96, resolution=16, batch_size=16, workers=1)
    make_store(db, "other", n=2, fail_at=(), running_at=())
    r = subprocess.run([sys.executable, "-m", "nas.baselines", "--storage", str(db), "--study", "s",
                        "--nets", "mobilenet_v1_x0_25", "--device", "cpu"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "mobilenet_v1_x0_25" in r.stdout and "limit 96" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("Found vs baselines: no finished search trial")
    store = TrialStore(db)
    (b,) = B.read(store, "s")
    store.close()
    assert b["state"] == "COMPLETE" and 0 <= b["accuracy"] <= 1 and b["proxy_macs"] > 0
    assert b["evaluation"]["resolution"] == 16 and len(b["epochs"]) == 1


def test_baselines_round_trip_on_both_back_ends(storage_url):
    store = TrialStore(storage_url)
    store.open_study("s", space="mobilenet_like", budget_macs=600_000_000, params_budget=None,
                     objectives=["accuracy", "macs"], config={"seed": 3})
    assert B.read(store, "s") == []                                    # no table yet
    big = 16_414_000_000                                              # over 2**31: 64-bit column
    for seed, acc in ((3, 0.5), (4, 0.7), (3, 0.6)):                  # the last replaces (net, 3)
        B.write(store, "s", {"name": "resnext101_32x8d", "family": "resnext", "seed": seed,
                             "state": "COMPLETE", "accuracy": acc, "target_macs": big,
                             "target_params": 88_791_336, "epochs": [{"epoch": 0}]})
    rows = B.read(store, "s")
    store.close()
    assert [(b["seed"], b["accuracy"], b["target_macs"]) for b in rows] == [(3, 0.6, big), (4, 0.7, big)]
    assert C.seed_noise(rows)["sd"] == pytest.approx(((0.7 - 0.6) ** 2 / 2) ** 0.5)
