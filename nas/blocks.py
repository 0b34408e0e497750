"""Subgraph helpers: the building blocks of the classic nets, as genotype fragments.

Every helper takes a :class:`~nas.builder.GraphBuilder` ``b`` and an input node ``x``,
adds its nodes in the builder's current scope and returns its output node. Names follow
torchvision where it has the block (``conv1``, ``bn1``, ``downsample.0``), so state dicts
read the same.

Initialisation is declared here too, as data: the last BN of every residual branch carries
``zero_init=True`` (its scale starts at 0, so each block starts as the identity; torchvision's
``zero_init_residual``, timm's ``zero_init_last``, Goyal et al. 2017). The op registry turns
that attribute into the init; the compiler knows no op names.
"""
from __future__ import annotations

from nas.builder import GraphBuilder
from nas.counting import countable


def conv(b: GraphBuilder, x: str, out: int, kernel: int, stride: int = 1, *, groups: int = 1,
         dilation: int = 1, padding=None, bias: bool = False, name: str = "conv") -> str:
    """A convolution (``padding`` defaults to 'same' for odd kernels at stride 1)."""
    attrs = dict(out_channels=out, kernel=kernel)
    for key, value, default in (("stride", stride, 1), ("groups", groups, 1),
                                ("dilation", dilation, 1), ("padding", padding, None),
                                ("bias", bias, False)):
        if value != default:
            attrs[key] = value
    return b.node(name, "conv", [x], **attrs)


def dwconv(b: GraphBuilder, x: str, kernel: int = 3, stride: int = 1, *, dilation: int = 1,
           name: str = "conv") -> str:
    """A depthwise convolution: groups = channels = out_channels."""
    c = b.channels(x)
    return conv(b, x, c, kernel, stride, groups=c, dilation=dilation, name=name)


def conv_bn_act(b: GraphBuilder, x: str, out: int, kernel: int, stride: int = 1, *,
                groups: int = 1, dilation: int = 1, padding=None, act: str | None = "relu",
                suffix: str = "", bn_eps: float | None = None, zero_init: bool = False) -> str:
    """conv -> bn -> activation, named ``conv{suffix}``, ``bn{suffix}``, ``{act}{suffix}``.

    ``zero_init``: the BN's scale starts at 0 (the last BN of a residual branch).
    """
    x = conv(b, x, out, kernel, stride, groups=groups, dilation=dilation, padding=padding,
             name=f"conv{suffix}")
    bn_attrs: dict = {"eps": bn_eps} if bn_eps is not None else {}
    if zero_init:
        bn_attrs["zero_init"] = True
    x = b.node(f"bn{suffix}", "bn", [x], **bn_attrs)
    return b.node(f"{act}{suffix}", act, [x]) if act else x


@countable("x")
def squeeze_excitation(b: GraphBuilder, x: str, squeeze: int, *, act: str = "relu",
                       gate: str = "sigmoid", name: str = "se") -> str:
    """Squeeze-and-excitation (Hu et al.): gap -> 1x1 fc1 -> act -> 1x1 fc2 -> gate, times x."""
    c = b.channels(x)
    with b.scope(name):
        s = b.node("avgpool", "gap", [x])
        s = conv(b, s, squeeze, 1, bias=True, name="fc1")
        s = b.node("act", act, [s])
        s = conv(b, s, c, 1, bias=True, name="fc2")
        s = b.node("gate", gate, [s])
        return b.node("scale", "mul", [x, s])


def _shortcut(b: GraphBuilder, x: str, out: int, stride: int) -> str:
    """Identity, or the 1x1 projection + BN (torchvision's ``downsample``) when shapes change."""
    if stride == 1 and b.channels(x) == out:
        return x
    with b.scope("downsample"):
        s = conv(b, x, out, 1, stride, name="0")
        return b.node("1", "bn", [s])


