"""nas.export: a stored trial's genotype back out as JSON (and ONNX), by number or best."""
import json

import pytest

from nas.blocks import classifier, conv_bn_act
from nas.builder import GraphBuilder
from nas.cost import count
from nas.export import best_trial, main
from nas.genotype import Genotype
from nas.store import TrialStore, worker_id


def _net(width):
    b = GraphBuilder((3, 16, 16), name=f"w{width}")
    x = conv_bn_act(b, b.input, width, 3, 2)
    return b.build(classifier(b, x, 10), classifiers=["fc"])


@pytest.fixture
def db(tmp_path):
    store = TrialStore(tmp_path / "s.db")
    store.open_study("s", space="tiny", budget_macs=10**6, params_budget=None,
                     objectives=["accuracy", "macs"], config={})
    run = store.join("s")["id"]
    rows = [(0, 4, "COMPLETE", 0.5, True), (1, 8, "COMPLETE", 0.9, True),
            (2, 16, "COMPLETE", 0.99, False), (3, 32, "FAIL", None, True)]
    for number, width, state, acc, feasible in rows:
        g = _net(width)
        if not feasible:  # over budget: recorded, never trained
            store.record_over_budget("s", run, params={"width": width}, target_params=count(g).params,
                                     target_macs=count(g).macs, error="over budget")
            continue
        slot = store.claim("s", run, None, params={"width": width}, genotype=g.to_json(),
                           genotype_hash=g.canonical_hash(), target_params=count(g).params,
                           target_macs=count(g).macs).trial_id
        store.finish(slot, state, accuracy=acc, error="RuntimeError: boom" if state == "FAIL" else None)
    slot = store.claim("s", run, None, params={"width": 64}, genotype=None, genotype_hash=None,
                       target_params=None, target_macs=None).trial_id   # failed before building
    store.finish(slot, "FAIL", error="SpaceError: bad point")
    return tmp_path / "s.db"


def test_best_is_the_most_accurate_completed_feasible_trial(db, tmp_path, capsys):
    out = tmp_path / "best.json"
    assert main(["--storage", str(db), "--study", "s", "--best", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert Genotype.from_json(out.read_text()) == _net(8)      # trial 2 is over budget


def test_trial_by_number_round_trips_and_onnx_is_valid(db, tmp_path):
    import onnx

    out = tmp_path / "t3.json"
    assert main(["--storage", str(db), "--study", "s", "--trial", "3", "--out", str(out), "--onnx"]) == 0
    g = Genotype.from_json(out.read_text())
    assert g == _net(32) and json.loads(out.read_text())["nodes"]
    model = onnx.load(str(out.with_suffix(".onnx")))
    onnx.checker.check_model(model)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [3, 16, 16]


@pytest.mark.parametrize("args, says", [
    (["--study", "nope", "--best"], "no study 'nope'"),
    (["--study", "s", "--trial", "9"], "has no trial 9"),
    (["--study", "s", "--trial", "4"], "has no genotype"),
])
def test_bad_requests_exit_2_with_one_line(db, capsys, args, says):
    assert main(["--storage", str(db), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_database_is_not_created(tmp_path, capsys):
    assert main(["--storage", str(tmp_path / "x.db"), "--study", "s", "--best"]) == 2
    assert "no database" in capsys.readouterr().err and not (tmp_path / "x.db").exists()


def test_best_needs_a_completed_trial():
    with pytest.raises(ValueError, match="no completed trial"):
        best_trial([{"number": 0, "state": "FAIL", "accuracy": None, "genotype": "{}"}])


def test_best_picks_the_only_study_and_lists_several(db, tmp_path, capsys):
    out = tmp_path / "only.json"
    assert main(["--storage", str(db), "--best", "--out", str(out)]) == 0
    assert Genotype.from_json(out.read_text()) == _net(8)
    capsys.readouterr()
    store = TrialStore(db)
    store.open_study("other", space="tiny", budget_macs=None, params_budget=None,
                     objectives=["accuracy"], config={})
    store.close()
    assert main(["--storage", str(db), "--best"]) == 2
    err = capsys.readouterr().err
    assert "holds 2 studies; pass --study with one of: s, other" in err
    assert len(err.strip().splitlines()) == 1


def test_onnx_says_untrained_unless_weights_are_given(db, tmp_path, capsys):
    import onnx
    import torch
    from onnx import numpy_helper

    from nas.compiler import compile as compile_genotype

    out = tmp_path / "t1.json"
    assert main(["--storage", str(db), "--study", "s", "--trial", "1", "--out", str(out), "--onnx"]) == 0
    assert "UNTRAINED weights" in capsys.readouterr().err
    model = compile_genotype(_net(8))
    state = model.state_dict()
    bias = next(k for k in state if k.endswith("bias") and state[k].numel() == 10)
    state[bias] = torch.arange(10, dtype=torch.float32) * 0.5
    torch.save(state, tmp_path / "w.pt")
    trained = tmp_path / "trained.json"
    assert main(["--storage", str(db), "--study", "s", "--trial", "1", "--out", str(trained),
                 "--onnx", "--weights", str(tmp_path / "w.pt")]) == 0
    assert "UNTRAINED" not in capsys.readouterr().err
    inits = [numpy_helper.to_array(t) for t in onnx.load(str(trained.with_suffix(".onnx"))).graph.initializer]
    assert any(a.shape == (10,) and a.tolist() == [0.5 * i for i in range(10)] for a in inits)
    assert main(["--storage", str(db), "--study", "s", "--trial", "1", "--weights", "w.pt"]) == 2
    assert "add --onnx" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a state dict")
    assert main(["--storage", str(db), "--study", "s", "--trial", "1", "--out", str(trained),
                 "--onnx", "--weights", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert "cannot load --weights" in err and len(err.strip().splitlines()) == 1
