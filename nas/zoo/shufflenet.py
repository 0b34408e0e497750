"""ShuffleNet v1 (Zhang et al. 2018) and v2 (Ma et al. 2018).

v1 reads like Table 1 of its paper: a 3x3/2 conv (24) and 3x3/2 max pool, then stages 2-4
of 4, 8, 4 units whose output widths depend on the number of groups g; the first 1x1 of
stage 2 is not grouped (its input has only 24 channels). v2 follows torchvision exactly
(stages of 4, 8, 4 units, a 1x1 conv5, pool, fc).
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
    x = _stem(b, stem)
    for i, (repeats, out) in enumerate(zip(REPEATS, stages)):
        for j in range(repeats):
            with b.scope(f"stage{i + 2}.{j}"):
                x = blocks.shufflenet_v2_unit(b, x, out, 2 if j == 0 else 1)
    x = blocks.conv_bn_act(b, x, last, 1, suffix="5")
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "shufflenet_v2", "width": width})


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

# Ma et al. 2018, Table 5 (params, MFLOPs); torchvision documents x1_0 to the integer
V2_TABLE = {0.5: (1_400_000, 41_000_000), 1.0: (2_278_604, 145_000_000),
            1.5: (3_500_000, 299_000_000), 2.0: (7_400_000, 591_000_000)}

V2_NOTE = ("torchvision's channel table; the paper's MFLOPs run ~1% above our counts at every "
           "width, as its 146M does above torchvision's documented 145M for 1x (the paper "
           "gives no per-layer breakdown)")

for _w, (_p, _m) in V2_TABLE.items():
    _name = f"shufflenet_v2_x{str(_w).replace('.', '_')}"
    _tv = _w == 1.0
    ZOO.register(_name, ZooEntry(
        _name, "shufflenet_v2", _v2(_w, _name), TV if _tv else V2_PAPER, published_params=_p,
        published_macs=_m, exact=_tv, top1=69.362 if _tv else None,
        note=f"{V2_PAPER} gives 2.3M / 146M" if _tv else V2_NOTE))
