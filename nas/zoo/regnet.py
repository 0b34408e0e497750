"""RegNet (Radosavovic et al. 2020, Designing Network Design Spaces): the generator.

A RegNet is four numbers and a group width: block widths grow linearly from ``w0`` with
slope ``wa`` and are snapped to powers of ``wm`` (quantized to multiples of 8); equal widths
form a stage. Blocks are X blocks (1x1 -> grouped 3x3 -> 1x1 with a residual, stride on the
3x3); RegNetY adds squeeze-excitation after the 3x3 with a squeeze of ``se_ratio`` times the
block's input width. Everything follows pycls (``generate_regnet``,
``adjust_block_compatibility``, AnyNet's stem and head), whose published complexities we
reproduce.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nas import blocks
from nas.builder import GraphBuilder
from nas.errors import NasError
from nas.genotype import Genotype
from nas.zoo.registry import ZOO, ZooEntry

PYCLS = "pycls dds_baselines configs and dev/model_complexity.json (Radosavovic et al. 2020)"
PYCLS_NOTE = ("pycls counts a bias add as a FLOP (the fc's and the SE convs' biases), so its "
              "figure is our MACs plus the biased layers' output elements")


@dataclass(frozen=True)
class Stage:
    """One stage of a generated RegNet: its width, depth, group width and bottleneck ratio."""

    width: int
    depth: int
    group_w: int
    bot_mul: float


def regnet_widths(w0: int, wa: float, wm: float, depth: int, q: int = 8) -> list[int]:
    """Per-block widths of the RegNet generator (pycls ``generate_regnet``)."""
    if not (wa >= 0 and w0 > 0 and wm > 1 and w0 % q == 0 and depth >= 1):
        raise NasError(f"RegNet needs wa >= 0, w0 > 0 divisible by {q}, wm > 1, depth >= 1; "
                         f"got w0={w0}, wa={wa}, wm={wm}, depth={depth}")
    widths = []
    for i in range(depth):
        k = round(math.log((i * wa + w0) / w0) / math.log(wm))
        widths.append(int(round(w0 * wm ** k / q)) * q)
    return widths


def regnet_stages(w0: int, wa: float, wm: float, depth: int, group_w: int,
                  bot_mul: float = 1.0) -> list[Stage]:
    """The stages of a RegNet, widths and groups made compatible (pycls
    ``adjust_block_compatibility``: the bottleneck width is a multiple of the group width)."""
    widths = regnet_widths(w0, wa, wm, depth)
    stages = []
    for w in sorted(set(widths)):
        inner = int(max(1, w * bot_mul))
        g = min(group_w, inner)
        m = math.lcm(g, int(bot_mul)) if bot_mul > 1 else g
        inner = max(m, int(round(inner / m) * m))
        stages.append(Stage(int(inner / bot_mul), widths.count(w), g, bot_mul))
    return stages


def x_block(b: GraphBuilder, x: str, out: int, stride: int, group_w: int, bot_mul: float,
            se: int | None) -> str:
    """RegNet's X block (Y block with ``se``): 1x1 -> 3x3 grouped (stride) -> (SE) -> 1x1."""
    inner = int(round(out * bot_mul))
    y = blocks.conv_bn_act(b, x, inner, 1, suffix="1")
    y = blocks.conv_bn_act(b, y, inner, 3, stride, groups=inner // group_w, suffix="2")
    if se:
        y = blocks.squeeze_excitation(b, y, se)
    y = blocks.conv_bn_act(b, y, out, 1, act=None, suffix="3", zero_init=True)
    if stride != 1 or b.channels(x) != out:
        with b.scope("downsample"):
            x = b.node("1", "bn", [blocks.conv(b, x, out, 1, stride, name="0")])
    return b.node("relu", "relu", [b.node("add", "add", [y, x])])


def regnet(w0: int, wa: float, wm: float, depth: int, group_w: int, bot_mul: float = 1.0,
           se_ratio: float | None = None, *, stem_w: int = 32, num_classes: int = 1000,
           input_shape=(3, 224, 224), name: str = "regnet") -> Genotype:
    """A RegNet from the paper's parameters: initial width ``w0``, slope ``wa``, width
    multiplier ``wm``, ``depth`` blocks, group width ``group_w``, bottleneck ratio
    ``bot_mul``; ``se_ratio`` (e.g. 0.25) makes it a RegNetY.

    3x3/2 conv-BN-ReLU stem (``stem_w``), the generated stages (stride 2 on each stage's
    first block), pool, fc.
    """
    b = GraphBuilder(input_shape, name)
    with b.scope("stem"):
        x = blocks.conv_bn_act(b, b.input, stem_w, 3, 2)
    for i, st in enumerate(regnet_stages(w0, wa, wm, depth, group_w, bot_mul)):
        for j in range(st.depth):
            se = int(round(b.channels(x) * se_ratio)) if se_ratio else None
            with b.scope(f"s{i + 1}.b{j + 1}"):
                x = x_block(b, x, st.width, 2 if j == 0 else 1, st.group_w, st.bot_mul, se)
    y = blocks.classifier(b, x, num_classes)
    meta = {"family": "regnet", "w0": w0, "wa": wa, "wm": wm, "depth": depth,
            "group_w": group_w, "bot_mul": bot_mul, "se_ratio": se_ratio}
    return b.build(y, classifiers=[y], meta=meta)


# pycls configs/dds_baselines: name -> (w0, wa, wm, depth, group_w), and pycls's
# model_complexity.json (params, flops) at 224x224
REGNETX = {
    "200mf": ((24, 36.44, 2.49, 13, 8), (2_684_792, 199_040_872)),
    "400mf": ((24, 24.48, 2.54, 22, 16), (5_157_512, 397_678_568)),
    "600mf": ((48, 36.97, 2.24, 16, 24), (6_196_040, 600_891_112)),
    "800mf": ((56, 35.73, 2.28, 16, 16), (7_259_656, 799_700_712)),
    "1_6gf": ((80, 34.01, 2.25, 18, 24), (9_190_136, 1_602_850_792)),
    "3_2gf": ((88, 26.31, 2.25, 25, 48), (15_296_552, 3_176_622_952)),
    "4_0gf": ((96, 38.65, 2.43, 23, 40), (22_118_248, 3_964_499_816)),
}
REGNETY = {
    "200mf": ((24, 36.44, 2.49, 13, 8), (3_162_996, 199_519_076)),
    "400mf": ((48, 27.89, 2.09, 16, 8), (4_344_144, 401_849_056)),
    "600mf": ((48, 32.54, 2.32, 15, 16), (6_055_160, 601_227_608)),
    "800mf": ((56, 38.84, 2.4, 14, 16), (6_263_168, 797_183_328)),
    "1_6gf": ((48, 20.71, 2.65, 27, 24), (11_202_430, 1_612_087_326)),
    "3_2gf": ((80, 42.63, 2.66, 21, 24), (19_436_338, 3_176_496_162)),
    "4_0gf": ((96, 31.41, 2.24, 22, 64), (20_646_656, 3_973_301_344)),
}
Y_SE_RATIO = 0.25


def _builder(name: str, cfg: tuple, se_ratio: float | None):
    def build() -> Genotype:
        return regnet(*cfg, se_ratio=se_ratio, name=name)
    build.__doc__ = f"{name}: w0, wa, wm, depth, group_w = {cfg}."
    return build


for _kind, _table, _se in (("x", REGNETX, None), ("y", REGNETY, Y_SE_RATIO)):
    for _size, (_cfg, (_p, _f)) in _table.items():
        _name = f"regnet{_kind}_{_size}"
        ZOO.register(_name, ZooEntry(_name, f"regnet{_kind}", _builder(_name, _cfg, _se), PYCLS,
                                     published_params=_p, published_macs=_f,
                                     note=PYCLS_NOTE, tags=("macs_include_bias",)))
