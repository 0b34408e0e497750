"""VGG (Simonyan and Zisserman 2015), configurations A-E of Table 1.

A configuration is the paper's column read top to bottom: an int is a conv3 layer of that
width, ``(width, 1)`` a conv1 layer (config C), ``"LRN"`` local response normalisation
(A-LRN) and ``"M"`` a 2x2 max pool. Node names follow torchvision (``features.0``,
``classifier.6``), so ``vgg16`` has torchvision's state dict.
"""
from __future__ import annotations

from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry
from nas.zoo.sequential import Sequential

TV = "torchvision.models (documented weights metadata)"
PAPER = "Simonyan and Zisserman 2015, Very Deep Convolutional Networks, Tables 1-2"

CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M",
          512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
# Krizhevsky's LRN as the paper used it (k=2, n=5, alpha=1e-4 per the sum, so 5e-4 in torch).
LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)


def vgg(config: str, *, batch_norm: bool = False, num_classes: int = 1000,
        input_shape=(3, 224, 224), hidden: int = 4096, dropout: float = 0.5,
        name: str = "vgg") -> Genotype:
    """A VGG net from a column of Table 1 (``config`` in A, A-LRN, B, C, D, E).

    ``batch_norm`` puts BN after every conv (torchvision's ``_bn`` models).
    """
    b = GraphBuilder(input_shape, name)
    features = Sequential(b, "features", b.input)
    for layer in CONFIGS[config]:
        if layer == "M":
            features.add("maxpool", kernel=2, stride=2)
        elif layer == "LRN":
            features.add("lrn", **LRN)
        else:
            width, kernel = layer if isinstance(layer, tuple) else (layer, 3)
            features.add("conv", out_channels=width, kernel=kernel, bias=True)
            if batch_norm:
                features.add("bn")
            features.add("relu")
    x = b.node("avgpool", "adaptive_avgpool", [features.x], output_size=7)
    head = Sequential(b, "classifier", b.node("flatten", "flatten", [x]))
    for _ in range(2):
        head.add("linear", out_features=hidden)
        head.add("relu")
        head.add("dropout", p=dropout)
    y = head.add("linear", out_features=num_classes)
    return b.build(y, classifiers=[y], meta={"family": "vgg"})


def _tv_entry(name: str, config: str, batch_norm: bool, params: int, gmacs: float, top1: float,
              note: str = ""):
    @entry(name, "vgg", TV, published_params=params, published_macs=round(gmacs * 1e9),
           exact=True, top1=top1, twins=(f"torchvision:{name}",), note=note or f"config {config}" + (" with BN after each conv"
                                                                     if batch_norm else ""))
    def build() -> Genotype:
        return vgg(config, batch_norm=batch_norm, name=name)
    build.__doc__ = f"torchvision's {name}: VGG config {config}" + (" with BN." if batch_norm else ".")
    return build


vgg11 = _tv_entry("vgg11", "A", False, 132_863_336, 7.609, 69.020)
vgg11_bn = _tv_entry("vgg11_bn", "A", True, 132_868_840, 7.609, 70.370)
vgg13 = _tv_entry("vgg13", "B", False, 133_047_848, 11.308, 69.928)
vgg13_bn = _tv_entry("vgg13_bn", "B", True, 133_053_736, 11.308, 71.586)
vgg16 = _tv_entry("vgg16", "D", False, 138_357_544, 15.470, 71.592,
                  "config D; the paper's Table 2 gives 138M params and 15.5G MACs")
vgg16_bn = _tv_entry("vgg16_bn", "D", True, 138_365_992, 15.470, 73.360)
vgg19 = _tv_entry("vgg19", "E", False, 143_667_240, 19.632, 72.376,
                  "config E; the paper's Table 2 gives 144M params and 19.6G MACs")
vgg19_bn = _tv_entry("vgg19_bn", "E", True, 143_678_248, 19.632, 74.218)


@entry("vgg11_lrn", "vgg", PAPER, published_params=133_000_000,
       note="config A-LRN: A with LRN after the first conv (LRN has no parameters); the paper "
            "gives no MACs per config")
def vgg11_lrn() -> Genotype:
    """VGG config A-LRN."""
    return vgg("A-LRN", name="vgg11_lrn")


@entry("vgg16_c", "vgg", PAPER, published_params=134_000_000,
       note="config C: 16 layers, the last conv of stages 3-5 is a 1x1 conv; the paper gives "
            "no MACs per config")
def vgg16_c() -> Genotype:
    """VGG config C (16 layers with conv1 layers)."""
    return vgg("C", name="vgg16_c")
