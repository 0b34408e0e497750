"""GoogLeNet (Szegedy et al. 2015) and Inception-v3 (Szegedy et al. 2016).

GoogLeNet reads like the paper's Table 1: a stem, then inception modules given by their
six widths (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj). Two variants:
- ``googlenet``: torchvision's: BN after every conv, a 3x3 conv where the paper's 5x5 branch
  is, no LRN; node names as torchvision's (``inception4a.branch2.1.conv``);
- ``googlenet_paper``: the paper's: 5x5 branches, biased convs, no BN, LRN after the first
  pool and after conv 3x3, 3x3/2 pools, 7x7 average pool, dropout 40%.
Auxiliary heads (after 4a and 4d) are an argument, off by default: they exist only in
training, so their parameters count and their MACs do not. In training mode the compiled
net returns ``(main, aux2, aux1)``, torchvision's order.

Inception-v3 is torchvision's, built with its auxiliary head (torchvision's documented
parameter count includes it).

torchvision's pretrained GoogLeNet and Inception-v3 are built with ``transform_input=True``:
they take ImageNet-normalised input and re-normalise it to the [-1, 1] scaling the Google
weights were trained with, channel by channel. The ``googlenet`` and ``inception_v3``
entries carry that step as their first node (``transform_input``, a ``channel_affine`` op:
no parameters and no MACs, as FlopCounterMode counts it), so a torchvision checkpoint gives
torchvision's answers.
"""
from __future__ import annotations

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.zoo.registry import entry

TV = "torchvision.models (documented weights metadata)"
PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions, Table 1 and Fig. 3"

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; "M" is a max pool.
GOOGLENET = (
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    "M",
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    "M",
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
)
AUX_AFTER = ("4a", "4d")
# AlexNet's LRN (the paper gives no parameters): alpha 1e-4 per sum, and torch divides by n
LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
BN_EPS = 1e-3  # torchvision's BasicConv2d
# torchvision's _transform_input: x[:, c] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def transform_input(b: GraphBuilder, x: str) -> str:
    """torchvision's ``transform_input``: ImageNet-normalised input re-normalised to the
    mean 0.5 / std 0.5 scaling of the Google weights, as one ``channel_affine`` node."""
    return b.node("transform_input", "channel_affine", [x],
                  scale=[s / 0.5 for s in IMAGENET_STD],
                  shift=[(m - 0.5) / 0.5 for m in IMAGENET_MEAN])


def _basic_conv(b: GraphBuilder, x: str, scope: str, out: int, kernel, stride: int = 1,
                padding=None) -> str:
    """torchvision's BasicConv2d: bias-free conv, BN (eps 1e-3), ReLU, under ``scope``."""
    with b.scope(scope):
        return blocks.conv_bn_act(b, x, out, kernel, stride, padding=padding, bn_eps=BN_EPS)


def _inception_tv(b: GraphBuilder, x: str, c1, c3r, c3, c5r, c5, pool_proj) -> str:
    """torchvision's inception module (3x3 in the '5x5' branch), torchvision's names."""
    y1 = _basic_conv(b, x, "branch1", c1, 1)
    y2 = _basic_conv(b, _basic_conv(b, x, "branch2.0", c3r, 1), "branch2.1", c3, 3)
    y3 = _basic_conv(b, _basic_conv(b, x, "branch3.0", c5r, 1), "branch3.1", c5, 3)
    p = b.node("branch4.0", "maxpool", [x], kernel=3, stride=1, padding=1, ceil_mode=True)
    y4 = _basic_conv(b, p, "branch4.1", pool_proj, 1)
    return b.node("concat", "concat", [y1, y2, y3, y4])


def _aux_tv(b: GraphBuilder, x: str, num_classes: int) -> str:
    """torchvision's GoogLeNet aux head: 4x4 adaptive pool, 1x1 conv 128, fc 1024, fc."""
    y = b.node("pool", "adaptive_avgpool", [x], output_size=4)
    y = b.node("flatten", "flatten", [_basic_conv(b, y, "conv", 128, 1)])
    y = b.node("relu", "relu", [b.node("fc1", "linear", [y], out_features=1024)])
    y = b.node("dropout", "dropout", [y], p=0.7)
    return b.node("fc2", "linear", [y], out_features=num_classes)


