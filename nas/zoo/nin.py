"""Network in Network (Lin et al. 2014), the CIFAR-10 model of the authors' release.

Three mlpconv layers (a conv followed by two 1x1 convs, "cccp" layers, each with ReLU),
max/average pooling and dropout between them, and global average pooling over the last
mlpconv's 10 maps instead of fully connected layers.
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

PAPER = "Lin et al. 2014, Network In Network, Sec. 4.2 (CIFAR-10 model of the authors' release)"

# (conv width, kernel, cccp widths, pooling after the block)
MLPCONV = (
    (192, 5, (160, 96), "maxpool"),
    (192, 5, (192, 192), "avgpool"),
    (192, 3, (192, None), None),   # None: the last cccp has num_classes maps
)


def nin(num_classes: int = 10, input_shape=(3, 32, 32), dropout: float = 0.5) -> Genotype:
    """Network in Network: three mlpconv layers and a global-average-pooling classifier."""
    b = GraphBuilder(input_shape, "nin")
    x = b.input
    head = None
    for i, (width, kernel, cccp, pool) in enumerate(MLPCONV, 1):
        with b.scope(f"mlpconv{i}"):
            x = b.node("relu0", "relu", [blocks.conv(b, x, width, kernel, bias=True)])
            for j, c in enumerate(cccp, 1):
                conv = blocks.conv(b, x, c or num_classes, 1, bias=True, name=f"cccp{j}")
                head = conv if c is None else head
                x = b.node(f"relu{j}", "relu", [conv])
            if pool:
                x = b.node("pool", pool, [x], kernel=3, stride=2, ceil_mode=True)
                x = b.node("dropout", "dropout", [x], p=dropout)
    y = b.node("flatten", "flatten", [b.node("avgpool", "gap", [x])])
    return b.build(y, classifiers=[head], meta={"family": "nin"})


@entry("nin", "nin", PAPER, input_shape=(3, 32, 32), num_classes=10,
       note="the paper gives no params/MACs figure; this is the released CIFAR-10 model "
            "(192-160-96, 192-192-192, 192-192-10 with 5x5, 5x5, 3x3 convs; pools 3x3/2 "
            "in Caffe's ceil mode)")
def nin_entry() -> Genotype:
    """Network in Network for CIFAR-10."""
    return nin()
