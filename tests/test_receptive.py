"""Receptive fields: the stacking rule, strides, dilation, pooling, branches, known nets."""
import pytest

from nas import zoo
from nas.builder import GraphBuilder
from nas.receptive import Field, receptive_field


def _chain(*layers, shape=(3, 32, 32)):
    """A chain of ops given as (op, attrs) pairs; returns (genotype, node ids)."""
    b = GraphBuilder(shape, "chain")
    x, ids = b.input, []
    for i, (op, attrs) in enumerate(layers):
        x = b.node(f"n{i}", op, [x], **attrs)
        ids.append(x)
    return b.build(x), ids


def test_three_stacked_3x3_convs_see_7x7():
    g, ids = _chain(*[("conv", dict(out_channels=8, kernel=3))] * 3)
    rf = receptive_field(g)
    assert [rf[i].size for i in ids] == [(3, 3), (5, 5), (7, 7)]
    assert all(rf[i].jump == (1, 1) for i in ids)


def test_stride_multiplies_the_growth_of_later_layers():
    g, ids = _chain(("conv", dict(out_channels=8, kernel=3, stride=2)),
                    ("conv", dict(out_channels=8, kernel=3)),
                    ("maxpool", dict(kernel=2)),
                    ("conv", dict(out_channels=8, kernel=3)))
    rf = receptive_field(g)
    assert rf[ids[0]] == Field((3, 3), (2, 2))
    assert rf[ids[1]] == Field((7, 7), (2, 2))
    assert rf[ids[2]] == Field((9, 9), (4, 4))   # pool stride defaults to its kernel
    assert rf[ids[3]] == Field((17, 17), (4, 4))


def test_dilation_and_asymmetric_kernels():
    g, ids = _chain(("conv", dict(out_channels=4, kernel=3, dilation=2)),
                    ("conv", dict(out_channels=4, kernel=[1, 7])))
    rf = receptive_field(g)
    assert rf[ids[0]].size == (5, 5)
    assert rf[ids[1]].size == (5, 11)


def test_global_pool_sees_the_whole_map_and_pointwise_ops_change_nothing():
    g, ids = _chain(("conv", dict(out_channels=4, kernel=3, stride=2)), ("bn", {}),
                    ("relu", {}), ("gap", {}), ("flatten", {}), ("linear", dict(out_features=3)),
                    shape=(3, 16, 16))
    rf = receptive_field(g)
    assert rf[ids[1]] == rf[ids[2]] == rf[ids[0]] == Field((3, 3), (2, 2))
    # 8x8 map with jump 2: the pool covers 3 + 7 * 2 = 17 >= 16 input pixels
    assert rf[ids[3]].size == (17, 17)
    assert rf[ids[5]] == rf[ids[4]] == rf[ids[3]]


def test_branches_take_the_widest_input():
    b = GraphBuilder((3, 16, 16), "branches")
    a = b.node("a", "conv", [b.input], out_channels=4, kernel=1)
    c = b.node("c", "conv", [b.input], out_channels=4, kernel=5)
    y = b.node("cat", "concat", [a, c])
    s = b.node("sum", "add", [a, c])
    g = b.build(b.node("out", "concat", [y, s]))
    rf = receptive_field(g)
    assert rf["cat"].size == rf["sum"].size == (5, 5)


@pytest.mark.parametrize("name, node, size", [
    ("resnet50", "layer4.2.relu", 427),        # torchvision v1.5
    ("resnet50_v1", "layer4.2.relu", 483),     # Araujo et al. 2019 (Distill), resnet_v1_50
    ("mobilenet_v1", "layers.12.pw.relu", 315),  # ibid., mobilenet_v1
    ("mobilenet_v2", "features.18.2", 491),  # ibid., mobilenet_v2
])
def test_known_receptive_fields_of_classic_nets(name, node, size):
    rf = receptive_field(zoo.build(name))
    assert rf[node] == Field((size, size), (32, 32))
