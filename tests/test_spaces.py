"""nas.spaces: loading, exact classic points, budget-aware sampling for every backend, bad files, CLI."""
from __future__ import annotations

import random
import statistics

import pytest

from nas import zoo
from nas.cost import count, parse_budget
from nas.spaces import SearchSpace, SpaceError, list_spaces, load_space
from nas.spaces.__main__ import main

BUDGET = parse_budget("2GFLOPs")
SHIPPED = ["anynet", "densenet_like", "mobilenet_like", "regnet", "resnet_like", "vgg_like"]


@pytest.fixture(scope="module")
def resnet_like() -> SearchSpace:
    return load_space("resnet_like")


def depth(params: dict) -> int:
    return sum(params[f"depth{i}"] for i in range(1, 5))


# ---------------------------------------------------------------- loading and seeds
def test_shipped_spaces_load():
    assert set(SHIPPED) <= set(list_spaces())
    for name in SHIPPED:
        space = load_space(name)
        assert space.name == name and space.path.name == f"{name}.yaml"
        assert space.input_shape == (3, 224, 224) and space.num_classes == 1000
        assert space.seeds(), f"{name} has no classic seed points"


@pytest.mark.parametrize("name", SHIPPED)
def test_seeds_are_the_zoo_nets_exactly(name):
    space = load_space(name)
    for seed in space.seeds():
        assert seed.zoo, f"{name}: seed {seed.name} names no zoo entry"
        expected = zoo.build(seed.zoo)
        assert space.build(seed.params).canonical_hash() == expected.canonical_hash(), seed.name
        assert seed.cost == count(expected)


def test_required_classic_points():
    names = lambda s: {x.name for x in load_space(s).seeds()}  # noqa: E731
    assert {"resnet18", "resnet34", "resnet50", "resnext50_32x4d", "se_resnet50"} <= names("resnet_like")
    assert "mobilenet_v2" in names("mobilenet_like")
    for space in ("regnet", "anynet"):
        assert any(n.startswith("regnetx") for n in names(space))
        assert any(n.startswith("regnety") for n in names(space))


def test_seeds_fit_flags(resnet_like):
    fit = {s.name: s.fits for s in resnet_like.seeds(BUDGET)}
    assert fit == {"resnet18": True, "resnet34": False, "resnet50": False,
                   "resnext50_32x4d": False, "se_resnet50": False}
    assert all(s.fits for s in resnet_like.seeds())
    assert [s.name for s in resnet_like.seeds(BUDGET, parse_budget("11M"))
            if s.fits] == []                         # resnet18 has 11.69M params


def test_size_counts_conditional_parameters_where_active(resnet_like):
    depths, widths = 6 * 8 * 12 * 6, 7 ** 4
    se = 1 + 4                                        # off, or on with 4 reductions
    stems, bottleneck_options = 2, 3 * 6
    assert resnet_like.size() == stems * depths * widths * se * (1 + bottleneck_options)
    assert load_space("regnet").size() == float("inf")


# ---------------------------------------------------------------- sampling
def test_sampling_is_deterministic_and_inside_the_space(resnet_like):
    a = [resnet_like.sample(random.Random(7), BUDGET) for _ in range(3)]
    b = [resnet_like.sample(random.Random(7), BUDGET) for _ in range(3)]
    assert a == b
    for p in a:
        assert resnet_like.check(p) == p
        assert resnet_like.build(p).canonical_hash() == resnet_like.build(dict(p)).canonical_hash()


def test_budgeted_samples_fit_and_keep_their_depth(resnet_like):
    rng = random.Random(0)
    free_depth = statistics.mean(depth(resnet_like.draw(rng)) for _ in range(2000))
    assert free_depth == pytest.approx(3.5 + 4.5 + 6.5 + 3.5, abs=0.3)
    sampled = [resnet_like.sample(rng, BUDGET) for _ in range(30)]
    assert all(resnet_like.cost(p).macs <= BUDGET for p in sampled)
    # plain rejection would keep mostly shallow nets (mean ~12 blocks, see the experiment);
    # the budget-aware sampler keeps the depth spread and lets the widths absorb the budget
    assert statistics.mean(map(depth, sampled)) > 0.85 * free_depth
    assert len({p["block"] for p in sampled}) == 2


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "resnet_like"])
def test_every_space_samples_within_budget(name):
    space = load_space(name)
    rng = random.Random(1)
    budget = parse_budget("600M")
    for _ in range(3):
        p = space.sample(rng, budget, parse_budget("8M"))
        assert space.check(p) == p
        cost = space.cost(p)
        assert cost.macs <= budget and cost.params <= 8_000_000


def test_impossible_budget_is_an_error(resnet_like):
    with pytest.raises(SpaceError, match="cheapest point"):
        resnet_like.sample(random.Random(0), 1000)


def test_sampled_points_count_exactly_like_pytorch():
    from nas.measure import measured_params_macs

    for name, budget in (("mobilenet_like", "100M"), ("anynet", "100M"), ("resnet_like", "1G")):
        space = load_space(name)
        params = space.sample(random.Random(3), parse_budget(budget))
        g = space.build(params)
        cost = count(g)
        assert measured_params_macs(g) == (cost.params, cost.macs), name


