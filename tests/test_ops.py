"""The op registry: the op vocabulary (README: Building your own genotype), declared once with schema and rules."""
import pytest

from nas.errors import UnknownNameError
from nas.ops import OPS, Attr, OpError, OpSpec, op
from nas.registry import Registry

VOCABULARY = ["conv", "bn", "relu", "relu6", "sigmoid", "hswish", "maxpool", "avgpool", "gap",
              "adaptive_avgpool", "lrn", "dropout", "identity", "add", "concat", "mul",
              "channel_shuffle", "channel_split", "flatten", "linear", "input"]


def test_every_design_op_is_registered_with_its_rules():
    for name in VOCABULARY:
        spec = OPS.get(name)
        assert spec.name == name and spec.doc
        assert callable(spec.shape) and callable(spec.cost) and callable(spec.torch)


def test_registry_refuses_duplicates_and_suggests_on_a_miss():
    with pytest.raises(ValueError, match="already registered"):
        op(OPS.get("relu"))
    with pytest.raises(UnknownNameError, match="did you mean maxpool"):
        OPS.get("maxpol")
    r = Registry("thing")
    with pytest.raises(UnknownNameError, match="known: "):
        r.get("x")


def test_attribute_schema_fills_defaults_and_rejects_bad_values():
    conv = OPS.get("conv")
    full = conv.resolve({"out_channels": 8, "kernel": 3})
    assert full["stride"] == 1 and full["groups"] == 1 and full["bias"] is False
    for bad in ({"out_channels": 0, "kernel": 3}, {"out_channels": 8, "kernel": [3, 3, 3]},
                {"out_channels": 8, "kernel": 3, "bias": 1}, {"out_channels": 8.0, "kernel": 3}):
        with pytest.raises(OpError):
            conv.resolve(bad)


@pytest.mark.parametrize("kernel, stride, padding, ceil, size, expected", [
    (3, 2, 1, False, 112, 56), (3, 2, 0, True, 55, 27), (3, 2, 0, True, 56, 28),
    (2, 2, 0, False, 7, 3), (2, 2, 0, True, 7, 4), (3, 1, 1, True, 14, 14),
])
def test_pool_shape_rule_matches_pytorch(kernel, stride, padding, ceil, size, expected):
    import torch
    import torch.nn.functional as F

    attrs = OPS.get("maxpool").resolve({"kernel": kernel, "stride": stride, "padding": padding,
                                        "ceil_mode": ceil})
    shape = OPS.get("maxpool").shape(attrs, [(1, size, size)])
    real = F.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride, padding, ceil_mode=ceil)
    assert shape == (1, expected, expected) == tuple(real.shape[1:])


def test_arity_is_checked():
    with pytest.raises(OpError, match="at least 2"):
        OPS.get("add").check_arity(1)
    with pytest.raises(OpError, match="exactly 1"):
        OPS.get("relu").check_arity(2)


def test_attr_kinds():
    assert Attr("k", "pair").check([3, 5]) is None
    with pytest.raises(OpError, match="list of two ints"):
        Attr("k", "pair").check([3])
    spec = OpSpec("x", "doc", (Attr("a", "int", 1),), lambda a, i: i[0], lambda a, i, p: None)
    assert spec.schema["a"].default == 1