def _aux_paper(b: GraphBuilder, x: str, num_classes: int) -> str:
    """The paper's aux head: 5x5/3 average pool, 1x1 conv 128, fc 1024, dropout 70%, fc."""
    y = b.node("pool", "avgpool", [x], kernel=5, stride=3)
    y = b.node("relu0", "relu", [blocks.conv(b, y, 128, 1, bias=True)])
    y = b.node("flatten", "flatten", [y])
    y = b.node("relu1", "relu", [b.node("fc1", "linear", [y], out_features=1024)])
    y = b.node("dropout", "dropout", [y], p=0.7)
    return b.node("fc2", "linear", [y], out_features=num_classes)


def _stem_tv(b: GraphBuilder, x: str) -> str:
    pool = dict(kernel=3, stride=2, ceil_mode=True)
    x = b.node("maxpool1", "maxpool", [_basic_conv(b, x, "conv1", 64, 7, 2)], **pool)
    x = _basic_conv(b, _basic_conv(b, x, "conv2", 64, 1), "conv3", 192, 3)
    return b.node("maxpool2", "maxpool", [x], **pool)


def _stem_paper(b: GraphBuilder, x: str) -> str:
    """Fig. 3: conv 7x7/2, max pool, LRN, conv 1x1, conv 3x3, LRN, max pool."""
    pool = dict(kernel=3, stride=2, ceil_mode=True)
    x = b.node("relu1", "relu", [blocks.conv(b, x, 64, 7, 2, bias=True, name="conv1")])
    x = b.node("lrn1", "lrn", [b.node("maxpool1", "maxpool", [x], **pool)], **LRN)
    x = b.node("relu2", "relu", [blocks.conv(b, x, 64, 1, bias=True, name="conv2")])
    x = b.node("relu3", "relu", [blocks.conv(b, x, 192, 3, bias=True, name="conv3")])
    return b.node("maxpool2", "maxpool", [b.node("lrn2", "lrn", [x], **LRN)], **pool)


def _inception_paper(b: GraphBuilder, x: str, *widths) -> str:
    return blocks.inception_module(b, x, *widths, kernel5=5, bn=False)


def googlenet(*, paper: bool = False, aux: bool = False, transform: bool = False,
              num_classes: int = 1000, input_shape=(3, 224, 224), table=GOOGLENET,
              name: str | None = None) -> Genotype:
    """GoogLeNet: torchvision's variant, or the paper's (``paper=True``); ``aux`` adds the
    two auxiliary classifiers (returned after the main output in training mode, aux2 before
    aux1 as torchvision returns them); ``transform`` adds torchvision's transform_input."""
    b = GraphBuilder(input_shape, name or ("googlenet_paper" if paper else "googlenet"))
    x = transform_input(b, b.input) if transform else b.input
    x = (_stem_paper if paper else _stem_tv)(b, x)
    module = _inception_paper if paper else _inception_tv
    aux_head = _aux_paper if paper else _aux_tv
    pools, heads = 2, []
    for row in table:
        if row == "M":
            pools += 1
            kernel = 2 if not paper and pools == 4 else 3  # torchvision: 2x2/2, the same 14 -> 7
            x = b.node(f"maxpool{pools}", "maxpool", [x], kernel=kernel, stride=2, ceil_mode=True)
            continue
        label, widths = row
        with b.scope(f"inception{label}"):
            x = module(b, x, *widths)
        if aux and label in AUX_AFTER:
            with b.scope(f"aux{len(heads) + 1}"):
                heads.append(aux_head(b, x, num_classes))
    x = b.node("avgpool", "avgpool", [x], kernel=7, stride=1) if paper else b.node("avgpool", "gap", [x])
    x = b.node("dropout", "dropout", [b.node("flatten", "flatten", [x])], p=0.4 if paper else 0.2)
    y = b.node("fc", "linear", [x], out_features=num_classes)
    heads = heads[::-1]  # torchvision returns (logits, aux2, aux1)
    return b.build(y, aux_outputs=heads, classifiers=[y, *heads], meta={"family": "inception"})


