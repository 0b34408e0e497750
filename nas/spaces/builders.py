"""Space builders: registered functions mapping a space's parameter dict to a genotype.

A builder takes the space's parameters as keyword arguments plus ``input_shape`` and
``num_classes`` (the target spec) and returns a validated :class:`~nas.genotype.Genotype`.
The loader checks a YAML file's parameters against the builder's signature. Where the zoo
has a family builder, the space builder maps its parameters onto it, so the classic nets
are exact points (same canonical hash as the zoo entries).
"""
from __future__ import annotations

from typing import Callable

from nas import blocks
from nas.builder import GraphBuilder
from nas.genotype import Genotype
from nas.registry import Registry

BUILDERS: Registry[Callable[..., Genotype]] = Registry("space builder")


@BUILDERS.register("resnet_like")
def resnet_like(*, block: str, depth1: int, depth2: int, depth3: int, depth4: int,
                width1: int, width2: int, width3: int, width4: int, bottleneck_ratio: int = 4,
                groups: int = 1, se: bool = False, se_reduction: int = 16, stem: str = "classic",
                input_shape=(3, 224, 224), num_classes: int = 1000) -> Genotype:
    """A ResNet/ResNeXt/SE-ResNet through :func:`nas.zoo.resnet.resnet`.

    ``width{i}`` is the stage's base width (torchvision's ``planes``; a bottleneck stage
    outputs 4x that). ``bottleneck_ratio`` is out/inner width (RegNet's b: 4 for ResNet-50,
    2 for ResNeXt-50 32x4d), ``groups`` the cardinality of the 3x3 conv. ``stem``: the
    ``classic`` 7x7/2 conv or the ``deep`` stem of three 3x3 convs (ResNet-C, He et al. 2019).
    """
    from nas.zoo.resnet import resnet

    _accepts("resnet_like", stem=stem, block=block)
    width_per_group = 256 // (bottleneck_ratio * groups)   # inner = planes * 4 / b
    g = resnet(block, (depth1, depth2, depth3, depth4), widths=(width1, width2, width3, width4),
               groups=groups if block == "bottleneck" else 1,
               width_per_group=width_per_group if block == "bottleneck" else 64,
               se_reduction=se_reduction if se else None, num_classes=num_classes,
               input_shape=input_shape, name="resnet_like")
    return g if stem == "classic" else _deep_stem(g)


RESNET_STEM = ("conv1", "bn1", "relu1")   # the zoo ResNet's 7x7 stem nodes, in order


