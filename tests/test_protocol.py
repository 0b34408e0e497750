import dataclasses
import json
import sqlite3

import pytest

from nas.errors import NasError
from nas.evaluate.protocol import DEFAULT, SIGNALS, Protocol


def test_default_is_frozen_plain_data():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.epochs = 3
    assert Protocol(**DEFAULT.to_dict()) == DEFAULT


def test_a_bad_candidate_is_refused_before_anything_trains(tmp_path, tiny_space, capsys):
    from nas import calibrate

    out = tmp_path / "out"
    assert calibrate.main(["--space", str(tiny_space), "--candidate", "a:lr=-1",
                           "--out", str(out)]) == 2
    assert "lr must be a positive finite number" in capsys.readouterr().err
    assert not out.exists()


def test_images_and_val_fraction_reproduce_the_split():
    from nas.evaluate.data import load_dataset

    p = Protocol(train_images=160, val_images=40)
    ds = load_dataset(p.dataset, resolution=p.resolution, limit=p.images, val_fraction=p.val_fraction)
    assert (len(ds.train_y), len(ds.val_y)) == (160, 40)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=1), dict(warmup=1.0),
                                 dict(label_smoothing=-0.1), dict(signal="top5"),
                                 dict(lr=-1), dict(lr=float("nan")), dict(momentum=1.5),
                                 dict(weight_decay=-1e-4), dict(precise_bn=-1),
                                 dict(weight_average=0.5), dict(precise_bn=9, weight_average=1.0)])
def test_bad_values_are_refused(bad):
    with pytest.raises(NasError):
        DEFAULT.with_(**bad)


# ---------------------------------------------------------------- the split by count
def test_val_images_holds_out_that_many_and_reproduces_the_protocol_split():
    from nas.evaluate.data import load_dataset

    p = Protocol(train_images=160, val_images=60)
    by_count = load_dataset("mnist", resolution=p.resolution, limit=p.images, val_images=60)
    assert (len(by_count.train_y), len(by_count.val_y)) == (160, 60)
    ref = p.load()
    assert (by_count.val_x == ref.val_x).all() and (by_count.train_y == ref.train_y).all()


@pytest.mark.parametrize("kw", [dict(limit=100, val_images=100), dict(limit=None, val_images=5000),
                                dict(limit=100, val_images=0)])
def test_val_images_that_leave_nothing_to_train_are_refused(kw):
    from nas.evaluate.data import DatasetError, load_dataset

    with pytest.raises(DatasetError, match="val_images"):
        load_dataset("mnist", resolution=8, **kw)


# ---------------------------------------------------------------- the search's protocol flags
def test_search_flags_default_to_the_protocol():
    from nas.search import config_from_args

    c = config_from_args(["--space", "resnet_like"])
    assert (c.epochs, c.batch_size, c.lr, c.resolution, c.dataset) == \
        (DEFAULT.epochs, DEFAULT.batch_size, DEFAULT.lr, DEFAULT.resolution, DEFAULT.dataset)
    assert (c.warmup, c.label_smoothing, c.transform, c.signal) == \
        (DEFAULT.warmup, DEFAULT.label_smoothing, DEFAULT.transform, DEFAULT.signal)
    assert c.limit == DEFAULT.images and c.resolved_val_images() == DEFAULT.val_images
    assert c.metric() == DEFAULT.signal


def test_search_flags_set_the_config_and_the_limit_follows_the_validation_images():
    from nas.search import config_from_args

    c = config_from_args(["--space", "resnet_like", "--warmup", "0.1", "--label-smoothing",
                          "0.05", "--transform", "stem:1", "--signal", "val_loss",
                          "--val-images", "700"])
    assert (c.warmup, c.label_smoothing, c.transform, c.signal, c.val_images) == \
        (0.1, 0.05, "stem:1", "val_loss", 700)
    assert c.limit == DEFAULT.train_images + 700          # the training images stay the protocol's
    assert c.metric() == "val_loss" and c.study_name("r").endswith("val_loss+macs")
    assert config_from_args(["--space", "x", "--val-images", "50", "--limit", "300"]).limit == 300


def test_search_flags_reach_the_trainer(monkeypatch):
    """A real (tiny) training through the search's evaluator: the split has the asked
    validation images and train() gets the recipe and the transform."""
    from nas.cost import count
    from nas.evaluate import train as train_mod
    from nas.search import SearchConfig, TrainEvaluator
    from nas.spaces import load_space

    seen = {}
    real = train_mod.train

    def spy(genotype, dataset, **kw):
        seen.update(kw, train=len(dataset.train_y), val=len(dataset.val_y))
        return real(genotype, dataset, **kw)

    monkeypatch.setattr(train_mod, "train", spy)
    c = SearchConfig(space="resnet_like", limit=130, val_images=30, resolution=16, batch_size=16,
                     warmup=0.2, label_smoothing=0.1, transform="stem:1", precise_bn=32,
                     weight_average=0.25, device="cpu")
    ev = TrainEvaluator(c, (3, 224, 224), "cpu")
    space = load_space("resnet_like")
    g = space.build(space.complete_cheapest({}))
    out = ev(g, lambda e, a: None)
    assert (seen["train"], seen["val"]) == (100, 30)
    assert (seen["warmup"], seen["label_smoothing"], seen["transform"]) == (0.2, 0.1, "stem:1")
    assert (seen["precise_bn"], seen["weight_average"]) == (32, 0.25)
    proxy = train_mod.proxy_genotype(g, ev.dataset, "stem:1")
    assert out["proxy_macs"] == count(proxy).macs > count(train_mod.proxy_genotype(g, ev.dataset)).macs


