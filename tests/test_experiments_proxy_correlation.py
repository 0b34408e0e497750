"""experiments/proxy_correlation.py on tiny settings: runs end to end, writes a sound table."""
import json

import numpy as np
import pytest
from scipy import stats

from tests.conftest import experiment

pc = experiment("proxy_correlation")


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 30).astype(float)
    y = x + rng.normal(size=30)
    assert pc.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert np.isnan(pc.spearman([1, 1, 1], [1, 2, 3]))


def test_tiny_experiment_end_to_end(tmp_path, capsys):
    out = tmp_path / "pc"
    argv = ["--n", "3", "--limit", "60", "--resolution", "8", "--epochs", "1",
            "--batch-size", "16", "--proxy-batch", "8", "--threads", "1", "--workers", "1", "--out", str(out)]
    assert pc.main(argv) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert len(result["rows"]) == 3
    proxies = [r["proxy"] for r in result["table"]]
    assert proxies == ["naswot", "synflow", "grad_norm", "snip", "params", "macs"]
    for r in result["table"]:
        assert np.isnan(r["spearman"]) or -1 <= r["spearman"] <= 1
    for row in result["rows"]:
        assert row["target_macs"] <= 1e9 and 0 <= row["accuracy"] <= 1
    md = out.with_suffix(".md").read_text()
    assert "| naswot |" in md and "Default screen" in md
    assert md in capsys.readouterr().out
    # the row log makes a re-run resume instead of retraining
    lines = out.with_suffix(".jsonl").read_text().splitlines()
    assert pc.main(argv) == 0
    assert out.with_suffix(".jsonl").read_text().splitlines() == lines


def test_bad_budget_exits_2(tmp_path, capsys):
    assert pc.main(["--budget", "lots", "--out", str(tmp_path / "x")]) == 2
    assert "budget" in capsys.readouterr().err


def test_calibration_mode_correlates_with_the_measured_scores(tmp_path, tiny_space, capsys):
    from nas.calibrate import sample_archs
    from nas.evaluate.protocol import DEFAULT
    from nas.spaces import load_space

    archs = sample_archs(load_space(str(tiny_space)), 5, None, include_seeds=False)
    cal = tmp_path / "cal"
    cal.mkdir()
    (cal / "archs.json").write_text(json.dumps(archs))
    (cal / "summary.json").write_text(json.dumps({"config": {}}))
    reference = DEFAULT.with_(epochs=2).to_dict()
    accs = [0.3, 0.9, 0.5, 0.7, 0.6]
    runs = []
    for i, a in enumerate(accs):
        for seed, delta in ((0, 0.0), (1, 0.02)):   # two seeds: the target is their mean
            # stored under the other signal: the same training, so it still matches DEFAULT
            other = "accuracy" if DEFAULT.signal == "val_loss" else "val_loss"
            runs.append({"arch": i, "protocol_name": "base",
                         "protocol": DEFAULT.with_(signal=other).to_dict(),
                         "seed": seed, "accuracy": a + delta, "val_loss": 1.0})
        # reference val_loss = default accuracy: -val_loss ranks exactly opposite
        runs.append({"arch": i, "protocol_name": "reference", "protocol": reference, "seed": 0,
                     "accuracy": 0.9, "val_loss": a})
    (cal / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    out = tmp_path / "pcc"
    argv = ["--calibration", str(cal), "--proxy-batch", "8", "--threads", "1", "--out", str(out)]
    assert pc.main(argv) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    assert [r["default_accuracy"] for r in rows] == pytest.approx([a + 0.01 for a in accs])
    assert [r["default_accuracy_runs"] for r in rows] == [2] * 5
    t = result["tables"]
    for i, name in enumerate(r["proxy"] for r in t["default_accuracy"]):
        scores = [r["scores"][name] for r in rows]
        rho = t["default_accuracy"][i]["spearman"]
        if np.isnan(rho):
            continue
        assert rho == pytest.approx(pc.spearman(scores, accs))
        assert t["reference_neg_val_loss"][i]["spearman"] == pytest.approx(-rho)
    # constant reference accuracy: no correlation defined
    assert all(np.isnan(r["spearman"]) for r in t["reference_accuracy"])
    md = out.with_suffix(".md").read_text()
    assert "| naswot |" in md and "Yardstick" in md and md in capsys.readouterr().out
    # resumes: nothing is re-scored
    lines = out.with_suffix(".jsonl").read_text().splitlines()
    assert pc.main(argv) == 0
    assert out.with_suffix(".jsonl").read_text().splitlines() == lines


def test_calibration_mode_bad_folder_exits_2(tmp_path, capsys):
    assert pc.main(["--calibration", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "not a nas.calibrate output folder" in capsys.readouterr().err


def test_stored_protocols_train_alike_whatever_their_signal_or_age():
    """A run stored before a recipe field existed (read as off, as nas.calibrate reads it)
    and under another ranking signal is the same run as one stored today."""
    from nas.evaluate.protocol import DEFAULT

    old = {k: v for k, v in DEFAULT.to_dict().items() if k not in ("precise_bn", "weight_average")}
    assert pc.trains_as({**old, "signal": "accuracy"}) == pc.trains_as(DEFAULT.to_dict())
    assert pc.trains_as(DEFAULT.with_(precise_bn=400).to_dict()) != pc.trains_as(old)
