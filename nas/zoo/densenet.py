"""DenseNet-BC (Huang et al. 2017, Table 1), as torchvision builds it.

A DenseNet is its growth rate, the number of layers in each of its four dense blocks, the
stem width, the bottleneck factor and the transition compression. Node names follow
torchvision (``features.denseblock1.denselayer1.conv1``, ``features.transition1.conv``).
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

TV = "torchvision.models (documented weights metadata)"


def densenet(block_config=(6, 12, 24, 16), *, growth_rate: int = 32, num_init_features: int = 64,
             bn_size: int = 4, compression: float = 0.5, num_classes: int = 1000,
             input_shape=(3, 224, 224), name: str = "densenet") -> Genotype:
    """DenseNet-BC: 7x7/2 stem, dense blocks of ``block_config`` layers, transitions that
    keep ``compression`` of the channels, BN-ReLU, global pool, fc."""
    b = GraphBuilder(input_shape, name)
    with b.scope("features"):
        x = blocks.conv(b, b.input, num_init_features, 7, 2, name="conv0")
        x = b.node("relu0", "relu", [b.node("norm0", "bn", [x])])
        x = b.node("pool0", "maxpool", [x], kernel=3, stride=2, padding=1)
        for i, layers in enumerate(block_config, 1):
            with b.scope(f"denseblock{i}"):
                x = blocks.dense_block(b, x, layers, growth_rate, bn_size)
            if i < len(block_config):
                with b.scope(f"transition{i}"):
                    x = blocks.transition(b, x, int(b.channels(x) * compression))
        x = b.node("norm5", "bn", [x])
    x = b.node("flatten", "flatten", [b.node("avgpool", "gap", [b.node("relu", "relu", [x])])])
    y = b.node("classifier", "linear", [x], out_features=num_classes)
    return b.build(y, classifiers=[y], meta={"family": "densenet"})


@entry("densenet121", "densenet", TV, published_params=7_978_856, published_macs=2_834_000_000,
       exact=True, top1=74.434, note="k=32, blocks 6-12-24-16; the paper gives ~8.0M params, "
                                     "~2.9G MACs",
       twins=("torchvision:densenet121",))

def densenet121() -> Genotype:
    """DenseNet-121."""
    return densenet((6, 12, 24, 16), name="densenet121")


@entry("densenet169", "densenet", TV, published_params=14_149_480, published_macs=3_360_000_000,
       exact=True, top1=75.600, note="k=32, blocks 6-12-32-32",
       twins=("torchvision:densenet169",))

def densenet169() -> Genotype:
    """DenseNet-169."""
    return densenet((6, 12, 32, 32), name="densenet169")


@entry("densenet201", "densenet", TV, published_params=20_013_928, published_macs=4_291_000_000,
       exact=True, top1=76.896, note="k=32, blocks 6-12-48-32",
       twins=("torchvision:densenet201",))

def densenet201() -> Genotype:
    """DenseNet-201."""
    return densenet((6, 12, 48, 32), name="densenet201")