def test_protocol_settings_are_stored_and_resuming_with_others_is_refused(tmp_path):
    from tests.test_search import FakeEvaluator, TinySpace

    from nas.search import SearchConfig, run_search
    from nas.store import StoreError, TrialStore

    def config(**kw):
        return SearchConfig(**{**dict(space="tiny", budget="300K", trials=1, workers=1,
                                      storage=str(tmp_path / "s.db"), study="t"), **kw})

    run_search(config(warmup=0.1, label_smoothing=0.05, transform="stem:1", val_images=300),
               evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)
    stored = TrialStore(tmp_path / "s.db").study("t")["config"]
    assert (stored["warmup"], stored["label_smoothing"], stored["transform"], stored["val_images"],
            stored["signal"]) == (0.1, 0.05, "stem:1", 300, DEFAULT.signal)
    for change in ({"warmup": 0.0}, {"label_smoothing": 0.0}, {"transform": "none"},
                   {"val_images": 200}, {"precise_bn": 100}, {"precise_bn": 100, "weight_average": 0.5}, {"signal": next(s for s in SIGNALS if s != DEFAULT.signal)}):
        base = dict(warmup=0.1, label_smoothing=0.05, transform="stem:1", val_images=300)
        with pytest.raises(StoreError, match="different settings"):
            run_search(config(**{**base, **change}, trials=2), evaluator=FakeEvaluator(),
                       space=TinySpace(), out=lambda s: None)


def test_a_study_stored_before_the_protocol_settings_resumes_with_the_old_split(tmp_path):
    """Configs stored before val_images & co. existed were trained with 20% held out and no
    warm-up, smoothing or transform: resuming them with those values is the same study."""
    from tests.test_search import FakeEvaluator, TinySpace

    from nas.baselines import study_config
    from nas.search import SearchConfig, run_search
    from nas.store import TrialStore

    c = SearchConfig(space="tiny", budget="300K", trials=1, workers=1, storage=str(tmp_path / "s.db"),
                     study="t", limit=2000)
    run_search(c, evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)
    store = TrialStore(tmp_path / "s.db")
    old = {k: v for k, v in store.study("t")["config"].items()
           if k not in ("val_images", "warmup", "label_smoothing", "transform", "precise_bn",
                        "weight_average", "signal")}
    store.close()
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("UPDATE nas_studies SET config = ? WHERE name = 't'", (json.dumps(old),))
    con.commit()
    con.close()
    _, then = study_config(TrialStore(tmp_path / "s.db"), "t")
    assert (then.val_images, then.warmup, then.transform, then.signal) == (400, 0.0, "none", "accuracy")
    assert (then.precise_bn, then.weight_average) == (0, 0.0)
    run_search(SearchConfig(**{**c.__dict__, "trials": 2, "val_images": 400, "signal": "accuracy"}),
               evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)


@pytest.mark.parametrize("args, says", [
    (["--warmup", "1"], "--warmup: must be a fraction in [0, 1)"),
    (["--precise-bn", "-5"], "--precise-bn: must be an integer >= 0"),
    (["--weight-average", "0.5"], "weight_average needs precise_bn > 0"),
    (["--label-smoothing", "nan"], "--label-smoothing: expected a finite number"),
    (["--transform", "stem:9"], "--transform: invalid choice"),
    (["--signal", "top5"], "--signal: invalid choice"),
    (["--val-images", "0"], "--val-images: must be an integer >= 1"),
    (["--val-images", "500", "--limit", "500"], "--val-images 500 must be under --limit 500"),
])
def test_bad_protocol_flags_exit_2_in_one_line(tmp_path, capsys, args, says):
    from nas.search import main

    rc = main(["--space", "resnet_like", "--budget", "2GFLOPs", "--storage",
               str(tmp_path / "s.db"), *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s.db").exists()


def test_a_search_ranked_by_train_val_loss_stores_the_training_loss_and_ranks_by_the_mean(tmp_path):
    """--signal train_val_loss end to end (store, Optuna, summary): the trials carry their
    training loss, the study's best is the lowest geometric mean, and Optuna got that value."""
    import optuna

    from tests.test_search import TinySpace

    from nas import quality
    from nas.cost import count
    from nas.search import SearchConfig, run_search
    from nas.store import TrialStore

    def evaluator(genotype, on_epoch):
        macs = count(genotype).macs
        val, tr = 1e5 / macs, macs / 1e5          # opposite orders: the mean decides
        on_epoch(1, 0.5)
        return {"accuracy": 0.5, "val_loss": val,
                "epochs": [{"epoch": 1, "val_accuracy": 0.5, "val_loss": val, "train_loss": tr ** 2}]}

    c = SearchConfig(space="tiny", budget="300K", trials=4, workers=1, storage=str(tmp_path / "s.db"),
                     study="t", signal="train_val_loss")
    run_search(c, evaluator=evaluator, space=TinySpace(), out=lambda s: None)
    store = TrialStore(tmp_path / "s.db")
    trials = [t for t in store.trials("t") if t["state"] == "COMPLETE"]
    trained = [t for t in trials if t["duplicate_of"] is None]
    assert trained and all(t["train_loss"] == t["epochs"][-1]["train_loss"] for t in trained)
    assert all(t["train_loss"] is not None for t in trials)     # repeats copy it too
    best = quality.best(trials, "train_val_loss")
    assert best["number"] == min(trials, key=lambda t: (t["val_loss"] * t["train_loss"]) ** 0.5)["number"]
    assert quality.study_metric(store.study("t")).name == "train_val_loss"
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 's.db'}")
    done = {t.user_attrs["nas_number"]: t.values[0] for t in study.trials if t.values}
    for t in trials:
        assert done[t["number"]] == pytest.approx(quality.train_val_loss(t))
