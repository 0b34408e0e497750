"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler and Fergus 2014).

Three variants, each written as its layer table:
- ``alexnet``: torchvision's one-tower net ("one weird trick", 64-192-384-256-256, no LRN);
- ``alexnet_paper``: the paper's two-tower net at 3x227x227: conv2/4/5 see only their own
  GPU's half of the maps (groups=2), LRN after conv1 and conv2;
- ``zfnet``: ZFNet's Fig. 3 (7x7/2 first conv, 5x5/2 second conv, dense conv3-5).
Node names follow torchvision's Sequential indices (``features.0``, ``classifier.6``).
"""
from __future__ import annotations

from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry
from nas.zoo.sequential import Sequential

TV = "torchvision.models (documented weights metadata)"
PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs, Fig. 2; Sze et al. 2017 table"
ZF = "Zeiler and Fergus 2014, Visualizing and Understanding Convolutional Networks, Fig. 3"

# The paper's response normalisation: b = a / (k + alpha * sum(a^2))^beta with k=2, n=5,
# alpha=1e-4, beta=0.75. torch divides alpha by n, so the op's alpha is n * 1e-4.
LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)

# (out_channels, kernel, stride, padding, groups, then "lrn"/"pool" after the ReLU)
TORCHVISION = (
    (64, 11, 4, 2, 1, "pool"),
    (192, 5, 1, 2, 1, "pool"),
    (384, 3, 1, 1, 1),
    (256, 3, 1, 1, 1),
    (256, 3, 1, 1, 1, "pool"),
)
TWO_TOWER = (
    (96, 11, 4, 0, 1, "lrn", "pool"),
    (256, 5, 1, 2, 2, "lrn", "pool"),
    (384, 3, 1, 1, 1),
    (384, 3, 1, 1, 2),
    (256, 3, 1, 1, 2, "pool"),
)
ZFNET = (
    (96, 7, 2, 1, 1, "pool", "lrn"),
    (256, 5, 2, 0, 1, "pool", "lrn"),
    (384, 3, 1, 1, 1),
    (384, 3, 1, 1, 1),
    (256, 3, 1, 1, 1, "pool"),
)


def alexnet(layers=TORCHVISION, *, input_shape=(3, 224, 224), num_classes: int = 1000,
            hidden: int = 4096, dropout: float = 0.5, pool_ceil: bool = False,
            adaptive_pool: bool = True, name: str = "alexnet") -> Genotype:
    """An AlexNet-style net: conv layers from ``layers``, 3x3/2 max pools, a 3-layer MLP head.

    ``adaptive_pool`` adds torchvision's 6x6 adaptive average pool before the head.
    """
    b = GraphBuilder(input_shape, name)
    features = Sequential(b, "features", b.input)
    for out, kernel, stride, padding, groups, *after in layers:
        features.add("conv", out_channels=out, kernel=kernel, stride=stride, padding=padding,
                     groups=groups, bias=True)
        features.add("relu")
        for step in after:
            if step == "lrn":
                features.add("lrn", **LRN)
            else:
                features.add("maxpool", kernel=3, stride=2, ceil_mode=pool_ceil)
    x = features.x
    if adaptive_pool:
        x = b.node("avgpool", "adaptive_avgpool", [x], output_size=6)
    head = Sequential(b, "classifier", b.node("flatten", "flatten", [x]))
    for _ in range(2):
        head.add("dropout", p=dropout)
        head.add("linear", out_features=hidden)
        head.add("relu")
    y = head.add("linear", out_features=num_classes)
    return b.build(y, classifiers=[y], meta={"family": "alexnet"})


@entry("alexnet", "alexnet", TV, published_params=61_100_840, published_macs=714_000_000,
       exact=True, top1=56.522, note="torchvision's one-tower variant (64-192-384-256-256), no LRN",
       twins=("torchvision:alexnet",))

def alexnet_tv() -> Genotype:
    """torchvision's AlexNet."""
    return alexnet()


@entry("alexnet_paper", "alexnet", PAPER, input_shape=(3, 227, 227),
       published_params=61_000_000, published_macs=724_000_000,
       note="two towers as in the paper: conv2/4/5 grouped (groups=2), conv3 and the FC layers "
            "dense; LRN after conv1 and conv2; 227x227 so that conv1 gives 55x55")
def alexnet_paper() -> Genotype:
    """The paper's two-tower AlexNet."""
    return alexnet(TWO_TOWER, input_shape=(3, 227, 227), adaptive_pool=False, name="alexnet_paper")


@entry("zfnet", "alexnet", ZF,
       note="the paper gives no params/MACs figure. Fig. 3 on one GPU: 7x7/2 conv1, 5x5/2 conv2, "
            "dense conv3-5 (384-384-256), contrast normalisation as AlexNet's LRN; pools in "
            "ceil mode (Caffe's) so the maps are 110-55-26-13-13-6 as in the figure")
def zfnet() -> Genotype:
    """ZFNet (Zeiler and Fergus 2014)."""
    return alexnet(ZFNET, pool_ceil=True, adaptive_pool=False, name="zfnet")
