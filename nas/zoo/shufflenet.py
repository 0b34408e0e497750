"""ShuffleNet v1 (Zhang et al. 2018) and v2 (Ma et al. 2018).

v1 reads like Table 1 of its paper: a 3x3/2 conv (24) and 3x3/2 max pool, then stages 2-4
of 4, 8, 4 units whose output widths depend on the number of groups g; the first 1x1 of
stage 2 is not grouped (its input has only 24 channels). v2 follows torchvision exactly
(stages of 4, 8, 4 units, a 1x1 conv5, pool, fc), under torchvision's names (``conv1.0``,
``stage2.0.branch1.2``, ``stage2.1.branch2.3``, ``conv5.1``, ``fc``).
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.errors import NasError
from nas.genotype import Genotype
from nas.zoo.registry import ZOO, ZooEntry

V1_PAPER = "Zhang et al. 2018, ShuffleNet, Table 1 (1x)"
V2_PAPER = "Ma et al. 2018, ShuffleNet V2, Table 5"
TV = "torchvision.models (documented weights metadata)"
REPEATS = (4, 8, 4)

# Zhang et al. 2018, Table 1: groups -> output channels of stages 2, 3, 4 (1x)
V1_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
             8: (384, 768, 1536)}

# torchvision: width -> output channels of conv1, stages 2-4 and conv5
V2_WIDTHS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
             1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}


def _stem(b: GraphBuilder, out: int) -> str:
    x = blocks.conv_bn_act(b, b.input, out, 3, 2, suffix="1")
    return b.node("maxpool", "maxpool", [x], kernel=3, stride=2, padding=1)


def shufflenet_v1(groups: int = 3, *, scale: float = 1.0, num_classes: int = 1000,
                  input_shape=(3, 224, 224), name: str = "") -> Genotype:
    """ShuffleNet v1 with ``groups`` groups (Table 1 widths) scaled by ``scale``."""
    if groups not in V1_WIDTHS:
        raise NasError(f"ShuffleNet v1 groups must be one of {sorted(V1_WIDTHS)}, got {groups}")
    b = GraphBuilder(input_shape, name or f"shufflenet_v1_g{groups}")
    x = _stem(b, 24)
    for i, (repeats, width) in enumerate(zip(REPEATS, V1_WIDTHS[groups])):
        for j in range(repeats):
            with b.scope(f"stage{i + 2}.{j}"):
                x = blocks.shufflenet_v1_unit(b, x, int(width * scale), 2 if j == 0 else 1,
                                              groups, group_first=not (i == 0 and j == 0))
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "shufflenet_v1", "groups": groups})


def shufflenet_v2(width: float = 1.0, *, num_classes: int = 1000, input_shape=(3, 224, 224),
                  name: str = "") -> Genotype:
    """ShuffleNet v2 at ``width`` in {0.5, 1.0, 1.5, 2.0} (torchvision's channel table)."""
    if width not in V2_WIDTHS:
        raise NasError(f"ShuffleNet v2 width must be one of {sorted(V2_WIDTHS)}, got {width}")
    stem, *stages, last = V2_WIDTHS[width]
    b = GraphBuilder(input_shape, name or f"shufflenet_v2_{width}")
    with b.scope("conv1"):
        x = _seq(b, b.input, ("conv", stem, 3, 2, 1), "bn", "relu")
    x = b.node("maxpool", "maxpool", [x], kernel=3, stride=2, padding=1)
    for i, (repeats, out) in enumerate(zip(REPEATS, stages)):
        for j in range(repeats):
            with b.scope(f"stage{i + 2}.{j}"):
                x = _v2_unit(b, x, out, 2 if j == 0 else 1)
    with b.scope("conv5"):
        x = _seq(b, x, ("conv", last, 1, 1, 1), "bn", "relu")
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "shufflenet_v2", "width": width})


