"""Xception (Chollet 2017, Fig. 5), at 3x299x299.

Entry flow: two plain convs, then three residual blocks of two separable convs and a 3x3/2
max pool, with a strided 1x1 projection on the shortcut. Middle flow: eight residual
blocks of three separable 728-wide convs. Exit flow: one more downsampling block, two
separable convs (1536, 2048), global pool, fc. Every conv is bias-free and followed by BN;
the separable convs have no BN or ReLU between their depthwise and pointwise parts.
Node names are those of the common PyTorch port (Cadene's, kept by timm as
``legacy_xception``): ``block1.skip``, ``block1.skipbn``, ``block2.rep.1.conv1`` (the
depthwise part of a separable conv), ``block2.rep.1.pointwise``, ``block2.rep.2`` (its BN),
``conv3.conv1``, ``bn4``, ``fc``; a timm ``legacy_xception`` checkpoint loads as it is.
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

PAPER = "Chollet 2017, Xception: Deep Learning with Depthwise Separable Convolutions, Fig. 5, Table 3"

# Fig. 5, block by block: (widths of the separable convs, downsampling?)
FLOWS = (
    ((128, 128), True), ((256, 256), True), ((728, 728), True),   # entry flow
    *[((728, 728, 728), False)] * 8,                               # middle flow
    ((728, 1024), True),                                           # exit flow
)
STEM = (32, 64)
TAIL = (1536, 2048)


def _separable(b: GraphBuilder, x: str, out: int) -> str:
    """The port's SeparableConv2d: ``conv1`` (3x3 depthwise), ``pointwise`` (1x1)."""
    return blocks.conv(b, blocks.dwconv(b, x, 3, name="conv1"), out, 1, name="pointwise")


def _block(b: GraphBuilder, x: str, widths, downsample: bool, pre_relu: bool) -> str:
    """A residual Xception block: [ReLU] sep-BN (ReLU sep-BN)... [max pool] + shortcut,
    its layers numbered like the port's ``rep`` Sequential."""
    y, k = x, 0
    with b.scope("rep"):
        for i, width in enumerate(widths):
            if i > 0 or pre_relu:
                y = b.node(str(k), "relu", [y])
                k += 1
            with b.scope(str(k)):
                y = _separable(b, y, width)
            y = b.node(str(k + 1), "bn", [y])
            k += 2
        if downsample:
            y = b.node(str(k), "maxpool", [y], kernel=3, stride=2, padding=1)
    if not downsample:
        return b.node("add", "add", [y, x])
    s = b.node("skipbn", "bn", [blocks.conv(b, x, widths[-1], 1, 2, name="skip")])
    return b.node("add", "add", [y, s])


def xception(*, num_classes: int = 1000, input_shape=(3, 299, 299), flows=FLOWS) -> Genotype:
    """Xception: a linear stack of depthwise-separable convs with residual connections."""
    b = GraphBuilder(input_shape, "xception")
    x = b.input
    for i, (width, stride) in enumerate(zip(STEM, (2, 1)), 1):
        x = blocks.conv_bn_act(b, x, width, 3, stride, padding=0, suffix=str(i))
    for i, (widths, downsample) in enumerate(flows, 1):
        with b.scope(f"block{i}"):
            x = _block(b, x, widths, downsample, pre_relu=i > 1)
    for i, width in enumerate(TAIL, len(STEM) + 1):
        with b.scope(f"conv{i}"):
            x = _separable(b, x, width)
        x = b.node(f"relu{i}", "relu", [b.node(f"bn{i}", "bn", [x])])
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "xception"})


@entry("xception", "xception", PAPER, input_shape=(3, 299, 299), published_params=22_855_952,
       twins=("timm:legacy_xception",),
       note="Table 3 gives 22,855,952 params (the Keras model's trainable weights; BN running "
            "statistics excluded). The paper gives no MACs. Keras pads 'same' asymmetrically "
            "on even maps where torch pads symmetrically: same sizes, same counts")
def xception_entry() -> Genotype:
    """Xception."""
    return xception()
