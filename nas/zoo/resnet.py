"""ResNet family (He et al. 2016): ResNet-18...152, paper v1 and torchvision v1.5 strides.

The builder reads like Table 1 of the paper: a stem, four stages of blocks with their
depths and widths, a classifier.
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

TV = "torchvision.models (documented weights metadata)"
PAPER = "He et al. 2016, Deep Residual Learning, Table 1"


def resnet(block: str, depths: tuple[int, ...], *, widths=(64, 128, 256, 512), groups: int = 1,
           width_per_group: int = 64, expansion: int = 4, se_reduction: int | None = None,
           stride_on_1x1: bool = False, num_classes: int = 1000, input_shape=(3, 224, 224),
           name: str = "resnet") -> Genotype:
    """A ResNet: 7x7/2 stem, 3x3/2 max pool, stages of ``block`` ("basic" | "bottleneck").

    ``groups``/``width_per_group`` give ResNeXt (32, 4) and Wide ResNet (1, 128);
    ``se_reduction`` adds squeeze-excitation; ``stride_on_1x1`` is the paper's v1.
    """
    b = GraphBuilder(input_shape, name)
    x = blocks.conv_bn_act(b, b.input, 64, 7, 2, suffix="1")
    x = b.node("maxpool", "maxpool", [x], kernel=3, stride=2, padding=1)
    for i, (depth, planes) in enumerate(zip(depths, widths)):
        for j in range(depth):
            stride = 2 if i > 0 and j == 0 else 1
            with b.scope(f"layer{i + 1}.{j}"):
                if block == "basic":
                    se = planes // se_reduction if se_reduction else None
                    x = blocks.basic_block(b, x, planes, stride, se=se)
                else:
                    width = int(planes * width_per_group / 64) * groups
                    out = planes * expansion
                    se = out // se_reduction if se_reduction else None
                    x = blocks.bottleneck(b, x, width, out, stride, groups=groups, se=se,
                                          stride_on_1x1=stride_on_1x1)
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "resnet"})


BASIC, BOTTLENECK = "basic", "bottleneck"


@entry("resnet18", "resnet", TV, published_params=11_689_512, published_macs=1_814_000_000,
       exact=True, top1=69.758)
def resnet18() -> Genotype:
    """ResNet-18."""
    return resnet(BASIC, (2, 2, 2, 2), name="resnet18")


@entry("resnet34", "resnet", TV, published_params=21_797_672, published_macs=3_664_000_000,
       exact=True, top1=73.314)
def resnet34() -> Genotype:
    """ResNet-34."""
    return resnet(BASIC, (3, 4, 6, 3), name="resnet34")


@entry("resnet50", "resnet", TV, published_params=25_557_032, published_macs=4_089_000_000,
       exact=True, top1=76.130, note="v1.5: stride 2 on the 3x3 conv of the bottleneck")
def resnet50() -> Genotype:
    """ResNet-50 (torchvision's v1.5)."""
    return resnet(BOTTLENECK, (3, 4, 6, 3), name="resnet50")


@entry("resnet50_v1", "resnet", PAPER, published_params=25_600_000, published_macs=3_800_000_000,
       note="paper v1: stride 2 on the first 1x1 conv of the bottleneck")
def resnet50_v1() -> Genotype:
    """ResNet-50 as in the paper (v1 stride placement)."""
    return resnet(BOTTLENECK, (3, 4, 6, 3), stride_on_1x1=True, name="resnet50_v1")
