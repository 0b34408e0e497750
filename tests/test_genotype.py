"""Genotype: JSON round trip, canonical hash, and validation errors users can act on."""
import json
import random

import pytest
from hypothesis import given, settings, strategies as st

from nas import Genotype, GenotypeError, blocks, zoo
from nas.builder import GraphBuilder
from tests.genotype_strategies import random_genotypes


def small_net(names=("a", "b", "c", "d", "e")):
    """input -> conv a -> relu b -> (b + conv c(b)) d -> gap/flatten/linear e."""
    a, b_, c, d, e = names
    b = GraphBuilder((3, 8, 8), "small")
    x = b.node(a, "conv", [b.input], out_channels=4, kernel=3)
    x = b.node(b_, "relu", [x])
    y = b.node(c, "conv", [x], out_channels=4, kernel=3)
    x = b.node(d, "add", [y, x])
    x = b.node("flat", "flatten", [b.node("gap", "gap", [x])])
    return b.build(b.node(e, "linear", [x], out_features=3))


# ---------------------------------------------------------------- JSON
@given(random_genotypes())
@settings(max_examples=40, deadline=None)
def test_json_round_trip_is_exact(g):
    text = g.to_json()
    again = Genotype.from_json(text)
    assert again == g and again.to_json() == text
    assert again.canonical_hash() == g.canonical_hash()


def test_resnet50_round_trips_with_pairs_and_meta():
    g = zoo.build("resnet50")
    g.meta["note"] = {"k": [1, 2]}
    assert Genotype.from_json(g.to_json(indent=2)) == g


# ---------------------------------------------------------------- hash
def test_hash_ignores_names_and_node_order():
    g1 = small_net()
    g2 = small_net(("conv_x", "act", "conv_y", "sum", "head"))
    data = g2.to_dict()
    random.Random(0).shuffle(data["nodes"])
    g3 = Genotype.from_dict(data)
    assert g1.canonical_hash() == g2.canonical_hash() == g3.canonical_hash()


def test_hash_ignores_spelled_out_defaults():
    data = small_net().to_dict()
    data["nodes"][1]["attrs"].update(stride=1, kernel=[3, 3], groups=1)
    assert Genotype.from_dict(data).canonical_hash() == small_net().canonical_hash()


@pytest.mark.parametrize("mutate", [
    lambda d: d["nodes"][1]["attrs"].update(out_channels=5) or d["nodes"][3]["attrs"].update(out_channels=5),
    lambda d: d["nodes"][4]["inputs"].reverse(),                 # add(y, x) vs add(x, y)
    lambda d: d["nodes"][2].update(op="relu6"),
    lambda d: d["nodes"][0]["attrs"].update(shape=[3, 9, 9]),
])
def test_hash_differs_for_different_genotypes(mutate):
    data = small_net().to_dict()
    mutate(data)
    assert Genotype.from_dict(data).canonical_hash() != small_net().canonical_hash()


def test_shared_node_differs_from_duplicated_branch():
    """add(f(x), f(x)) with one shared f is not the same net as two separate f's."""
    def net(shared):
        b = GraphBuilder((3, 8, 8))
        f1 = b.node("f1", "conv", [b.input], out_channels=3, kernel=1)
        f2 = f1 if shared else b.node("f2", "conv", [b.input], out_channels=3, kernel=1)
        return b.build(b.node("sum", "add", [f1, f2]))
    assert net(True).canonical_hash() != net(False).canonical_hash()


def test_zoo_hashes_are_distinct():
    hashes = {n: zoo.build(n).canonical_hash() for n in ("resnet18", "resnet34", "resnet50", "resnet50_v1")}
    assert len(set(hashes.values())) == 4


# ---------------------------------------------------------------- validation
def edit(fn):
    data = small_net().to_dict()
    fn(data)
    return Genotype.from_dict(data)


def node(data, nid):
    return next(n for n in data["nodes"] if n["id"] == nid)


