"""experiments/proxy_correlation.py on tiny settings: runs end to end, writes a sound table."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("proxy_correlation",
                                               ROOT / "experiments" / "proxy_correlation.py")
pc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pc)


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