@entry("googlenet", "inception", TV, published_params=6_624_904, published_macs=1_498_000_000,
       exact=True, top1=69.778,
       twins=("torchvision:googlenet(aux_logits=False, transform_input=True, init_weights=False)",),
       note="torchvision's pretrained build: transform_input (0 params, 0 MACs), 3x3 convs where "
            "the paper's 5x5 branch is, BN, no aux heads (googlenet(aux=True) adds them: "
            "13,004,888 params, as torchvision's aux_logits=True)")
def googlenet_tv() -> Genotype:
    """torchvision's pretrained GoogLeNet: transform_input, no auxiliary heads."""
    return googlenet(transform=True)


@entry("googlenet_paper", "inception", PAPER, published_params=6_797_700,
       published_macs=1_500_000_000,
       note="the paper's 5x5 branches, biased convs, no BN, LRN as in Fig. 3; no aux heads. "
            "MACs +5.5%: module by module they equal Table 1's ops column (conv2+3 360M, 3a 128M, "
            "3b 304M, 4a-4e 73/88/100/119/170M, 5b 71M) except conv1, which the table lists "
            "as 2.7K params / 34M ops although a 7x7 conv from 3 to 64 maps at 112x112 has "
            "9,408 weights and costs 118M MACs (and 5a: 51M vs 54M). Params +3.0%: the "
            "table's 6,797.7K counts K = 1024 weights, no biases, with that conv1 slip and "
            "module slips (4c 463K vs 497.5K, 5a 1072K vs 1018K); ours are 6,990,272 weights "
            "+ 8,280 biases")
def googlenet_paper() -> Genotype:
    """The paper's GoogLeNet (no auxiliary heads)."""
    return googlenet(paper=True)


# ---------------------------------------------------------------- Inception-v3
V3 = "Szegedy et al. 2016, Rethinking the Inception Architecture, Table 1; torchvision's build"

# A layer is torchvision's BasicConv2d: (name, width, kernel[, stride[, padding]]); padding
# defaults to "same" at stride 1 and none at stride 2. A branch is a chain of layers, may
# start with a pool, and may end in a fork (a list of layers whose outputs are concatenated).


