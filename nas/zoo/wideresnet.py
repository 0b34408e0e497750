"""Wide Residual Networks for CIFAR (Zagoruyko and Komodakis 2016): the WRN-d-k family.

WRN-d-k: a 3x3 conv (16), three stages of n = (d - 4) / 6 pre-activation basic blocks of
widths 16k, 32k, 64k (stride 2 at the start of stages 2 and 3), BN-ReLU, pool, fc.
(WRN-50-2, the ImageNet bottleneck net, lives in :mod:`nas.zoo.resnet`.)
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.errors import NasError
from nas.genotype import Genotype
from nas.zoo.registry import ZOO, ZooEntry

PAPER = "Zagoruyko and Komodakis 2016, Wide Residual Networks, Tables 1/4"
CIFAR = (3, 32, 32)


def wide_resnet_cifar(depth: int, k: int, *, dropout: float = 0.0, num_classes: int = 10,
                      input_shape=CIFAR, name: str = "") -> Genotype:
    """WRN-``depth``-``k`` for CIFAR (``dropout`` between the two convs of a block)."""
    if depth < 10 or (depth - 4) % 6:
        raise NasError(f"WRN depth must be 6n+4 (e.g. 16, 22, 28, 40), got {depth}")
    n = (depth - 4) // 6
    b = GraphBuilder(input_shape, name or f"wrn_{depth}_{k}")
    x = blocks.conv(b, b.input, 16, 3, name="conv1")
    for i, width in enumerate((16 * k, 32 * k, 64 * k)):
        for j in range(n):
            with b.scope(f"block{i + 1}.{j}"):
                x = blocks.preact_block(b, x, width, 2 if i > 0 and j == 0 else 1, dropout=dropout)
    x = b.node("relu", "relu", [b.node("bn", "bn", [x])])
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "wide_resnet"})


# The paper's parameter counts (CIFAR-10), depth -> k -> params
TABLE = {(40, 1): 600_000, (40, 2): 2_200_000, (40, 4): 8_900_000, (40, 8): 35_700_000,
         (28, 10): 36_500_000, (28, 12): 52_500_000, (22, 8): 17_200_000,
         (22, 10): 26_800_000, (16, 8): 11_000_000, (16, 10): 17_100_000}


def _register(depth: int, k: int, params: int) -> None:
    name = f"wrn_{depth}_{k}"

    def build() -> Genotype:
        return wide_resnet_cifar(depth, k, name=name)

    build.__doc__ = f"WRN-{depth}-{k} for CIFAR-10."
    ZOO.register(name, ZooEntry(name, "wide_resnet", build, PAPER, input_shape=CIFAR,
                                num_classes=10, published_params=params,
                                note=f"CIFAR-10, {(depth - 4) // 6} blocks per stage; the paper "
                                     "prints params to 0.1M"))


for (_d, _k), _p in TABLE.items():
    _register(_d, _k, _p)
