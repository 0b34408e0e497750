"""LeNet-5 (LeCun et al. 1998, Fig. 2 and Table I), on 1x32x32 digits.

Every layer up to F6 squashes with tanh (the paper's scaled tanh ``1.7159 tanh(2a/3)``
is a rescaled tanh: the same parameters and MACs). S2/S4 subsample as the paper does:
a 2x2 average times a trainable per-map coefficient plus a trainable bias (a depthwise
1x1 conv with bias). C3 follows Table I: each of its 16 maps sees only some S2 maps.
The output layer's 10 Euclidean RBF units have 84 parameters each; they are written as a
bias-free 84->10 linear layer, which has the same parameters and MACs.
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

PAPER = "LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition, Fig. 2"

# Table I: the S2 feature maps that each C3 feature map combines.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def _subsample(b: GraphBuilder, x: str) -> str:
    """S2/S4: 2x2 average, trainable coefficient and bias per map, tanh."""
    y = b.node("pool", "avgpool", [x], kernel=2)
    y = blocks.conv(b, y, b.channels(y), 1, groups=b.channels(y), bias=True, name="scale")
    return b.node("tanh", "tanh", [y])


def _partial_conv(b: GraphBuilder, x: str, table, kernel: int) -> str:
    """A conv whose output map j sees only the input maps ``table[j]`` (C3), then tanh."""
    parts = b.channels(x)
    maps = [b.node(f"in{i}", "channel_split", [x], parts=parts, index=i) for i in range(parts)]
    outs = []
    for j, sources in enumerate(table):
        with b.scope(f"map{j}"):
            picked = b.node("cat", "concat", [maps[i] for i in sources])
            outs.append(blocks.conv(b, picked, 1, kernel, padding=0, bias=True, name="conv"))
    return b.node("tanh", "tanh", [b.node("cat", "concat", outs)])


def lenet5(num_classes: int = 10, input_shape=(1, 32, 32), c3_table=C3_TABLE) -> Genotype:
    """LeNet-5: C1 6@28x28, S2, C3 16@10x10 (Table I), S4, C5 120, F6 84, output."""
    b = GraphBuilder(input_shape, "lenet5")
    with b.scope("C1"):
        x = b.node("tanh", "tanh", [blocks.conv(b, b.input, 6, 5, padding=0, bias=True)])
    with b.scope("S2"):
        x = _subsample(b, x)
    with b.scope("C3"):
        x = _partial_conv(b, x, c3_table, 5)
    with b.scope("S4"):
        x = _subsample(b, x)
    with b.scope("C5"):
        x = b.node("tanh", "tanh", [blocks.conv(b, x, 120, 5, padding=0, bias=True)])
    x = b.node("flatten", "flatten", [x])
    with b.scope("F6"):
        x = b.node("tanh", "tanh", [b.node("fc", "linear", [x], out_features=84)])
    y = b.node("output", "linear", [x], out_features=num_classes, bias=False)
    return b.build(y, classifiers=[y], meta={"family": "lenet"})


@entry("lenet5", "lenet", PAPER + "; figures: Sze et al. 2017 table", input_shape=(1, 32, 32),
       num_classes=10, published_params=60_000, published_macs=341_000,
       note="params 60,840 = the paper's own per-layer counts (C1 156, S2 12, C3 1,516, S4 32, "
            "C5 48,120, F6 10,164, RBF output 840). MACs are 3.8% under the ~341k lecture "
            "figure because C3 follows the paper's Table I (60 of 96 map pairs connected: "
            "150k MACs); a fully connected C3 would cost 240k (418k in all). S2/S4's "
            "trainable coefficients count as 1x1 depthwise convs (1,576 MACs).")
def lenet5_entry() -> Genotype:
    """LeNet-5 as in the paper."""
    return lenet5()