def _seq(b: GraphBuilder, x: str, *layers) -> str:
    """Layers named by position as in a torch Sequential: ``("conv", out, kernel, stride,
    groups)``, ``"bn"`` or ``"relu"``."""
    for i, layer in enumerate(layers):
        if isinstance(layer, tuple):
            _, out, kernel, stride, groups = layer
            x = blocks.conv(b, x, out, kernel, stride, groups=groups, name=str(i))
        else:
            x = b.node(str(i), layer, [x])
    return x


def _v2_unit(b: GraphBuilder, x: str, out: int, stride: int) -> str:
    """torchvision's ShuffleNet v2 InvertedResidual: channel split (stride 1) or two strided
    branches (``branch1``: 3x3 depthwise, BN, 1x1, BN, ReLU), ``branch2`` (1x1, BN, ReLU,
    3x3 depthwise, BN, 1x1, BN, ReLU), concat, shuffle."""
    half = out // 2
    c = b.channels(x)
    if stride == 1:
        left = b.node("split0", "channel_split", [x], parts=2, index=0)
        right = b.node("split1", "channel_split", [x], parts=2, index=1)
    else:
        with b.scope("branch1"):
            left = _seq(b, x, ("conv", c, 3, stride, c), "bn", ("conv", half, 1, 1, 1), "bn", "relu")
        right = x
    with b.scope("branch2"):
        right = _seq(b, right, ("conv", half, 1, 1, 1), "bn", "relu",
                     ("conv", half, 3, stride, half), "bn", ("conv", half, 1, 1, 1), "bn", "relu")
    y = b.node("concat", "concat", [left, right])
    return b.node("shuffle", "channel_shuffle", [y], groups=2)


# Table 1 complexity (MFLOPs = mult-adds) of the 1x nets by groups
V1_MACS = {1: 143_000_000, 2: 140_000_000, 3: 137_000_000, 4: 133_000_000, 8: 137_000_000}


def _v1(groups: int):
    def build() -> Genotype:
        return shufflenet_v1(groups, name=f"shufflenet_v1_g{groups}")
    build.__doc__ = f"ShuffleNet v1 1x, g={groups}."
    return build


def _v2(width: float, name: str):
    def build() -> Genotype:
        return shufflenet_v2(width, name=name)
    build.__doc__ = f"ShuffleNet v2 {width}x."
    return build


for _g, _m in V1_MACS.items():
    ZOO.register(f"shufflenet_v1_g{_g}", ZooEntry(
        f"shufflenet_v1_g{_g}", "shufflenet_v1", _v1(_g), V1_PAPER, published_macs=_m,
        note="1x; the first pointwise conv of stage 2 is not grouped. Table 1's complexities "
             "leave out the final fc layer: without it we count 142.5M, 140.0M, 136.5M, "
             "133.3M and 136.8M for g = 1, 2, 3, 4, 8, each the table's figure rounded"))

# torchvision's documented figures (params, MACs printed as GFLOPs to 3 decimals, top-1)
V2_TABLE = {0.5: (1_366_792, 40_000_000, 60.552), 1.0: (2_278_604, 145_000_000, 69.362),
            1.5: (3_503_624, 296_000_000, 72.996), 2.0: (7_393_996, 583_000_000, 76.230)}
# Ma et al. 2018, Table 5 (params, MFLOPs)
V2_PAPER_TABLE = {0.5: ("1.4M", "41M"), 1.0: ("2.3M", "146M"), 1.5: ("3.5M", "299M"),
                  2.0: ("7.4M", "591M")}

for _w, (_p, _m, _top1) in V2_TABLE.items():
    _name = f"shufflenet_v2_x{str(_w).replace('.', '_')}"
    ZOO.register(_name, ZooEntry(
        _name, "shufflenet_v2", _v2(_w, _name), TV, published_params=_p, published_macs=_m,
        exact=True, top1=_top1, twins=(f"torchvision:{_name}",),
        note=f"{V2_PAPER} gives {' / '.join(V2_PAPER_TABLE[_w])}: its MFLOPs run ~1% above "
             "torchvision's at every width (the paper gives no per-layer breakdown)"))