def _module_a(pool_features: int):
    return ((("branch1x1", 64, 1),),
            (("branch5x5_1", 48, 1), ("branch5x5_2", 64, 5)),
            (("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3), ("branch3x3dbl_3", 96, 3)),
            ("avgpool", ("branch_pool", pool_features, 1)))


def _module_c(c7: int):
    return ((("branch1x1", 192, 1),),
            (("branch7x7_1", c7, 1), ("branch7x7_2", c7, (1, 7)), ("branch7x7_3", 192, (7, 1))),
            (("branch7x7dbl_1", c7, 1), ("branch7x7dbl_2", c7, (7, 1)),
             ("branch7x7dbl_3", c7, (1, 7)), ("branch7x7dbl_4", c7, (7, 1)),
             ("branch7x7dbl_5", 192, (1, 7))),
            ("avgpool", ("branch_pool", 192, 1)))


MODULE_B = ((("branch3x3", 384, 3, 2),),
            (("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3), ("branch3x3dbl_3", 96, 3, 2)),
            ("maxpool",))
MODULE_D = ((("branch3x3_1", 192, 1), ("branch3x3_2", 320, 3, 2)),
            (("branch7x7x3_1", 192, 1), ("branch7x7x3_2", 192, (1, 7)),
             ("branch7x7x3_3", 192, (7, 1)), ("branch7x7x3_4", 192, 3, 2)),
            ("maxpool",))
MODULE_E = ((("branch1x1", 320, 1),),
            (("branch3x3_1", 384, 1), [("branch3x3_2a", 384, (1, 3)), ("branch3x3_2b", 384, (3, 1))]),
            (("branch3x3dbl_1", 448, 1), ("branch3x3dbl_2", 384, 3),
             [("branch3x3dbl_3a", 384, (1, 3)), ("branch3x3dbl_3b", 384, (3, 1))]),
            ("avgpool", ("branch_pool", 192, 1)))

INCEPTION_V3 = (
    ("Conv2d_1a_3x3", 32, 3, 2), ("Conv2d_2a_3x3", 32, 3, 1, 0), ("Conv2d_2b_3x3", 64, 3),
    "maxpool1", ("Conv2d_3b_1x1", 80, 1), ("Conv2d_4a_3x3", 192, 3, 1, 0), "maxpool2",
    ("Mixed_5b", _module_a(32)), ("Mixed_5c", _module_a(64)), ("Mixed_5d", _module_a(64)),
    ("Mixed_6a", MODULE_B),
    ("Mixed_6b", _module_c(128)), ("Mixed_6c", _module_c(160)), ("Mixed_6d", _module_c(160)),
    ("Mixed_6e", _module_c(192)), "AuxLogits",
    ("Mixed_7a", MODULE_D), ("Mixed_7b", MODULE_E), ("Mixed_7c", MODULE_E),
)


def _layer(b: GraphBuilder, x: str, name: str, width: int, kernel, stride: int = 1,
           padding=None) -> str:
    """One BasicConv2d row of the table."""
    if padding is None and stride != 1:
        padding = 0
    return _basic_conv(b, x, name, width, kernel, stride, padding)


def _pool(b: GraphBuilder, x: str, kind: str, name: str | None = None) -> str:
    if kind == "avgpool":
        return b.node(name or kind, "avgpool", [x], kernel=3, stride=1, padding=1)
    return b.node(name or kind, "maxpool", [x], kernel=3, stride=2)


def _mixed(b: GraphBuilder, x: str, branches) -> str:
    """An Inception-v3 module from its branch table; outputs concatenated in table order."""
    outs = []
    for branch in branches:
        y = x
        for step in branch:
            if isinstance(step, str):
                y = _pool(b, y, step)
            elif isinstance(step, list):
                forks = [_layer(b, y, *layer) for layer in step]
                y = b.node(step[0][0].rsplit("_", 1)[0] + "_cat", "concat", forks)
            else:
                y = _layer(b, y, *step)
        outs.append(y)
    return b.node("concat", "concat", outs)


def _aux_v3(b: GraphBuilder, x: str, num_classes: int) -> str:
    """Inception-v3's aux head on the 17x17 maps: 5x5/3 average pool, 1x1 conv 128,
    5x5 conv 768, global pool, fc."""
    y = b.node("pool", "avgpool", [x], kernel=5, stride=3)
    y = _layer(b, _layer(b, y, "conv0", 128, 1), "conv1", 768, 5, 1, 0)
    y = b.node("flatten", "flatten", [b.node("avgpool", "gap", [y])])
    return b.node("fc", "linear", [y], out_features=num_classes)


def inception_v3(*, aux: bool = True, transform: bool = True, num_classes: int = 1000,
                 input_shape=(3, 299, 299), dropout: float = 0.5, table=INCEPTION_V3) -> Genotype:
    """Inception-v3 as torchvision builds it, with its auxiliary head unless ``aux=False``
    and torchvision's transform_input (its pretrained build's) unless ``transform=False``."""
    b = GraphBuilder(input_shape, "inception_v3")
    x, heads = (transform_input(b, b.input) if transform else b.input), []
    for row in table:
        if row == "AuxLogits":
            if aux:
                with b.scope(row):
                    heads.append(_aux_v3(b, x, num_classes))
        elif isinstance(row, str):
            x = _pool(b, x, "maxpool", row)
        elif isinstance(row[1], tuple):
            with b.scope(row[0]):
                x = _mixed(b, x, row[1])
        else:
            x = _layer(b, x, *row)
    x = b.node("dropout", "dropout", [b.node("avgpool", "gap", [x])], p=dropout)
    y = b.node("fc", "linear", [b.node("flatten", "flatten", [x])], out_features=num_classes)
    return b.build(y, aux_outputs=heads, classifiers=[y, *heads], meta={"family": "inception"})


@entry("inception_v3", "inception", TV, input_shape=(3, 299, 299), published_params=27_161_264,
       published_macs=5_713_000_000, exact=True, top1=77.294,
       twins=("torchvision:inception_v3(aux_logits=True, transform_input=True, init_weights=False)",),
       note="torchvision's pretrained build at 3x299x299: transform_input (0 params, 0 MACs) and "
            "the auxiliary head, whose 3,326,696 params count (as in torchvision's figure) and "
            "whose MACs do not (it runs only in training)")
def inception_v3_entry() -> Genotype:
    """Inception-v3 with its auxiliary head."""
    return inception_v3()
