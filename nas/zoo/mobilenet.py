"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018), with width multipliers.

v1 reads like Table 1 of its paper (a 3x3/2 conv, then depthwise-separable layers); v2 like
Table 2 of its paper (rows t, c, n, s: expansion, channels, repeats, first stride) with
torchvision's channel rounding, so ``mobilenet_v2`` is torchvision's network exactly, under
torchvision's names (``features.0.0``, ``features.2.conv.1.0``, ``classifier.1``); timm's
``mobilenetv2_100`` etc. are the same networks and load through
``nas.zoo.load_weights(model, state_dict, source="timm")``.

(timm's ``mobilenetv1_100`` is not a twin of ``mobilenet_v1``: it uses ReLU6 where the
paper uses ReLU.)
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import ZOO, ZooEntry, entry

V1_PAPER = "Howard et al. 2017, MobileNets, Tables 6/8"
V2_PAPER = "Sandler et al. 2018, MobileNetV2, Table 4"
TV = "torchvision.models (documented weights metadata)"

# Howard et al. 2017, Table 1: (output channels, stride) of the depthwise-separable layers
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

# Sandler et al. 2018, Table 2: expansion t, channels c, repeats n, first stride s
V2_ROWS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v1(width: float = 1.0, *, num_classes: int = 1000, input_shape=(3, 224, 224),
                 name: str = "") -> Genotype:
    """MobileNet v1 with width multiplier ``width`` (alpha): every layer has int(alpha*c)
    channels."""
    b = GraphBuilder(input_shape, name or f"mobilenet_v1_{width}")
    with b.scope("stem"):
        x = blocks.conv_bn_act(b, b.input, int(32 * width), 3, 2)
    for i, (channels, stride) in enumerate(V1_LAYERS):
        with b.scope(f"layers.{i}"):
            x = blocks.depthwise_separable(b, x, int(channels * width), stride)
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "mobilenet_v1", "width": width})


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never down by more than 10%
    (the TF-slim/torchvision channel rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v2(width: float = 1.0, *, num_classes: int = 1000, input_shape=(3, 224, 224),
                 dropout: float = 0.2, name: str = "") -> Genotype:
    """MobileNet v2 with width multiplier ``width`` (channels rounded to multiples of 8;
    the last 1x1 conv keeps 1280 channels for widths below 1, as torchvision does)."""
    b = GraphBuilder(input_shape, name or f"mobilenet_v2_{width}")
    with b.scope("features.0"):
        x = _conv_bn_relu6(b, b.input, make_divisible(32 * width), 3, 2)
    i = 1
    for t, c, n, s in V2_ROWS:
        for j in range(n):
            with b.scope(f"features.{i}"):
                x = blocks.inverted_residual(b, x, make_divisible(c * width),
                                             s if j == 0 else 1, expand=t,
                                             torchvision_names=True)
            i += 1
    with b.scope(f"features.{i}"):
        x = _conv_bn_relu6(b, x, make_divisible(1280 * max(1.0, width)), 1)
    y = b.node("flatten", "flatten", [b.node("avgpool", "gap", [x])])
    with b.scope("classifier"):
        y = b.node("1", "linear", [b.node("0", "dropout", [y], p=dropout)],
                   out_features=num_classes)
    return b.build(y, classifiers=[y], meta={"family": "mobilenet_v2", "width": width})


def _conv_bn_relu6(b: GraphBuilder, x: str, out: int, kernel: int, stride: int = 1,
                   groups: int = 1) -> str:
    """torchvision's Conv2dNormActivation: nodes ``0`` (conv), ``1`` (BN), ``2`` (ReLU6)."""
    x = blocks.conv(b, x, out, kernel, stride, groups=groups, name="0")
    return b.node("2", "relu6", [b.node("1", "bn", [x])])


def _register(name: str, build, source: str, **figures) -> None:
    ZOO.register(name, ZooEntry(name, figures.pop("family"), build, source, **figures))


def _v1(width: float):
    def build() -> Genotype:
        return mobilenet_v1(width, name=f"mobilenet_v1_x{str(width).replace('.', '_')}")
    build.__doc__ = f"MobileNet v1 at width {width}."
    return build


# Howard et al. 2017, Table 6 (width multipliers at 224): alpha -> (params, mult-adds)
V1_TABLE = {1.0: (4_200_000, 569_000_000), 0.75: (2_600_000, 325_000_000),
            0.5: (1_300_000, 149_000_000), 0.25: (500_000, 41_000_000)}

for _w, (_p, _m) in V1_TABLE.items():
    _register("mobilenet_v1" if _w == 1.0 else f"mobilenet_v1_x{str(_w).replace('.', '_')}",
              _v1(_w), V1_PAPER, family="mobilenet_v1", published_params=_p, published_macs=_m,
              note=f"width {_w}; Table 6 prints params to 0.1M and mult-adds to 1M")


@entry("mobilenet_v2", "mobilenet_v2", TV, published_params=3_504_872, published_macs=301_000_000,
       exact=True, top1=71.878, note=f"width 1.0; {V2_PAPER} gives 3.4M params / 300M MACs",
       twins=("torchvision:mobilenet_v2", "timm:mobilenetv2_100"))
def mobilenet_v2_x1_0() -> Genotype:
    """MobileNet v2 at width 1.0 (torchvision's mobilenet_v2)."""
    return mobilenet_v2(1.0, name="mobilenet_v2")


def _v2(width: float):
    def build() -> Genotype:
        return mobilenet_v2(width, name=f"mobilenet_v2_x{str(width).replace('.', '_')}")
    build.__doc__ = f"MobileNet v2 at width {width}."
    return build


for _w, _timm in ((0.5, "mobilenetv2_050"), (0.75, "mobilenetv2_075"), (1.4, "mobilenetv2_140")):
    _register(f"mobilenet_v2_x{str(_w).replace('.', '_')}", _v2(_w),
              "width-multiplier variant of " + V2_PAPER, family="mobilenet_v2",
              note="no published figures in the reference table",
              twins=(f"torchvision:mobilenet_v2(width_mult={_w})", f"timm:{_timm}"))