@pytest.mark.parametrize("fn, where, words", [
    (lambda d: node(d, "a")["inputs"].__setitem__(0, "d"), None, "cycle"),
    (lambda d: d["nodes"].append({"id": "orphan", "op": "relu", "inputs": ["a"], "attrs": {}}),
     "orphan", "dangling"),
    (lambda d: node(d, "c")["inputs"].__setitem__(0, "nope"), "c", "does not exist"),
    (lambda d: node(d, "c")["inputs"].clear(), "c", "takes exactly 1 input"),
    (lambda d: node(d, "b").update(op="relu7"), "b", "did you mean relu"),
    (lambda d: node(d, "a")["attrs"].update(kernal=3), "a", "no attribute 'kernal'"),
    (lambda d: node(d, "a")["attrs"].update(kernel="3"), "a", "'kernel' must be"),
    (lambda d: node(d, "a")["attrs"].pop("out_channels"), "a", "needs attribute 'out_channels'"),
    (lambda d: node(d, "c")["attrs"].update(out_channels=5), "d", "inputs of one shape"),
    (lambda d: node(d, "c")["attrs"].update(stride=2), "d", "projection"),
    (lambda d: node(d, "c")["attrs"].update(groups=3), "c", "groups=3 must divide"),
    (lambda d: node(d, "a")["attrs"].update(kernel=11, padding=0), "a", "smaller than the window"),
    (lambda d: d.update(output="missing"), None, "does not exist"),
    (lambda d: d.update(output="input"), "input", "cannot be the input"),
])
def test_invalid_genotypes_name_the_node_and_the_fix(fn, where, words):
    with pytest.raises(GenotypeError) as err:
        edit(fn).validate()
    assert words in str(err.value)
    if where:
        assert err.value.node == where and repr(where) in str(err.value)


def test_concat_of_mismatched_spatial_sizes():
    b = GraphBuilder((3, 8, 8))
    x = b.node("x", "conv", [b.input], out_channels=2, kernel=3, stride=2)
    with pytest.raises(GenotypeError, match="spatial sizes must match") as err:
        b.node("cat", "concat", [x, b.input])
    assert err.value.node == "cat"


def test_mul_gate_must_match_channels():
    b = GraphBuilder((4, 8, 8))
    gate = b.node("g", "conv", [b.node("p", "gap", [b.input])], out_channels=3, kernel=1)
    with pytest.raises(GenotypeError, match="SE branch"):
        b.node("scale", "mul", [b.input, gate])


def test_spatial_size_collapsing_below_one():
    b = GraphBuilder((3, 4, 4))
    x = b.input
    with pytest.raises(GenotypeError, match="smaller than the window") as err:
        for i in range(5):
            x = b.node(f"pool{i}", "maxpool", [x], kernel=2)
    assert err.value.node == "pool2"


def test_se_block_validates_groups_of_depthwise():
    b = GraphBuilder((6, 8, 8))
    with pytest.raises(GenotypeError, match="groups=4"):
        blocks.conv(b, b.input, 8, 3, groups=4)


# ---------------------------------------------------------------- fuzzing
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


def _survive(data):
    try:
        g = Genotype.from_dict(data) if not isinstance(data, str) else Genotype.from_json(data)
        g.validate()
        g.canonical_hash()
    except GenotypeError:
        pass


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_raises_only_genotype_error(value):
    _survive(value)
    _survive(json.dumps(value))


@given(st.text(max_size=40) | st.binary(max_size=40))
@settings(max_examples=200, deadline=None)
def test_arbitrary_text_raises_only_genotype_error(text):
    _survive(text)


@given(st.data())
@settings(max_examples=400, deadline=None)
def test_mutated_genotypes_raise_only_genotype_error(data):
    d = small_net().to_dict()
    target = data.draw(st.sampled_from(["top", "node", "attrs"]))
    value = data.draw(json_values)
    if target == "top":
        d[data.draw(st.sampled_from(list(d) + ["extra"]))] = value
    elif target == "node":
        n = data.draw(st.sampled_from(d["nodes"]))
        n[data.draw(st.sampled_from(["id", "op", "inputs", "attrs"]))] = value
    else:
        n = data.draw(st.sampled_from(d["nodes"]))
        n["attrs"][data.draw(st.sampled_from(["kernel", "stride", "groups", "out_channels",
                                               "padding", "shape", "bias", "x"]))] = value
    _survive(d)


def test_deeply_nested_json_is_rejected_cleanly():
    with pytest.raises(GenotypeError):
        Genotype.from_json("[" * 100_000 + "]" * 100_000)


