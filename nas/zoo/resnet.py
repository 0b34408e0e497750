"""ResNet family: ResNet-18...152 (paper v1 and torchvision v1.5 strides), ResNeXt,
SE-ResNet/SE-ResNeXt and Wide ResNet-50-2.

The builder reads like Table 1 of He et al. 2016: a stem, four stages of blocks with their
depths and widths, a classifier. v1 puts a bottleneck's stride on its first 1x1 conv (the
paper, Caffe); v1.5 on its 3x3 conv (fb.resnet.torch, torchvision). Basic blocks have no 1x1
conv, so ResNet-18/34 are the same network in both.

Node names are torchvision's (``layer1.0.conv1``, ``downsample.0``, ``fc``), which timm's
ResNets and SE-ResNets share (``layer1.0.se.fc1``). ``legacy=True`` builds the SENet
authors' Caffe layout as timm's ``legacy_seresnet50`` ports it: a ``layer0`` stem whose 3x3/2
max pool has no padding and rounds up (ceil mode: the same 56x56 output, other windows),
``se_module`` and ``last_linear``.
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

TV = "torchvision.models (documented weights metadata)"
PAPER = "He et al. 2016, Deep Residual Learning, Table 1"
SENET = "Hu et al. 2018, Squeeze-and-Excitation Networks, Table 2"
WRN = "Zagoruyko and Komodakis 2016, Wide Residual Networks"


def resnet(block: str, depths: tuple[int, ...], *, widths=(64, 128, 256, 512), groups: int = 1,
           width_per_group: int = 64, expansion: int = 4, se_reduction: int | None = None,
           stride_on_1x1: bool = False, legacy: bool = False, num_classes: int = 1000,
           input_shape=(3, 224, 224), name: str = "resnet") -> Genotype:
    """A ResNet: 7x7/2 stem, 3x3/2 max pool, stages of ``block`` ("basic" | "bottleneck").

    ``groups``/``width_per_group`` give ResNeXt (32, 4) and Wide ResNet (1, 128);
    ``se_reduction`` adds squeeze-excitation; ``stride_on_1x1`` is the paper's v1;
    ``legacy``: the SENet authors' stem and names (see the module's docstring).
    """
    b = GraphBuilder(input_shape, name)
    if legacy:
        with b.scope("layer0"):
            x = blocks.conv_bn_act(b, b.input, 64, 7, 2, suffix="1")
        x = b.node("pool0", "maxpool", [x], kernel=3, stride=2, ceil_mode=True)
    else:
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
                                          stride_on_1x1=stride_on_1x1,
                                          se_name="se_module" if legacy else "se")
    y = blocks.classifier(b, x, num_classes, name="last_linear" if legacy else "fc")
    return b.build(y, classifiers=[y], meta={"family": "resnet"})


BASIC, BOTTLENECK = "basic", "bottleneck"


@entry("resnet18", "resnet", TV, published_params=11_689_512, published_macs=1_814_000_000,
       exact=True, top1=69.758,
       twins=("torchvision:resnet18",))

def resnet18() -> Genotype:
    """ResNet-18."""
    return resnet(BASIC, (2, 2, 2, 2), name="resnet18")


@entry("resnet34", "resnet", TV, published_params=21_797_672, published_macs=3_664_000_000,
       exact=True, top1=73.314,
       twins=("torchvision:resnet34",))

def resnet34() -> Genotype:
    """ResNet-34."""
    return resnet(BASIC, (3, 4, 6, 3), name="resnet34")


@entry("resnet50", "resnet", TV, published_params=25_557_032, published_macs=4_089_000_000,
       exact=True, top1=76.130, note="v1.5: stride 2 on the 3x3 conv of the bottleneck",
       twins=("torchvision:resnet50",))

def resnet50() -> Genotype:
    """ResNet-50 (torchvision's v1.5)."""
    return resnet(BOTTLENECK, (3, 4, 6, 3), name="resnet50")


@entry("resnet50_v1", "resnet", PAPER, published_params=25_600_000, published_macs=3_800_000_000,
       note="paper v1: stride 2 on the first 1x1 conv of the bottleneck; we count 3.858G MACs "
            "where the paper prints 3.8G, its two digits truncated as for ResNet-34 (3.664G "
            "printed 3.6G); the 231M MACs below resnet50 (v1.5) are the stride placement")
def resnet50_v1() -> Genotype:
    """ResNet-50 as in the paper (v1 stride placement)."""
    return resnet(BOTTLENECK, (3, 4, 6, 3), stride_on_1x1=True, name="resnet50_v1")


# He et al. 2016, Table 1: blocks per stage (conv2_x, conv3_x, conv4_x, conv5_x)
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}
V1_NOTE = ("paper v1 stride placement (stride 2 on the bottleneck's first 1x1 conv), which "
           "saves MACs against torchvision's v1.5")


