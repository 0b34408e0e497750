"""RegNet (Radosavovic et al. 2020, Designing Network Design Spaces): the generator.

A RegNet is four numbers and a group width: block widths grow linearly from ``w0`` with
slope ``wa`` and are snapped to powers of ``wm`` (quantized to multiples of 8); equal widths
form a stage. Blocks are X blocks (1x1 -> grouped 3x3 -> 1x1 with a residual, stride on the
3x3); RegNetY adds squeeze-excitation after the 3x3 with a squeeze of ``se_ratio`` times the
block's input width.

Two definitions, under distinct names:
- ``regnetx_400mf``, ``regnety_800mf``, ...: pycls's (``generate_regnet``,
  ``adjust_block_compatibility``, AnyNet's stem and head), whose published complexities we
  reproduce; timm's ``regnetx_004``, ``regnety_008``, ... are the same networks (aliases),
  and these entries have timm's state-dict names (``s1.b1.conv2.conv``, ``head.fc``);
- ``regnet_x_400mf``, ``regnet_y_800mf``, ...: torchvision's, whose width rounding differs
  (see :func:`regnet_stages`: regnet_x_400mf has 5,495,976 params where pycls's
  regnetx_400mf has 5,157,512; 800MF-Y differs too, the other shared sizes are the same
  networks), with torchvision's names (``trunk_output.block1.block1-0.f.b.0``, ``fc``).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

from nas import blocks
from nas.builder import GraphBuilder
from nas.counting import countable
from nas.errors import NasError
from nas.genotype import Genotype
from nas.zoo.mobilenet import make_divisible
from nas.zoo.registry import ZOO, ZooEntry

PYCLS = "pycls dds_baselines configs and dev/model_complexity.json (Radosavovic et al. 2020)"
PYCLS_NOTE = ("pycls's definition (timm's {timm}, same names); pycls counts a bias add as a "
              "FLOP (the fc's and the SE convs' biases), so its figure is our MACs plus the "
              "biased layers' output elements")
TV = "torchvision.models (documented weights metadata)"


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
                  bot_mul: float = 1.0, *, rounding: str = "pycls") -> list[Stage]:
    """The stages of a RegNet, widths and groups made compatible: the bottleneck width
    becomes a multiple of the group width. ``rounding="pycls"`` (pycls
    ``adjust_block_compatibility``, timm) rounds to the nearest multiple, ties to even;
    ``"torchvision"`` uses torchvision's ``_make_divisible`` (round half up, never more
    than 10% down), which widens some stages: 392 -> 384 in pycls, 400 in torchvision."""
    if rounding not in ("pycls", "torchvision"):
        raise NasError(f"RegNet rounding must be 'pycls' or 'torchvision', got {rounding!r}")
    widths = regnet_widths(w0, wa, wm, depth)
    stages = []
    for w in sorted(set(widths)):
        if rounding == "torchvision":
            inner = int(w * bot_mul)
            g = min(group_w, inner)
            inner = make_divisible(inner, g)
        else:
            inner = int(max(1, w * bot_mul))
            g = min(group_w, inner)
            m = math.lcm(g, int(bot_mul)) if bot_mul > 1 else g
            inner = max(m, int(round(inner / m) * m))
        stages.append(Stage(int(inner / bot_mul), widths.count(w), g, bot_mul))
    return stages


# node names of the two layouts: timm's (pycls's module names) and torchvision's
NAMES = {
    "timm": dict(stem=("stem", "conv", "bn", "relu"), conv1=("conv1", "conv", "bn", "relu"),
                 conv2=("conv2", "conv", "bn", "relu"), se="se",
                 conv3=("conv3", "conv", "bn", None), proj=("downsample", "conv", "bn", None),
                 head="head.fc"),
    "torchvision": dict(stem=("stem", "0", "1", "2"), conv1=("f.a", "0", "1", "2"),
                        conv2=("f.b", "0", "1", "2"), se="f.se", conv3=("f.c", "0", "1", None),
                        proj=("proj", "0", "1", None), head="fc"),
}


def _cba(b: GraphBuilder, x: str, names: tuple, out: int, kernel: int, stride: int = 1,
         groups: int = 1, zero_init: bool = False) -> str:
    """conv -> BN (-> ReLU) under ``names`` = (scope, conv, bn, relu or None); ``zero_init``:
    the last BN of the residual branch (see nas.blocks)."""
    scope, conv, bn, act = names
    with b.scope(scope):
        y = blocks.conv(b, x, out, kernel, stride, groups=groups, name=conv)
        x = b.node(bn, "bn", [y], **({"zero_init": True} if zero_init else {}))
        return b.node(act, "relu", [x]) if act else x


@countable("x")
def x_block(b: GraphBuilder, x: str, out: int, stride: int, group_w: int, bot_mul: float,
            se: int | None, names: dict = NAMES["timm"]) -> str:
    """RegNet's X block (Y block with ``se``): 1x1 -> 3x3 grouped (stride) -> (SE) -> 1x1,
    plus the input or its 1x1 projection."""
    inner = int(round(out * bot_mul))
    y = _cba(b, x, names["conv1"], inner, 1)
    y = _cba(b, y, names["conv2"], inner, 3, stride, groups=inner // group_w)
    if se:
        y = blocks.squeeze_excitation(b, y, se, name=names["se"])
    y = _cba(b, y, names["conv3"], out, 1, zero_init=True)
    if stride != 1 or b.channels(x) != out:
        x = _cba(b, x, names["proj"], out, 1, stride)
    return b.node("relu", "relu", [b.node("add", "add", [y, x])])


def regnet(w0: int, wa: float, wm: float, depth: int, group_w: int, bot_mul: float = 1.0,
           se_ratio: float | None = None, *, stem_w: int = 32, num_classes: int = 1000,
           input_shape=(3, 224, 224), rounding: str = "pycls", layout: str = "timm",
           name: str = "regnet") -> Genotype:
    """A RegNet from the paper's parameters: initial width ``w0``, slope ``wa``, width
    multiplier ``wm``, ``depth`` blocks, group width ``group_w``, bottleneck ratio
    ``bot_mul``; ``se_ratio`` (e.g. 0.25) makes it a RegNetY.

    3x3/2 conv-BN-ReLU stem (``stem_w``), the generated stages (stride 2 on each stage's
    first block), pool, fc. ``rounding``: "pycls" or "torchvision" (see
    :func:`regnet_stages`); ``layout``: node names as timm's ("timm": ``s1.b1.conv2.conv``)
    or torchvision's ("torchvision": ``trunk_output.block1.block1-0.f.b.0``).
    """
    if layout not in NAMES:
        raise NasError(f"RegNet layout must be one of {sorted(NAMES)}, got {layout!r}")
    names = NAMES[layout]
    b = GraphBuilder(input_shape, name)
    x = _cba(b, b.input, names["stem"], stem_w, 3, 2)
    for i, st in enumerate(regnet_stages(w0, wa, wm, depth, group_w, bot_mul, rounding=rounding)):
        for j in range(st.depth):
            se = int(round(b.channels(x) * se_ratio)) if se_ratio else None
            scope = (f"s{i + 1}.b{j + 1}" if layout == "timm"
                     else f"trunk_output.block{i + 1}.block{i + 1}-{j}")
            with b.scope(scope):
                x = x_block(b, x, st.width, 2 if j == 0 else 1, st.group_w, st.bot_mul, se, names)
    head, _, fc = names["head"].rpartition(".")
    with b.scope(head) if head else nullcontext():
        y = blocks.classifier(b, x, num_classes, name=fc)
    meta = {"family": "regnet", "w0": w0, "wa": wa, "wm": wm, "depth": depth,
            "group_w": group_w, "bot_mul": bot_mul, "se_ratio": se_ratio, "rounding": rounding}
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


# torchvision.models.regnet_*: name -> ((w0, wa, wm, depth, group_w), documented params,
# GFLOPs, ImageNet top-1 of IMAGENET1K_V1; regnet_y_128gf has only SWAG weights)
TORCHVISION = {
    "regnet_x_400mf": ((24, 24.48, 2.54, 22, 16), 5_495_976, 0.414, 72.834),
    "regnet_x_800mf": ((56, 35.73, 2.28, 16, 16), 7_259_656, 0.800, 75.212),
    "regnet_x_1_6gf": ((80, 34.01, 2.25, 18, 24), 9_190_136, 1.603, 77.040),
    "regnet_x_3_2gf": ((88, 26.31, 2.25, 25, 48), 15_296_552, 3.177, 78.364),
    "regnet_x_8gf": ((80, 49.56, 2.88, 23, 120), 39_572_648, 7.995, 79.344),
    "regnet_x_16gf": ((216, 55.59, 2.1, 22, 128), 54_278_536, 15.941, 80.058),
    "regnet_x_32gf": ((320, 69.86, 2.0, 23, 168), 107_811_560, 31.736, 80.622),
    "regnet_y_400mf": ((48, 27.89, 2.09, 16, 8), 4_344_144, 0.402, 74.046),
    "regnet_y_800mf": ((56, 38.84, 2.4, 14, 16), 6_432_512, 0.834, 76.420),
    "regnet_y_1_6gf": ((48, 20.71, 2.65, 27, 24), 11_202_430, 1.612, 77.950),
    "regnet_y_3_2gf": ((80, 42.63, 2.66, 21, 24), 19_436_338, 3.176, 78.948),
    "regnet_y_8gf": ((192, 76.82, 2.19, 17, 56), 39_381_472, 8.473, 80.032),
    "regnet_y_16gf": ((200, 106.23, 2.48, 18, 112), 83_590_140, 15.912, 80.424),
    "regnet_y_32gf": ((232, 115.89, 2.53, 20, 232), 145_046_770, 32.280, 80.878),
    "regnet_y_128gf": ((456, 160.83, 2.52, 27, 264), 644_812_894, 127.518, None),
}


def _builder(name: str, cfg: tuple, se_ratio: float | None, **kwargs):
    def build() -> Genotype:
        return regnet(*cfg, se_ratio=se_ratio, name=name, **kwargs)
    build.__doc__ = f"{name}: w0, wa, wm, depth, group_w = {cfg}."
    return build


def _timm_name(kind: str, size: str) -> str:
    """timm's name of pycls's RegNet: 400mf -> regnetx_004, 1_6gf -> regnetx_016."""
    mf = int(size[:-2]) if size.endswith("mf") else round(float(size[:-2].replace("_", ".")) * 1000)
    return f"regnet{kind}_{mf // 100:03d}"


for _kind, _table, _se in (("x", REGNETX, None), ("y", REGNETY, Y_SE_RATIO)):
    for _size, (_cfg, (_p, _f)) in _table.items():
        _name, _timm = f"regnet{_kind}_{_size}", _timm_name(_kind, _size)
        _tv = f"regnet_{_kind}_{_size}"
        _same = (f"; the same network as torchvision's {_tv}" if _tv in TORCHVISION
                 and regnet_stages(*_cfg) == regnet_stages(*_cfg, rounding="torchvision") else
                 f"; torchvision's {_tv} rounds widths differently" if _tv in TORCHVISION else "")
        ZOO.register(_name, ZooEntry(_name, f"regnet{_kind}", _builder(_name, _cfg, _se), PYCLS,
                                     published_params=_p, published_macs=_f,
                                     note=PYCLS_NOTE.format(timm=_timm) + _same,
                                     tags=("macs_include_bias",), twins=(f"timm:{_timm}",)))

for _name, (_cfg, _p, _gflops, _top1) in TORCHVISION.items():
    _kind, _size = _name.split("_", 2)[1:]
    _se = Y_SE_RATIO if _kind == "y" else None
    _pycls = f"regnet{_kind}_{_size}"
    _table = REGNETX if _kind == "x" else REGNETY
    _same = ("" if _size not in _table else
             f"; the same network as pycls's {_pycls}, under torchvision's names"
             if regnet_stages(*_cfg) == regnet_stages(*_cfg, rounding="torchvision") else
             f"; pycls's {_pycls} rounds widths differently (pycls: round to the nearest "
             "multiple of the group width, ties to even)")
    ZOO.register(_name, ZooEntry(
        _name, f"regnet{_kind}", _builder(_name, _cfg, _se, rounding="torchvision",
                                          layout="torchvision"),
        TV, published_params=_p, published_macs=round(_gflops * 1e9), exact=True, top1=_top1,
        note="torchvision's definition: group-width rounding by _make_divisible" + _same
             + ("; its only weights (SWAG) are for 384x384, the figures are at 224" if _top1 is None else ""),
        twins=(f"torchvision:{_name}",)))