# ---------------------------------------------------------------- mutation fuzzing (seeded)
def _random_json(rng: random.Random, depth: int = 0):
    """A random JSON value of a few levels (weird numbers and strings included)."""
    r = rng.random()
    if depth < 3 and r < 0.25:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 3 and r < 0.4:
        return {rng.choice(["a", "id", "op", "x", ""]): _random_json(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    return rng.choice([None, True, False, 0, -1, 1, 3, 2**31, 2**63, 2**64, -2**70, 1e308, 0.5,
                       float("nan"), float("inf"), "", "a", "conv", "input", "relu", "x.y", "..",
                       "\x00", "\ud800"])


def _containers(value, out):
    out.append(value)
    for v in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()):
        if isinstance(v, (dict, list)):
            _containers(v, out)
    return out


def _mutate(doc: dict, rng: random.Random):
    """A mutated copy of the genotype document ``doc``: as data (replace, delete, duplicate,
    retype a value anywhere) or as JSON text (cut, drop, insert or repeat characters; meta
    or attrs nested 65 to 1,500 deep)."""
    d = json.loads(json.dumps(doc))
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(_containers(d, []))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            continue
        k = rng.choice(keys)
        op = rng.random()
        if op < 0.5:
            target[k] = _random_json(rng)
        elif op < 0.7:
            del target[k]
        elif op < 0.85 and isinstance(target, list):
            target.insert(k, json.loads(json.dumps(target[k])))
        else:
            target[k] = str(target[k]) if not isinstance(target[k], str) else rng.choice([1, [], {}])
    if rng.random() < 0.15:   # meta or attrs nested deeply (issue 13: ~990 deep in meta)
        depth = rng.choice([65, 500, 990, 1500])
        text = json.dumps({**d, "meta": "DEEP"}) if rng.random() < 0.7 else json.dumps(d)
        deep = '{"m": ' * depth + "1" + "}" * depth
        return text.replace('"DEEP"', deep) if '"DEEP"' in text else text.replace('"attrs": {}', '"attrs": {"x": ' + deep + '}', 1)
    if rng.random() < 0.3:
        text = json.dumps(d)
        i = rng.randrange(len(text))
        text = rng.choice([text[:i], text[:i] + text[i + 1:], text[:i] + rng.choice("[]{},:\"0a\\") + text[i:],
                           text[:i] + text[i:i + 40] * 3 + text[i + 40:]])
        return text
    return d


def _exercise(doc) -> None:
    """Everything a stored genotype goes through: load, validate, hash, cost, copy, JSON."""
    from nas.cost import count

    g = Genotype.from_json(doc) if isinstance(doc, str) else Genotype.from_dict(doc)
    g.validate()
    g.canonical_hash()
    count(g)
    text = g.to_json()
    assert Genotype.from_json(text).to_json() == g.copy().to_json() == text


def _fuzz(n: int, seed: int) -> dict:
    rng = random.Random(seed)
    docs = [small_net().to_dict(), zoo.build("resnet18").to_dict(),
            zoo.build("mobilenet_v2_x0_5").to_dict()]
    tally: dict = {}
    for _ in range(n):
        doc = _mutate(rng.choice(docs), rng)
        try:
            _exercise(doc)
            outcome = "ok"
        except GenotypeError:
            outcome = "GenotypeError"
        except Exception as e:  # noqa: BLE001 - anything else is the bug being looked for
            outcome = f"{type(e).__name__}: {str(e)[:80]}"
        tally[outcome] = tally.get(outcome, 0) + 1
    return tally


def test_mutated_documents_raise_only_genotype_error():
    tally = _fuzz(300, seed=1)
    assert set(tally) <= {"ok", "GenotypeError"}, tally
    assert tally.get("GenotypeError", 0) > 100


@pytest.mark.slow
def test_ten_thousand_mutated_documents_raise_only_genotype_error():
    tally = _fuzz(10_000, seed=13)
    assert set(tally) <= {"ok", "GenotypeError"}, tally
    assert sum(tally.values()) == 10_000


def test_deep_meta_fails_at_load_not_later():
    d = small_net().to_dict()
    v = 1
    for _ in range(990):
        v = {"m": v}
    d["meta"] = {"deep": v}
    with pytest.raises(GenotypeError, match="'meta' is nested deeper than 64"):
        Genotype.from_dict(d)
    text = json.dumps({**d, "meta": "DEEP"}).replace('"DEEP"', '{"m": ' * 990 + "1" + "}" * 990)
    with pytest.raises(GenotypeError, match="nested deeper"):
        Genotype.from_json(text)