@entry("resnet101", "resnet", TV, published_params=44_549_160, published_macs=7_801_000_000,
       exact=True, top1=77.374, note="v1.5: stride 2 on the 3x3 conv of the bottleneck",
       twins=("torchvision:resnet101",))

def resnet101() -> Genotype:
    """ResNet-101 (torchvision's v1.5)."""
    return resnet(BOTTLENECK, DEPTHS[101], name="resnet101")


@entry("resnet152", "resnet", TV, published_params=60_192_808, published_macs=11_514_000_000,
       exact=True, top1=78.312, note="v1.5: stride 2 on the 3x3 conv of the bottleneck",
       twins=("torchvision:resnet152",))

def resnet152() -> Genotype:
    """ResNet-152 (torchvision's v1.5)."""
    return resnet(BOTTLENECK, DEPTHS[152], name="resnet152")


@entry("resnet18_v1", "resnet", PAPER, published_params=11_700_000, published_macs=1_800_000_000,
       note="the paper's row for ResNet-18: the same network as resnet18 (basic blocks carry "
            "the stride on a 3x3 conv in v1 and v1.5 alike)",
       twins=("torchvision:resnet18",))

def resnet18_v1() -> Genotype:
    """ResNet-18 as in the paper (identical to torchvision's)."""
    return resnet(BASIC, DEPTHS[18], name="resnet18_v1")


@entry("resnet34_v1", "resnet", PAPER, published_params=21_800_000, published_macs=3_600_000_000,
       note="the same network as resnet34 (3.664G MACs, torchvision); the paper prints 3.6G, "
            "two significant digits truncated rather than rounded",
       twins=("torchvision:resnet34",))

def resnet34_v1() -> Genotype:
    """ResNet-34 as in the paper (identical to torchvision's)."""
    return resnet(BASIC, DEPTHS[34], name="resnet34_v1")


@entry("resnet101_v1", "resnet", PAPER, published_params=44_500_000, published_macs=7_600_000_000,
       note=V1_NOTE)
def resnet101_v1() -> Genotype:
    """ResNet-101 as in the paper (v1 stride placement)."""
    return resnet(BOTTLENECK, DEPTHS[101], stride_on_1x1=True, name="resnet101_v1")


@entry("resnet152_v1", "resnet", PAPER, published_params=60_200_000, published_macs=11_300_000_000,
       note=V1_NOTE)
def resnet152_v1() -> Genotype:
    """ResNet-152 as in the paper (v1 stride placement)."""
    return resnet(BOTTLENECK, DEPTHS[152], stride_on_1x1=True, name="resnet152_v1")


# ResNeXt (Xie et al. 2017): cardinality C x bottleneck width d, stride on the grouped 3x3
@entry("resnext50_32x4d", "resnext", TV, published_params=25_028_904, published_macs=4_230_000_000,
       exact=True, top1=77.618, note="ResNeXt-50 (32x4d); the paper's Table 1 gives 25.0M / 4.2G",
       twins=("torchvision:resnext50_32x4d",))

def resnext50_32x4d() -> Genotype:
    """ResNeXt-50 32x4d: 32 groups of width 4 in the first stage's 3x3 conv."""
    return resnet(BOTTLENECK, DEPTHS[50], groups=32, width_per_group=4, name="resnext50_32x4d")


@entry("resnext101_32x8d", "resnext", TV, published_params=88_791_336, published_macs=16_414_000_000,
       exact=True, top1=79.312, note="torchvision figures (not in the paper, whose ResNeXt-101 is 32x4d)",
       twins=("torchvision:resnext101_32x8d",))