@countable("x")
def basic_block(b: GraphBuilder, x: str, out: int, stride: int = 1, *, se: int | None = None) -> str:
    """ResNet basic block: two 3x3 convs and a residual (``se``: SE squeeze width)."""
    y = conv_bn_act(b, x, out, 3, stride, suffix="1")
    y = conv_bn_act(b, y, out, 3, act=None, suffix="2", zero_init=True)
    if se:
        y = squeeze_excitation(b, y, se)
    shortcut = _shortcut(b, x, out, stride)
    y = b.node("add", "add", [y, shortcut])
    return b.node("relu", "relu", [y])


@countable("x")
def bottleneck(b: GraphBuilder, x: str, width: int, out: int, stride: int = 1, *,
               groups: int = 1, se: int | None = None, stride_on_1x1: bool = False,
               se_name: str = "se") -> str:
    """ResNet bottleneck 1x1 -> 3x3 (grouped for ResNeXt) -> 1x1 with a residual.

    The stride sits on the 3x3 conv (torchvision's "v1.5") unless ``stride_on_1x1``
    (the paper's v1). ``se``: squeeze width of an SE module (named ``se_name``) before the
    addition.
    """
    s1, s3 = (stride, 1) if stride_on_1x1 else (1, stride)
    y = conv_bn_act(b, x, width, 1, s1, suffix="1")
    y = conv_bn_act(b, y, width, 3, s3, groups=groups, suffix="2")
    y = conv_bn_act(b, y, out, 1, act=None, suffix="3", zero_init=True)
    if se:
        y = squeeze_excitation(b, y, se, name=se_name)
    shortcut = _shortcut(b, x, out, stride)
    y = b.node("add", "add", [y, shortcut])
    return b.node("relu", "relu", [y])


@countable("x")
def preact_block(b: GraphBuilder, x: str, out: int, stride: int = 1, *,
                 width: int | None = None, dropout: float = 0.0) -> str:
    """Pre-activation residual block (He et al. 2016b): BN-ReLU before each conv.

    ``width`` given: the bottleneck form 1x1(width) -> 3x3(width) -> 1x1(out); otherwise
    two 3x3 convs (Wide ResNet's block, with optional dropout between them). A projection
    shortcut, when needed, reads the pre-activated input.
    """
    pre = b.node("relu0", "relu", [b.node("bn0", "bn", [x])])
    project = stride != 1 or b.channels(x) != out
    shortcut = conv(b, pre, out, 1, stride, name="shortcut") if project else x
    if width is None:
        y = conv(b, pre, out, 3, stride, name="conv1")
        y = b.node("relu1", "relu", [b.node("bn1", "bn", [y])])
        if dropout:
            y = b.node("dropout", "dropout", [y], p=dropout)
        y = conv(b, y, out, 3, name="conv2")
    else:
        y = conv(b, pre, width, 1, name="conv1")
        y = b.node("relu1", "relu", [b.node("bn1", "bn", [y])])
        y = conv(b, y, width, 3, stride, name="conv2")
        y = b.node("relu2", "relu", [b.node("bn2", "bn", [y])])
        y = conv(b, y, out, 1, name="conv3")
    return b.node("add", "add", [y, shortcut])


@countable("x")
def inception_module(b: GraphBuilder, x: str, c1: int, c3r: int, c3: int, c5r: int, c5: int,
                     pool_proj: int, *, kernel5: int = 5, bn: bool = True, bn_eps: float = 1e-3,
                     pool_ceil: bool = True) -> str:
    """GoogLeNet's inception module: 1x1 | 1x1->3x3 | 1x1->5x5 | maxpool->1x1, concatenated.

    ``kernel5=3`` is torchvision's variant; ``bn=False`` is the paper's (biased convs, no BN).
    """
    def unit(y: str, out: int, k: int, suffix: str) -> str:
        if bn:
            return conv_bn_act(b, y, out, k, suffix=suffix, bn_eps=bn_eps)
        return b.node(f"relu{suffix}", "relu", [conv(b, y, out, k, bias=True, name=f"conv{suffix}")])

    with b.scope("branch1"):
        y1 = unit(x, c1, 1, "")
    with b.scope("branch2"):
        y2 = unit(unit(x, c3r, 1, "0"), c3, 3, "1")
    with b.scope("branch3"):
        y3 = unit(unit(x, c5r, 1, "0"), c5, kernel5, "1")
    with b.scope("branch4"):
        p = b.node("pool", "maxpool", [x], kernel=3, stride=1, padding=1, ceil_mode=pool_ceil)
        y4 = unit(p, pool_proj, 1, "")
    return b.node("concat", "concat", [y1, y2, y3, y4])