# ---------------------------------------------------------------- backends
def test_optuna_suggest_records_cost_and_constraint(resnet_like):
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(12):
        trial = study.ask()
        params = resnet_like.suggest(trial, BUDGET, parse_budget("20M"))
        cost = resnet_like.cost(params)
        assert params == trial.params
        assert trial.constraints["macs"] == pytest.approx(cost.macs / BUDGET - 1)
        assert trial.constraints["params"] == pytest.approx(cost.params / 20e6 - 1)
        study.tell(trial, 0.0)
        seen.append(cost.macs <= BUDGET)
    frozen = study.trials
    assert [t.constraints["macs"] <= 0 for t in frozen] == seen


# ---------------------------------------------------------------- bad files
GOOD = """\
name: tiny
builder: resnet_like
parameters:
  block: {type: categorical, choices: [basic]}
  depth1: {type: int, low: 1, high: 2}
  depth2: {type: int, low: 1, high: 2}
  depth3: {type: int, low: 1, high: 2}
  depth4: {type: int, low: 1, high: 2}
  width1: {type: int, low: 32, high: 64, step: 32}
  width2: {type: int, low: 64, high: 128, step: 64}
  width3: {type: int, low: 128, high: 256, step: 128}
  width4: {type: int, low: 256, high: 512, step: 256}
seeds:
  - {name: resnet10ish, params: {block: basic, depth1: 1, depth2: 1, depth3: 1, depth4: 1,
     width1: 64, width2: 128, width3: 256, width4: 512}}
"""

BAD = {
    "yaml syntax": (("block: {type: categorical, choices: [basic]}", "block: {type: categorical, choices: [basic}"),
                    "YAML syntax error (line 4"),
    "unknown type": (("depth1: {type: int,", "depth1: {type: integer,"), "parameters.depth1.type: unknown parameter type"),
    "empty range": (("depth2: {type: int, low: 1, high: 2}", "depth2: {type: int, low: 3, high: 2}"),
                    "parameters.depth2.high: empty range"),
    "unknown builder": (("builder: resnet_like", "builder: resnet_lik"), "builder: unknown space builder 'resnet_lik'"),
    "seed outside": (("width1: 64, width2", "width1: 48, width2"), "seeds.resnet10ish.params.width1: 48 is outside"),
    "builder does not take": (("  depth4: {type: int, low: 1, high: 2}\n",
                               "  depth4: {type: int, low: 1, high: 2}\n  depth5: {type: int, low: 1, high: 2}\n"),
                              "parameters.depth5: builder 'resnet_like' does not take 'depth5'"),
    "missing builder argument": (("  depth4: {type: int, low: 1, high: 2}\n", ""), "needs 'depth4'"),
    "condition on unknown": (("depth1: {type: int, low: 1, high: 2}", "depth1: {type: int, low: 1, high: 2, when: {se: true}}"),
                             "parameters.depth1.when.se: unknown parameter"),
}


def test_good_file_loads(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD)
    space = load_space(str(path))
    assert space.size() == 2 ** 8 and [s.name for s in space.seeds()] == ["resnet10ish"]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_name_file_and_key(tmp_path, case, capsys):
    (old, new), message = BAD[case]
    assert old in GOOD
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert main(["show", str(path), "--samples", "0"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "Traceback" not in out.err


def test_unknown_space_name_suggests():
    with pytest.raises(SpaceError, match="did you mean resnet_like"):
        load_space("resnet_lik")


# ---------------------------------------------------------------- CLI
def test_cli_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED)


def test_cli_show(capsys):
    assert main(["show", "resnet_like", "--budget", "2GFLOPs", "--samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "fits" in out and "over budget" in out
    assert f"size {load_space('resnet_like').size():,}" in out and "feasible under 2.000GMACs" in out
    assert "feasible 100.0%" in out


def test_cli_bad_budget(capsys):
    assert main(["show", "resnet_like", "--budget", "2 parsecs"]) == 2
    assert "cannot parse budget" in capsys.readouterr().err


def test_space_from_plain_data_round_trip(resnet_like):
    from nas.spaces.space import space_from_dict

    again = space_from_dict(resnet_like.to_dict(), resnet_like.path)
    assert again.to_dict() == resnet_like.to_dict() and again.size() == resnet_like.size()
    assert again.params == resnet_like.params and again.shrink == resnet_like.shrink
    assert [s.params for s in again.seeds()] == [s.params for s in resnet_like.seeds()]


# ---------------------------------------------------------------- parameters
def test_parameter_kinds_values_and_conditions():
    from nas.spaces.params import parse_param

    f = parse_param("f", {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1}, "w", [])
    assert f.values() == (0.1, 0.2, 0.3, 0.4, 0.5) and f.contains(0.3) and not f.contains(0.35)
    i = parse_param("i", {"type": "int", "low": 8, "high": 64, "log": True}, "w", [])
    assert i.size() == 57 and all(8 <= i.draw(random.Random(k)) <= 64 for k in range(50))
    assert not i.contains(True) and not i.contains(8.0)
    c = parse_param("c", {"type": "categorical", "choices": [1, 2], "when": {"b": ["x", "y"]}}, "w", ["b"])
    assert c.active({"b": "y"}) and not c.active({"b": "z"}) and not c.active({})
    with pytest.raises(SpaceError, match="w.step: high - low"):
        parse_param("s", {"type": "int", "low": 1, "high": 10, "step": 4}, "w", [])
    with pytest.raises(SpaceError, match="w.cheapest: 3 is not a value"):
        parse_param("s", {"type": "categorical", "choices": [1, 2], "cheapest": 3}, "w", [])
    with pytest.raises(SpaceError, match="w.choices: must be a non-empty list"):
        parse_param("s", {"type": "categorical", "choices": []}, "w", [])
