"""nas.counting: a point's cost without building equals count(build(point)) to the integer."""
import random

import pytest

from nas import zoo
from nas.builder import GraphBuilder
from nas.cost import Cost, count, parse_budget
from nas.counting import CountedGraph, count_call, counting
from nas.errors import GenotypeError
from nas.spaces import list_spaces, load_space
from nas.zoo.registry import ZOO


def slow_cost(space, params) -> Cost:
    """The reference: build the genotype, count it."""
    return count(space.build(params))


def check_space(name: str, n: int, seed: int) -> int:
    """``n`` uniform and ``n`` budget-aware points of ``name``: fast == slow, or both raise
    GenotypeError. Returns how many points were compared."""
    space = load_space(name)
    rng = random.Random(seed)
    budget = space.cost(space.complete_cheapest({})).macs * 3
    points = [space.active(space.draw(rng)) for _ in range(n)]
    points += [space.sample(rng, budget) for _ in range(n)]
    for p in points:
        try:
            want = slow_cost(space, p)
        except GenotypeError:
            with pytest.raises(GenotypeError):
                count_call(space._fn, **space.fixed, **p, input_shape=space.input_shape,
                           num_classes=space.num_classes)
            continue
        got = space.cost(p)
        assert got == want, (name, p)
    return len(points)


@pytest.mark.parametrize("name", list_spaces())
def test_counted_cost_equals_the_built_genotypes_on_random_points(name):
    assert check_space(name, 40, seed=1) == 80


@pytest.mark.slow
@pytest.mark.parametrize("name", list_spaces())
def test_counted_cost_equals_the_built_genotypes_on_thousands_of_points(name):
    assert check_space(name, 1500, seed=2) == 3000


def test_the_space_counts_without_building_a_graph(monkeypatch):
    space = load_space("resnet_like")
    with counting():
        counted = space._fn(**space.seeds()[0].params, input_shape=space.input_shape,
                            num_classes=space.num_classes)
    assert isinstance(counted, CountedGraph)

    def no_graphs(*a, **k):
        raise AssertionError("a networkx graph was built")

    monkeypatch.setattr("nas.builder.nx.DiGraph", no_graphs)
    p = space.sample(random.Random(5), parse_budget("2GFLOPs"))
    assert space.cost(p).macs <= parse_budget("2GFLOPs")


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_builder_counts_exactly(name):
    """The zoo builders (aux heads, concat blocks, grouped and shuffled units) through the
    counting pass: the same params, main-path MACs and activations as the built genotype."""
    assert count_call(ZOO.get(name).builder) == count(zoo.build(name))


def test_a_builder_the_counting_pass_cannot_follow_is_built_and_counted():
    def reads_the_graph(input_shape=(3, 8, 8)):
        b = GraphBuilder(input_shape, "odd")
        x = b.node("conv", "conv", [b.input], out_channels=4, kernel=3)
        assert len(b.graph) == 2       # a counting builder has no graph: fall back
        y = b.node("fc", "linear", [b.node("flat", "flatten", [b.node("gap", "gap", [x])])],
                   out_features=10)
        return b.build(y, classifiers=[y])

    assert count_call(reads_the_graph) == count(reads_the_graph())


def test_an_invalid_point_raises_as_building_it_does():
    def collapses(input_shape=(3, 8, 8)):
        b = GraphBuilder(input_shape, "tiny")
        x = b.node("pool", "maxpool", [b.input], kernel=2, stride=2)
        for i in range(4):                       # 8 -> 4 -> 2 -> 1 -> 0
            x = b.node(f"pool{i}", "maxpool", [x], kernel=2, stride=2)
        y = b.node("fc", "linear", [b.node("flat", "flatten", [x])], out_features=10)
        return b.build(y, classifiers=[y])

    with pytest.raises(GenotypeError, match="collapses below 1|smaller") as slow:
        count(collapses())
    with pytest.raises(GenotypeError) as fast:
        count_call(collapses)
    assert str(fast.value) == str(slow.value)
