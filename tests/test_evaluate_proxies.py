"""nas.evaluate.proxies: finite on the zoo's small nets, deterministic, baselines exact,
the default screen only where a proxy beats params and MACs."""
import json
import math
from pathlib import Path

import pytest

from nas import zoo
from nas.builder import GraphBuilder
from nas.cost import count
from nas.errors import UnknownNameError
from nas.evaluate import proxies
from nas.evaluate.data import load_dataset
from nas.evaluate.proxies import DEFAULT_SCREEN, PROXIES, default_screen, score, score_all
from nas.evaluate.train import proxy_genotype
from nas.zoo.resnet import resnet

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results" / "proxy_correlation.json"


@pytest.fixture(scope="module")
def mnist32():
    return load_dataset(limit=100, resolution=32)


def test_every_proxy_is_finite_on_resnet18_at_32px(mnist32):
    scores = score_all(zoo.build("resnet18"), mnist32, batch_size=16)
    assert set(scores) == {"naswot", "synflow", "grad_norm", "snip", "params", "macs"}
    for name, value in scores.items():
        assert math.isfinite(value), (name, value)
    assert scores["synflow"] > 0 and scores["grad_norm"] > 0 and scores["snip"] > 0


def test_baselines_are_the_proxy_task_costs(mnist32):
    g = zoo.build("resnet18")
    c = count(proxy_genotype(g, mnist32))
    assert score("params", g, mnist32) == c.params
    assert score("macs", g, mnist32) == c.macs


def test_scores_are_deterministic_and_depend_on_the_seed(mnist32):
    g = resnet("basic", (1, 1, 1, 1), widths=(8, 16, 32, 64))
    for name in ("naswot", "snip"):
        a, b = (score(name, g, mnist32, batch_size=8, seed=1) for _ in range(2))
        c = score(name, g, mnist32, batch_size=8, seed=2)
        assert a == b and a != c


def test_naswot_is_the_log_determinant_of_the_hamming_kernel(mnist32):
    """Recompute NASWOT by hand on a one-ReLU net: K = N_units - Hamming distance."""
    import torch

    b = GraphBuilder((1, 32, 32), "one_relu")
    x = b.node("conv", "conv", [b.input], out_channels=4, kernel=3, padding=1)
    r = b.node("act", "relu", [x])
    y = b.node("fc", "linear", [b.node("flat", "flatten", [b.node("gap", "gap", [r])])],
               out_features=10)
    g = b.build(y, classifiers=[y])
    model = proxies.build_model(g, mnist32, seed=0)
    xb = mnist32.train_x[:6]
    with torch.no_grad():
        codes = (model.conv(xb) > 0).flatten(1).int()
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    kernel = (codes.shape[1] - hamming).double()
    expected = torch.linalg.slogdet(kernel)[1].item()
    assert proxies.naswot(model, xb, mnist32.train_y[:6]) == pytest.approx(expected, rel=1e-9)


def test_naswot_without_rectifiers_is_minus_infinity(mnist32):
    b = GraphBuilder((1, 32, 32), "linear_only")
    y = b.node("fc", "linear", [b.node("flat", "flatten", [b.node("gap", "gap", [b.input])])],
               out_features=10)
    assert score("naswot", b.build(y, classifiers=[y]), mnist32, batch_size=4) == -math.inf


def test_unknown_proxy_names_the_closest(mnist32):
    with pytest.raises(UnknownNameError, match="synflow"):
        score("synflo", zoo.build("resnet18"), mnist32)


def _table(**rho):
    return [{"proxy": k, "spearman": v} for k, v in rho.items()]


def test_default_screen_requires_beating_both_baselines():
    assert default_screen(_table(naswot=0.6, snip=0.5, params=0.4, macs=0.55)) == "naswot"
    assert default_screen(_table(naswot=0.5, params=0.4, macs=0.5)) is None      # a tie is not a win
    assert default_screen(_table(naswot=0.3, synflow=float("nan"), params=0.4, macs=0.1)) is None
    assert default_screen(_table(naswot=-0.2, params=float("nan"), macs=-0.5)) == "naswot"
    with pytest.raises(ValueError, match="baseline"):
        default_screen(_table(naswot=0.9, params=0.1))


def test_default_screen_constant_matches_the_committed_results():
    results = json.loads(RESULTS.read_text())
    assert len(results["rows"]) >= 50
    assert {r["proxy"] for r in results["table"]} == set(PROXIES.names())
    assert DEFAULT_SCREEN == default_screen(results["table"]) == results["default_screen"]
