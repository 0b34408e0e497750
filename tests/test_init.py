"""The init policy declared in the op registry: what compile() hands to training."""
import math
import random

import pytest
import torch

from nas import compile, zoo
from nas.spaces import load_space


def residual_bns(g):
    """For each add node: the last BN of its residual branch (input 0, through an SE gate)."""
    found = []
    for n in g.topological_order():
        if g.op(n) != "add":
            continue
        x = g.inputs(n)[0]
        while g.op(x) != "bn":
            x = g.inputs(x)[0]   # mul (SE scale) -> its input; never the shortcut
        found.append(x)
    return found


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "regnetx_400mf"])
def test_last_bn_of_each_residual_branch_starts_at_zero(name):
    g = zoo.build(name)
    last = set(residual_bns(g))
    assert last and all(g.attrs(n).get("zero_init") for n in last)
    module = compile(g)
    for n in g.topological_order():
        if g.op(n) == "bn":
            bn = module.get_submodule(n)
            assert torch.all(bn.weight == (0.0 if n in last else 1.0)), n
            assert torch.all(bn.bias == 0), n


@pytest.mark.parametrize("space", ["resnet_like", "mobilenet_like"])
def test_sampled_space_points_get_the_same_policy(space):
    space = load_space(space)
    g = space.build(space.sample(random.Random(3)))
    module = compile(g)
    last = residual_bns(g)
    assert last
    for n in last:
        assert torch.all(module.get_submodule(n).weight == 0)


def test_convs_are_he_normal_fan_out_and_biases_zero():
    torch.manual_seed(0)
    module = compile(zoo.build("resnet50"))
    conv = module.get_submodule("layer3.0.conv2")        # 256 x 256 x 3 x 3
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    assert conv.weight.mean().item() == pytest.approx(0, abs=1e-3)


def test_se_convs_have_zero_bias():
    g = zoo.build("regnety_400mf")
    module = compile(g)
    fc = [n for n in g.topological_order() if g.op(n) == "conv" and g.attrs(n).get("bias")]
    assert fc and all(torch.all(module.get_submodule(n).bias == 0) for n in fc)


def test_init_hints_do_not_change_the_architecture_hash():
    g = zoo.build("resnet18")
    plain = g.copy()
    for n in plain.topological_order():
        if plain.op(n) == "bn":
            plain.graph.nodes[n]["attrs"] = {k: v for k, v in plain.attrs(n).items() if k != "zero_init"}
    assert plain.to_dict() != g.to_dict()
    assert plain.canonical_hash() == g.canonical_hash()


def test_weights_are_initialised_once_by_the_declared_init():
    """compile() draws no random numbers for PyTorch's default conv init: the first numbers
    of the seeded stream are the first conv's He-normal weights, and the BN buffers are set."""
    g = zoo.build("resnet18")
    torch.manual_seed(0)
    module = compile(g)
    first = next(n for n in g.topological_order() if g.op(n) == "conv")
    w = module.get_submodule(first).weight
    torch.manual_seed(0)
    expected = torch.nn.init.kaiming_normal_(torch.empty_like(w), mode="fan_out",
                                             nonlinearity="relu")
    assert torch.equal(w, expected)
    for n in g.topological_order():
        if g.op(n) == "bn":
            bn = module.get_submodule(n)
            assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1), n
            assert bn.num_batches_tracked.item() == 0
    with torch.device("meta"):   # nas.measure counts on the meta device: no storage there
        assert compile(g).get_submodule(first).weight.device.type == "meta"
