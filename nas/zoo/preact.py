"""Pre-activation ResNets (He et al. 2016b, Identity Mappings in Deep Residual Networks).

BN-ReLU comes before each conv; the network ends with a final BN-ReLU before the pooling.
CIFAR nets stack 9n+2 layers of bottleneck units (16, 32, 64 wide, 4x expansion); the
ImageNet ResNet-200 follows fb.resnet.torch's ``preresnet.lua`` (stride on the 3x3 conv).
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.errors import NasError
from nas.genotype import Genotype
from nas.zoo.registry import entry

PAPER = "He et al. 2016b, Identity Mappings in Deep Residual Networks"
CIFAR = (3, 32, 32)


def _stages_and_head(b: GraphBuilder, x: str, depths, widths, expansion: int,
                     num_classes: int) -> Genotype:
    """Stages of bottleneck units (stride 2 opening every stage but the first), then the
    pre-activation net's final BN-ReLU, pool -> flatten -> fc."""
    for i, (depth, width) in enumerate(zip(depths, widths)):
        for j in range(depth):
            with b.scope(f"layer{i + 1}.{j}"):
                x = blocks.preact_block(b, x, width * expansion, 2 if i > 0 and j == 0 else 1,
                                        width=width)
    x = b.node("relu", "relu", [b.node("bn", "bn", [x])])
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "preact_resnet"})


def preact_resnet_cifar(depth: int, *, widths=(16, 32, 64), expansion: int = 4,
                        num_classes: int = 10, input_shape=CIFAR, name: str = "") -> Genotype:
    """A CIFAR pre-activation bottleneck ResNet of ``depth`` = 9n + 2 layers.

    3x3 conv (16) -> three stages of n bottleneck units (widths 16, 32, 64; outputs 4x that;
    stride 2 at the start of stages 2 and 3) -> BN-ReLU -> pool -> fc.
    """
    if depth < 11 or (depth - 2) % 9:
        raise NasError(f"a CIFAR pre-activation bottleneck ResNet has depth 9n+2 (e.g. 164, "
                         f"1001), got {depth}")
    n = (depth - 2) // 9
    b = GraphBuilder(input_shape, name or f"preact_resnet{depth}")
    x = blocks.conv(b, b.input, widths[0], 3, name="conv1")
    return _stages_and_head(b, x, [n] * len(widths), widths, expansion, num_classes)


def preact_resnet_imagenet(depths: tuple[int, ...], *, widths=(64, 128, 256, 512),
                           expansion: int = 4, num_classes: int = 1000,
                           input_shape=(3, 224, 224), name: str = "") -> Genotype:
    """An ImageNet pre-activation bottleneck ResNet: 7x7/2 conv-BN-ReLU stem, 3x3/2 max pool,
    four stages of ``depths`` units, BN-ReLU, pool, fc."""
    b = GraphBuilder(input_shape, name or "preact_resnet")
    x = blocks.conv_bn_act(b, b.input, widths[0], 7, 2, suffix="1")
    x = b.node("maxpool", "maxpool", [x], kernel=3, stride=2, padding=1)
    return _stages_and_head(b, x, depths, widths, expansion, num_classes)


@entry("preact_resnet164", "preact_resnet", PAPER + ", Table 2 (CIFAR-10)", input_shape=CIFAR,
       num_classes=10, published_params=1_700_000, note="CIFAR-10: 18 bottleneck units per stage")
def preact_resnet164() -> Genotype:
    """Pre-activation ResNet-164 for CIFAR-10."""
    return preact_resnet_cifar(164, name="preact_resnet164")


@entry("preact_resnet1001", "preact_resnet", PAPER + ", Table 2 (CIFAR-10)", input_shape=CIFAR,
       num_classes=10, published_params=10_200_000,
       note="CIFAR-10: 111 bottleneck units per stage. +1.3% params: the paper's 10.2M leaves "
            "out BN's affine parameters (149,216 here); without them we count 10,178,490 = 10.2M")
def preact_resnet1001() -> Genotype:
    """Pre-activation ResNet-1001 for CIFAR-10."""
    return preact_resnet_cifar(1001, name="preact_resnet1001")


@entry("preact_resnet200", "preact_resnet", PAPER + ", Table 5 (ImageNet; fb.resnet.torch)",
       note="ResNet-200 depths (3, 24, 36, 3) as fb.resnet.torch's preresnet; the reference "
            "table gives no published figures for it")
def preact_resnet200() -> Genotype:
    """Pre-activation ResNet-200 for ImageNet."""
    return preact_resnet_imagenet((3, 24, 36, 3), name="preact_resnet200")