@countable("features")
def dense_layer(b: GraphBuilder, features: list[str], growth: int, bn_size: int = 4,
                dropout: float = 0.0) -> str:
    """DenseNet-BC layer: concat(features) -> BN-ReLU-1x1(bn_size*growth) -> BN-ReLU-3x3(growth)."""
    x = features[0] if len(features) == 1 else b.node("cat", "concat", list(features))
    y = conv(b, b.node("relu1", "relu", [b.node("norm1", "bn", [x])]), bn_size * growth, 1, name="conv1")
    y = conv(b, b.node("relu2", "relu", [b.node("norm2", "bn", [y])]), growth, 3, name="conv2")
    return b.node("dropout", "dropout", [y], p=dropout) if dropout else y


@countable("x")
def dense_block(b: GraphBuilder, x: str, num_layers: int, growth: int, bn_size: int = 4) -> str:
    """A dense block: each layer sees the concatenation of all earlier feature maps."""
    features = [x]
    for i in range(num_layers):
        with b.scope(f"denselayer{i + 1}"):
            features.append(dense_layer(b, features, growth, bn_size))
    return b.node("cat", "concat", features)


@countable("x")
def transition(b: GraphBuilder, x: str, out: int) -> str:
    """DenseNet transition: BN-ReLU-1x1 conv (compression) -> 2x2 average pool."""
    y = conv(b, b.node("relu", "relu", [b.node("norm", "bn", [x])]), out, 1, name="conv")
    return b.node("pool", "avgpool", [y], kernel=2)


def _conv_bn(b: GraphBuilder, x: str, names: tuple, out: int, kernel: int, stride: int = 1, *,
             groups: int = 1, act: str | None = None, zero_init: bool = False) -> str:
    """conv -> bn (-> act) under ``names`` = (scope, conv id, bn id, act id)."""
    scope, conv_id, bn_id, act_id = names
    with b.scope(scope):
        y = conv(b, x, out, kernel, stride, groups=groups, name=conv_id)
        y = b.node(bn_id, "bn", [y], **({"zero_init": True} if zero_init else {}))
        return b.node(act_id, act, [y]) if act else y


@countable("x")
def inverted_residual(b: GraphBuilder, x: str, out: int, stride: int = 1, *, expand: int = 6,
                      kernel: int = 3, se: int | None = None, act: str = "relu6",
                      se_gate: str = "sigmoid", torchvision_names: bool = False) -> str:
    """MobileNet v2 inverted residual: 1x1 expand -> depthwise kxk -> (SE) -> 1x1 linear project.

    Nodes are ``expand.conv``, ``dw.bn``, ``project.conv``...; ``torchvision_names`` names
    them as torchvision's InvertedResidual does (``conv.0.0`` expand conv, ``conv.0.1`` its
    BN, ``conv.1.0`` depthwise, ..., ``conv.2``/``conv.3`` projection and its BN; one index
    less without the expansion), so its checkpoints load.
    """
    c = b.channels(x)
    hidden = c * expand
    if torchvision_names:
        if se:
            raise ValueError("torchvision's InvertedResidual has no SE module")
        i = int(expand != 1)
        names = {"expand": ("conv.0", "0", "1", "2"), "dw": (f"conv.{i}", "0", "1", "2"),
                 "project": ("conv", str(i + 1), str(i + 2), None)}
    else:
        names = {step: (step, "conv", "bn", act) for step in ("expand", "dw", "project")}
    y = x
    if expand != 1:
        y = _conv_bn(b, y, names["expand"], hidden, 1, act=act)
    y = _conv_bn(b, y, names["dw"], hidden, kernel, stride, groups=hidden, act=act)
    if se:
        y = squeeze_excitation(b, y, se, gate=se_gate)
    residual = stride == 1 and c == out
    y = _conv_bn(b, y, names["project"], out, 1, zero_init=residual)
    return b.node("add", "add", [y, x]) if residual else y