def resnext101_32x8d() -> Genotype:
    """ResNeXt-101 32x8d."""
    return resnet(BOTTLENECK, DEPTHS[101], groups=32, width_per_group=8, name="resnext101_32x8d")


# Squeeze-and-excitation (Hu et al. 2018): SE with reduction r=16 before each residual addition
SE_R = 16


@entry("se_resnet50_v1", "senet", SENET, published_params=28_100_000, published_macs=3_870_000_000,
       note="the paper's SE-ResNet-50 as the authors released it (timm's legacy_seresnet50, "
            "its names): v1 stride placement (the paper's ResNet-50 baseline, 3.86G, is v1 too), "
            "Caffe's ceil-mode 3x3/2 stem pool without padding, r=16, SE convs with bias. We count 3.8605G conv/linear MACs; "
            "the paper's 3.87G is what counting SE's pooling and channel scaling as one op per "
            "element adds (2 x 5.52M -> 3.8715G)",
       twins=("timm:legacy_seresnet50",))

def se_resnet50_v1() -> Genotype:
    """SE-ResNet-50 as in the paper (v1 strides, r=16)."""
    return resnet(BOTTLENECK, DEPTHS[50], se_reduction=SE_R, stride_on_1x1=True, legacy=True,
                  name="se_resnet50_v1")


@entry("se_resnet50", "senet", "v1.5 counterpart of " + SENET,
       note="v1.5 stride placement (as the zoo's resnet50 and timm's seresnet50): the paper's "
            "figures belong to se_resnet50_v1; this one costs 231M MACs more",
       twins=("timm:seresnet50",))

def se_resnet50() -> Genotype:
    """SE-ResNet-50 with torchvision's v1.5 stride placement (r=16)."""
    return resnet(BOTTLENECK, DEPTHS[50], se_reduction=SE_R, name="se_resnet50")


@entry("se_resnext50_32x4d", "senet", SENET, published_macs=4_250_000_000,
       note="ResNeXt-50 32x4d (stride on the grouped 3x3, as ResNeXt itself) with r=16 SE; "
            "the paper gives GFLOPs only. We count 4.233G (-0.4%); counting SE's pooling and "
            "scaling per element as for se_resnet50_v1 gives 4.244G, and the paper gives no "
            "breakdown of the rest",
       twins=("timm:seresnext50_32x4d",))

def se_resnext50_32x4d() -> Genotype:
    """SE-ResNeXt-50 32x4d (r=16)."""
    return resnet(BOTTLENECK, DEPTHS[50], groups=32, width_per_group=4, se_reduction=SE_R,
                  name="se_resnext50_32x4d")


@entry("legacy_seresnext50_32x4d", "senet", "the SENet authors' release of " + SENET,
       twins=("timm:legacy_seresnext50_32x4d",),
       note="se_resnext50_32x4d (the same layers and counts) as the authors released it "
            "(timm's legacy_seresnext50_32x4d, its names): Caffe's ceil-mode 3x3/2 stem pool "
            "without padding, layer0 / se_module / last_linear; the paper's 4.25G is compared "
            "under se_resnext50_32x4d")
def legacy_seresnext50_32x4d() -> Genotype:
    """SE-ResNeXt-50 32x4d in the authors' released layout (timm's legacy port)."""
    return resnet(BOTTLENECK, DEPTHS[50], groups=32, width_per_group=4, se_reduction=SE_R,
                  legacy=True, name="legacy_seresnext50_32x4d")


# Wide ResNet-50-2: the bottleneck's inner width doubled (128 per group at stage 1)
@entry("wide_resnet50_2", "wide_resnet", TV, published_params=68_883_240,
       published_macs=11_398_000_000, exact=True, top1=78.468,
       note=f"WRN-50-2-bottleneck; {WRN} gives 68.9M params",
       twins=("torchvision:wide_resnet50_2",))

def wide_resnet50_2() -> Genotype:
    """Wide ResNet-50-2: ResNet-50 with twice the bottleneck width."""
    return resnet(BOTTLENECK, DEPTHS[50], width_per_group=128, name="wide_resnet50_2")
