"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016), as torchvision builds them.

A configuration is the paper's Table 1 read top to bottom: a conv stem, then Fire modules
given as (s1x1, e1x1, e3x3) and ``"M"`` for a 3x3/2 max pool (ceil mode), then the 1x1
conv classifier and global average pooling. Node names follow torchvision
(``features.3.expand3x3``, ``classifier.1``).
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry
from nas.zoo.sequential import Sequential

TV = "torchvision.models (documented weights metadata)"

# stem (width, kernel, stride), then the rest of the feature extractor
CONFIGS = {
    "1_0": ((96, 7, 2), ["M", (16, 64, 64), (16, 64, 64), (32, 128, 128), "M",
                         (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), "M",
                         (64, 256, 256)]),
    "1_1": ((64, 3, 2), ["M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128),
                         "M", (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]),
}


def fire(b: GraphBuilder, x: str, squeeze: int, expand1: int, expand3: int) -> str:
    """Fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated (ReLU after each)."""
    s = b.node("squeeze_activation", "relu", [blocks.conv(b, x, squeeze, 1, bias=True, name="squeeze")])
    e1 = blocks.conv(b, s, expand1, 1, bias=True, name="expand1x1")
    e3 = blocks.conv(b, s, expand3, 3, bias=True, name="expand3x3")
    return b.node("cat", "concat", [b.node("expand1x1_activation", "relu", [e1]),
                                    b.node("expand3x3_activation", "relu", [e3])])


def squeezenet(version: str = "1_0", *, num_classes: int = 1000, input_shape=(3, 224, 224),
               dropout: float = 0.5) -> Genotype:
    """SqueezeNet ``version`` ("1_0" or "1_1")."""
    (width, kernel, stride), layers = CONFIGS[version]
    b = GraphBuilder(input_shape, f"squeezenet{version}")
    features = Sequential(b, "features", b.input)
    features.add("conv", out_channels=width, kernel=kernel, stride=stride, padding=0, bias=True)
    features.add("relu")
    for layer in layers:
        if layer == "M":
            features.add("maxpool", kernel=3, stride=2, ceil_mode=True)
        else:
            with features.child():
                features.x = fire(b, features.x, *layer)
    head = Sequential(b, "classifier", features.x)
    head.add("dropout", p=dropout)
    logits = head.add("conv", out_channels=num_classes, kernel=1, bias=True)
    head.add("relu")
    y = b.node("flatten", "flatten", [head.add("gap")])
    return b.build(y, classifiers=[logits], meta={"family": "squeezenet"})


@entry("squeezenet1_0", "squeezenet", TV, published_params=1_248_424, published_macs=819_000_000,
       exact=True, top1=58.092, note="Iandola et al. 2016, Table 1 (1,248,424 params there too)",
       twins=("torchvision:squeezenet1_0",))

def squeezenet1_0() -> Genotype:
    """SqueezeNet 1.0."""
    return squeezenet("1_0")


@entry("squeezenet1_1", "squeezenet", TV, published_params=1_235_496, published_macs=349_000_000,
       exact=True, top1=58.178,
       note="SqueezeNet 1.1 (3x3/64 stem, earlier pools): 2.4x fewer MACs than 1.0",
       twins=("torchvision:squeezenet1_1",))

def squeezenet1_1() -> Genotype:
    """SqueezeNet 1.1."""
    return squeezenet("1_1")