def _deep_stem(g: Genotype) -> Genotype:
    """``g``, a zoo ResNet, with its 7x7/2 stem replaced by 3x3/2(c/2) -> 3x3(c/2) -> 3x3(c)."""
    if not all(n in g.graph for n in RESNET_STEM):
        raise ValueError(f"expected the zoo ResNet stem nodes {RESNET_STEM}")
    b = GraphBuilder(g.input_shape, g.name)
    c = g.attrs(RESNET_STEM[0])["out_channels"]
    x = b.input
    with b.scope("stem"):
        for i, (width, stride) in enumerate(((c // 2, 2), (c // 2, 1), (c, 1))):
            x = blocks.conv_bn_act(b, x, width, 3, stride, suffix=str(i))
    for n in g.topological_order():
        if n != g.input and n not in RESNET_STEM:
            ins = [x if i == RESNET_STEM[-1] else i for i in g.inputs(n)]
            b.node(n, g.op(n), ins, **g.attrs(n))
    return b.build(g.output, classifiers=g.classifiers, meta={**g.meta, "stem": "deep"})


MBV2_STAGES = 7


@BUILDERS.register("mobilenet_like")
def mobilenet_like(*, stem_width: int = 32, last_width: int = 1280, dropout: float = 0.2,
                   input_shape=(3, 224, 224), num_classes: int = 1000, **stages) -> Genotype:
    """MobileNet v2-style net: stride-2 stem, 7 stages of inverted residuals, 1x1 head conv.

    Stage ``i`` (1..7) takes ``expand{i}``, ``kernel{i}``, ``depth{i}``, ``width{i}``,
    ``stride{i}`` (of its first block) and ``se{i}`` (squeeze-excitation, width hidden/4).
    """
    from nas.zoo.mobilenet import make_divisible

    b = GraphBuilder(input_shape, "mobilenet_like")
    with b.scope("features.0"):
        x = blocks.conv_bn_act(b, b.input, stem_width, 3, 2, act="relu6")
    k = 1
    for i in range(1, MBV2_STAGES + 1):
        for j in range(stages[f"depth{i}"]):
            with b.scope(f"features.{k}"):
                hidden = b.channels(x) * stages[f"expand{i}"]
                se = make_divisible(hidden // 4, 8) if stages[f"se{i}"] else None
                x = blocks.inverted_residual(b, x, stages[f"width{i}"], stages[f"stride{i}"] if j == 0 else 1,
                                             expand=stages[f"expand{i}"], kernel=stages[f"kernel{i}"], se=se)
            k += 1
    with b.scope(f"features.{k}"):
        x = blocks.conv_bn_act(b, x, last_width, 1, act="relu6")
    y = blocks.classifier(b, x, num_classes, dropout=dropout, name="classifier")
    return b.build(y, classifiers=[y], meta={"family": "mobilenet"})


def _mobilenet_signature() -> None:
    """Spell out mobilenet_like's per-stage keywords in its signature (the loader checks a
    space's parameter names against it)."""
    import inspect

    fn = mobilenet_like
    sig = inspect.signature(fn)
    kw = inspect.Parameter.KEYWORD_ONLY
    extra = [inspect.Parameter(f"{p}{i}", kw) for i in range(1, MBV2_STAGES + 1)
             for p in ("expand", "kernel", "depth", "width", "stride", "se")]
    keep = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
    fn.__signature__ = sig.replace(parameters=keep + extra)


_mobilenet_signature()


@BUILDERS.register("vgg_like")
def vgg_like(*, depth1: int, depth2: int, depth3: int, depth4: int, depth5: int, width1: int,
             width2: int, width3: int, width4: int, width5: int, bn: bool = False,
             head: str = "fc", fc_width: int = 4096, input_shape=(3, 224, 224),
             num_classes: int = 1000) -> Genotype:
    """A VGG (Simonyan & Zisserman, as :func:`nas.zoo.vgg.vgg` lays it out): five stages of
    ``depth{i}`` biased 3x3 convs (+BN) with ReLU, each closed by a 2x2 max pool; head ``fc``
    (7x7 pool, two ``fc_width`` linears with dropout) or ``gap`` (global pool, one linear)."""
    from nas.zoo.sequential import Sequential

    _accepts("vgg_like", head=head)
    b = GraphBuilder(input_shape, "vgg_like")
    features = Sequential(b, "features", b.input)
    for depth, width in zip((depth1, depth2, depth3, depth4, depth5), (width1, width2, width3, width4, width5)):
        for _ in range(depth):
            features.add("conv", out_channels=width, kernel=3, bias=True)
            if bn:
                features.add("bn")
            features.add("relu")
        features.add("maxpool", kernel=2, stride=2)
    if head == "gap":
        y = blocks.classifier(b, features.x, num_classes)
        return b.build(y, classifiers=[y], meta={"family": "vgg"})
    x = b.node("avgpool", "adaptive_avgpool", [features.x], output_size=7)
    classifier = Sequential(b, "classifier", b.node("flatten", "flatten", [x]))
    for _ in range(2):
        classifier.add("linear", out_features=fc_width)
        classifier.add("relu")
        classifier.add("dropout", p=0.5)
    y = classifier.add("linear", out_features=num_classes)
    return b.build(y, classifiers=[y], meta={"family": "vgg"})


@BUILDERS.register("densenet_like")
def densenet_like(*, growth: int, depth1: int, depth2: int, depth3: int, depth4: int,
                  init_width: int = 64, bn_size: int = 4, compression: float = 0.5,
                  input_shape=(3, 224, 224), num_classes: int = 1000) -> Genotype:
    """A DenseNet-BC through :func:`nas.zoo.densenet.densenet`: four dense blocks of
    ``depth{i}`` layers with growth rate ``growth``, ``init_width`` stem channels, bottleneck
    width ``bn_size`` x growth, transitions keeping ``compression`` of the channels."""
    from nas.zoo.densenet import densenet

    return densenet((depth1, depth2, depth3, depth4), growth_rate=growth, num_init_features=init_width,
                    bn_size=bn_size, compression=compression, num_classes=num_classes,
                    input_shape=input_shape, name="densenet_like")


@BUILDERS.register("regnet")
def regnet_space(*, w0: int, wa: float, wm: float, depth: int, group_w: int, se: bool = False,
                 bottleneck_ratio: int = 1, input_shape=(3, 224, 224), num_classes: int = 1000) -> Genotype:
    """A RegNetX (RegNetY with ``se``: SE ratio 0.25) through :func:`nas.zoo.regnet.regnet`:
    widths linear in the block index (``w0 + wa * j``), quantized to powers of ``wm``."""
    from nas.zoo.regnet import Y_SE_RATIO, regnet

    return regnet(w0, wa, wm, depth, group_w, 1.0 / bottleneck_ratio, Y_SE_RATIO if se else None,
                  num_classes=num_classes, input_shape=input_shape, name="regnet")


@BUILDERS.register("anynet")
def anynet(*, depth1: int, depth2: int, depth3: int, depth4: int, width1: int, width2: int,
           width3: int, width4: int, bottleneck_ratio: int = 1, group_w: int = 8, se: bool = False,
           stem_w: int = 32, input_shape=(3, 224, 224), num_classes: int = 1000) -> Genotype:
    """AnyNetX (RegNet paper, with shared bottleneck ratio and group width: AnyNetX_C; Y with
    ``se``): a 3x3/2 stem, four stages of ``depth{i}`` X blocks of width ``width{i}`` (stride 2
    first), pool, fc. Widths and group widths are made compatible as pycls does."""
    from nas.zoo.regnet import Y_SE_RATIO, x_block

    b = GraphBuilder(input_shape, "anynet")
    with b.scope("stem"):
        x = blocks.conv_bn_act(b, b.input, stem_w, 3, 2)
    stages = zip((depth1, depth2, depth3, depth4), (width1, width2, width3, width4))
    for i, (depth, width) in enumerate(stages):
        width, g = _compatible(width, 1.0 / bottleneck_ratio, group_w)
        for j in range(depth):
            se_w = int(round(b.channels(x) * Y_SE_RATIO)) if se else None
            with b.scope(f"s{i + 1}.b{j + 1}"):
                x = x_block(b, x, width, 2 if j == 0 else 1, g, 1.0 / bottleneck_ratio, se_w)
    y = blocks.classifier(b, x, num_classes)
    return b.build(y, classifiers=[y], meta={"family": "anynet"})


def _compatible(width: int, bot_mul: float, group_w: int) -> tuple[int, int]:
    """pycls ``adjust_block_compatibility`` for one stage: the bottleneck width becomes a
    multiple of the group width (the group width is capped by it)."""
    inner = int(max(1, width * bot_mul))
    g = min(group_w, inner)
    inner = max(g, int(round(inner / g) * g))
    return int(inner / bot_mul), g


def _domains() -> dict[str, dict]:
    """What each builder accepts per argument (the loader checks every value a space file
    allows, and ``fixed`` values, against it: a mistyped ``stem`` or a depth of -2 is refused
    instead of silently building something else)."""
    from nas.spaces.params import BOOL, ints, numbers, one_of

    pos = ints(1)
    # Per-stage depth <= 256 (ResNet-1001 has 111 blocks a stage; costing 1,000-block stages
    # takes seconds per point), widths <= 65,536 channels (real nets: a few thousand).
    depth, width = ints(1, 256), ints(1, 1 << 16)
    resnet = {"block": one_of("basic", "bottleneck"), "stem": one_of("classic", "deep"),
              "bottleneck_ratio": pos, "groups": pos, "se": BOOL, "se_reduction": pos,
              **{f"depth{i}": depth for i in range(1, 5)}, **{f"width{i}": width for i in range(1, 5)}}
    mobilenet = {"stem_width": width, "last_width": width, "dropout": numbers(0, 1),
                 **{f"{k}{i}": d for k, d in (("expand", ints(1, 64)), ("kernel", ints(1, 63)),
                                              ("depth", depth), ("width", width))
                    for i in range(1, MBV2_STAGES + 1)},
                 **{f"stride{i}": one_of(1, 2) for i in range(1, MBV2_STAGES + 1)},
                 **{f"se{i}": BOOL for i in range(1, MBV2_STAGES + 1)}}
    vgg = {"bn": BOOL, "head": one_of("fc", "gap"), "fc_width": width,
           **{f"depth{i}": depth for i in range(1, 6)}, **{f"width{i}": width for i in range(1, 6)}}
    densenet = {"growth": width, "init_width": width, "bn_size": ints(1, 64),
                "compression": numbers(0, 1, open_low=True),
                **{f"depth{i}": depth for i in range(1, 5)}}
    regnet = {"w0": ints(8, 1 << 16, multiple=8), "wa": numbers(0), "wm": numbers(1, open_low=True),
              "depth": depth, "group_w": pos, "se": BOOL, "bottleneck_ratio": pos}
    anynet = {"bottleneck_ratio": pos, "group_w": pos, "se": BOOL, "stem_w": width,
              **{f"depth{i}": depth for i in range(1, 5)}, **{f"width{i}": width for i in range(1, 5)}}
    return {"resnet_like": resnet, "mobilenet_like": mobilenet, "vgg_like": vgg,
            "densenet_like": densenet, "regnet": regnet, "anynet": anynet}


#: Builder name -> argument name -> :class:`nas.spaces.params.Domain`.
DOMAINS = _domains()


def _accepts(builder: str, **args) -> None:
    """Raise GenotypeError for an argument value ``builder`` does not accept (called directly,
    not through a checked space, a builder must not fall back to another architecture)."""
    from nas.errors import GenotypeError

    for name, value in args.items():
        domain = DOMAINS[builder][name]
        if not domain.accepts(value):
            raise GenotypeError(f"{builder}: {name} must be {domain.describe()}, got {value!r}")