@countable("x")
def depthwise_separable(b: GraphBuilder, x: str, out: int, stride: int = 1, *,
                        act: str = "relu") -> str:
    """MobileNet v1 block: depthwise 3x3 -> BN-act -> pointwise 1x1 -> BN-act."""
    with b.scope("dw"):
        y = conv_bn_act(b, x, b.channels(x), 3, stride, groups=b.channels(x), act=act)
    with b.scope("pw"):
        return conv_bn_act(b, y, out, 1, act=act)


def separable_conv(b: GraphBuilder, x: str, out: int, kernel: int = 3, stride: int = 1) -> str:
    """Xception's separable conv: depthwise kxk then pointwise 1x1, no BN between."""
    y = dwconv(b, x, kernel, stride, name="depthwise")
    return conv(b, y, out, 1, name="pointwise")


@countable("x")
def shufflenet_v1_unit(b: GraphBuilder, x: str, out: int, stride: int, groups: int, *,
                       group_first: bool = True) -> str:
    """ShuffleNet v1 unit: 1x1 group conv -> shuffle -> 3x3 depthwise -> 1x1 group conv.

    At stride 2 the shortcut is a 3x3 average pool and the branches are concatenated (the
    branch then produces ``out - in`` channels); otherwise they are added.
    """
    c = b.channels(x)
    branch_out = out - c if stride == 2 else out
    mid = out // 4
    g1 = groups if group_first else 1
    y = conv_bn_act(b, x, mid, 1, groups=g1, suffix="1")
    y = b.node("shuffle", "channel_shuffle", [y], groups=groups) if groups > 1 else y
    y = conv_bn_act(b, y, mid, 3, stride, groups=mid, act=None, suffix="2")
    y = conv_bn_act(b, y, branch_out, 1, groups=groups, act=None, suffix="3",
                    zero_init=stride != 2)
    if stride == 2:
        s = b.node("shortcut", "avgpool", [x], kernel=3, stride=2, padding=1)
        y = b.node("concat", "concat", [s, y])
    else:
        y = b.node("add", "add", [y, x])
    return b.node("relu", "relu", [y])


@countable("x")
def shufflenet_v2_unit(b: GraphBuilder, x: str, out: int, stride: int) -> str:
    """ShuffleNet v2 unit: channel split (stride 1) or two strided branches, concat, shuffle."""
    half = out // 2

    def branch2(y: str) -> str:
        with b.scope("branch2"):
            y = conv_bn_act(b, y, half, 1, suffix="1")
            y = conv_bn_act(b, y, half, 3, stride, groups=half, act=None, suffix="2")
            return conv_bn_act(b, y, half, 1, suffix="3")

    if stride == 1:
        left = b.node("split0", "channel_split", [x], parts=2, index=0)
        right = branch2(b.node("split1", "channel_split", [x], parts=2, index=1))
    else:
        with b.scope("branch1"):
            left = conv_bn_act(b, x, b.channels(x), 3, stride, groups=b.channels(x), act=None, suffix="1")
            left = conv_bn_act(b, left, half, 1, suffix="2")
        right = branch2(x)
    y = b.node("concat", "concat", [left, right])
    return b.node("shuffle", "channel_shuffle", [y], groups=2)


def classifier(b: GraphBuilder, x: str, num_classes: int, *, dropout: float = 0.0,
               name: str = "fc") -> str:
    """Global average pool -> flatten -> (dropout) -> linear: the usual head."""
    y = b.node("flatten", "flatten", [b.node("avgpool", "gap", [x])])
    if dropout:
        y = b.node("dropout", "dropout", [y], p=dropout)
    return b.node(name, "linear", [y], out_features=num_classes)
