"""The op registry: every op of the genotype vocabulary, declared once.

Each :class:`OpSpec` holds the op's attribute schema, its shape rule, its cost rule and its
torch builder. The validator, the counter and the compiler read this registry and nothing
else; no other module switches on op names.

Shapes are per sample, without the batch dimension: ``(C, H, W)`` for feature maps and
``(F,)`` for flat features. Costs are for one sample: ``(params, macs, acts)`` where MACs
count the multiply-accumulates of conv and linear layers (bias excluded, as PyTorch's
``FlopCounterMode`` does) and acts count the output elements of conv and linear layers
(pycls's convention).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from nas.registry import Registry

Shape = tuple[int, ...]
REQUIRED = object()


class OpError(ValueError):
    """A rule violation inside one op; the genotype adds the node's name."""


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its kind (int, pair, bool, float, choice), default and bounds."""

    name: str
    kind: str
    default: Any = REQUIRED
    minimum: float | None = None
    choices: tuple = ()
    maximum: float | None = None
    doc: str = ""
    structural: bool = True   # part of the architecture (False: e.g. an init hint, not hashed)

    def check(self, value: Any) -> None:
        """Raise OpError unless ``value`` is a valid value of this attribute."""
        valid = value in self.choices if self.kind == "choice" else _VALID[self.kind](value)
        if not valid:
            expected = _EXPECTED.get(self.kind, f"a {self.kind}")
            if self.kind == "choice":
                expected = f"one of {list(self.choices)}"
            raise OpError(f"attribute {self.name!r} must be {expected}, got {value!r}")
        if self.minimum is not None and value is not None and self.kind != "choice":
            values = value if isinstance(value, (list, tuple)) else (value,)
            if any(v < self.minimum for v in values):
                raise OpError(f"attribute {self.name!r} must be >= {self.minimum}, got {value!r}")
        if self.maximum is not None and value is not None and value > self.maximum:
            raise OpError(f"attribute {self.name!r} must be <= {self.maximum}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pair(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v))


_VALID = {
    "int": _is_int,
    "pair": _is_pair,
    "bool": lambda v: isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "optional_int": lambda v: v is None or _is_int(v),
    "optional_pair": lambda v: v is None or _is_pair(v),
    "shape": lambda v: isinstance(v, (list, tuple)) and len(v) in (1, 3)
    and all(_is_int(x) and x >= 1 for x in v),
    "floats": lambda v: isinstance(v, (list, tuple)) and len(v) >= 1
    and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v),
}
_EXPECTED = {"pair": "an int or a list of two ints", "optional_int": "an int or null",
             "optional_pair": "an int, a list of two ints, or null",
             "shape": "a list [C, H, W] (or [F]) of positive ints",
             "floats": "a non-empty list of finite numbers"}


def pair(v: int | list | tuple) -> tuple[int, int]:
    """An int-or-pair attribute as a (height, width) tuple."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Call(NamedTuple):
    """A parameter-free op compiled to a function call ``fn(*inputs, *args, **kwargs)``.

    ``method``: call ``inputs[0].fn(*inputs[1:], *args)`` instead; ``pack``: pass the inputs
    as one list (``torch.cat``); ``chain``: fold a binary ``fn`` left to right over 2+ inputs.
    """

    fn: Any
    args: tuple = ()
    kwargs: dict = {}
    method: bool = False
    pack: bool = False
    chain: bool = False


def _no_cost(attrs, ins, out):
    return 0, 0, 0


@dataclass(frozen=True)
class OpSpec:
    """Everything nas knows about one op."""

    name: str
    doc: str
    attrs: tuple[Attr, ...]
    shape: Callable[[dict, list[Shape]], Shape]
    torch: Callable[[dict, list[Shape], bool], Any]
    arity: tuple[int, int | None] = (1, 1)
    cost: Callable[[dict, list[Shape], Shape], tuple[int, int, int]] = _no_cost
    width_attr: str | None = None   # the attribute that sets the output width (classifiers)
    inplace_safe: bool = False      # a sole consumer may overwrite this op's output
    inplace_capable: bool = False   # the op can overwrite its first input
    passthrough: bool = False       # compiles to its input tensor itself (no code)
    # initialises the built module in place: every parameter and buffer (the compiler builds
    # such modules without PyTorch's default init, on uninitialised storage)
    init: Callable[[Any, dict], None] | None = None
    schema: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "schema", {a.name: a for a in self.attrs})

    def resolve(self, attrs: dict) -> dict:
        """Validate ``attrs`` against the schema and fill in defaults."""
        for key in attrs:
            if key not in self.schema:
                known = ", ".join(self.schema) or "none"
                raise OpError(f"op {self.name!r} has no attribute {key!r} (known: {known})")
        full = {}
        for a in self.attrs:
            if a.name in attrs:
                a.check(attrs[a.name])
                full[a.name] = attrs[a.name]
            elif a.default is REQUIRED:
                raise OpError(f"op {self.name!r} needs attribute {a.name!r}")
            else:
                full[a.name] = a.default
        return full

    def check_arity(self, n: int) -> None:
        """Raise OpError unless the op takes ``n`` inputs."""
        lo, hi = self.arity
        if n < lo or (hi is not None and n > hi):
            want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise OpError(f"op {self.name!r} takes {want} input(s), got {n}")


OPS: Registry[OpSpec] = Registry("op")


def op(spec: OpSpec) -> OpSpec:
    """Register ``spec`` in :data:`OPS`."""
    return OPS.register(spec.name, spec)


# ---------------------------------------------------------------- shape helpers
def _feature_map(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise OpError(f"{what} needs a (C, H, W) feature map, got shape {shape}; "
                      "put it before 'flatten'/'linear'")
    return shape  # type: ignore[return-value]


def _flat(shape: Shape, what: str) -> int:
    if len(shape) != 1:
        raise OpError(f"{what} needs flat features, got shape {shape}; insert 'flatten' "
                      "(or 'gap' then 'flatten') before it")
    return shape[0]


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, what: str) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise OpError(f"{what}: spatial size {size} is smaller than the window "
                      f"(kernel {k}, dilation {d}, padding {p}); use a smaller kernel or "
                      "fewer downsampling steps")
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside the input
            out -= 1
    else:
        out = span // s + 1
    return out


def _windowed(c: int, h: int, w: int, a: dict, what: str, ceil_mode=False) -> Shape:
    (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"] if a["stride"] is not None else a["kernel"])
    (ph, pw), (dh, dw) = pair(a["padding"]), pair(a.get("dilation", 1))
    if ph > kh // 2 or pw > kw // 2:
        raise OpError(f"{what}: padding {a['padding']} exceeds half the kernel {a['kernel']}")
    return (c, _window_out(h, kh, sh, ph, dh, ceil_mode, what),
            _window_out(w, kw, sw, pw, dw, ceil_mode, what))


def _unary(attrs, ins):
    return ins[0]


# ---------------------------------------------------------------- conv
def _conv_padding(a: dict):
    if a["padding"] is not None:
        return pair(a["padding"])
    (kh, kw), (dh, dw) = pair(a["kernel"]), pair(a["dilation"])
    return dh * (kh - 1) // 2, dw * (kw - 1) // 2


def _conv_shape(a, ins):
    c, h, w = _feature_map(ins[0], "conv")
    g = a["groups"]
    if c % g or a["out_channels"] % g:
        raise OpError(f"groups={g} must divide both input channels ({c}) and out_channels "
                      f"({a['out_channels']}); pick a groups value that divides both")
    (kh, kw), (sh, sw), (dh, dw) = pair(a["kernel"]), pair(a["stride"]), pair(a["dilation"])
    ph, pw = _conv_padding(a)
    return (a["out_channels"], _window_out(h, kh, sh, ph, dh, False, "conv"),
            _window_out(w, kw, sw, pw, dw, False, "conv"))


def _conv_cost(a, ins, out):
    kh, kw = pair(a["kernel"])
    per_out = ins[0][0] // a["groups"] * kh * kw
    params = a["out_channels"] * per_out + (a["out_channels"] if a["bias"] else 0)
    elems = out[0] * out[1] * out[2]
    return params, elems * per_out, elems


def _conv_torch(a, ins, inplace):
    import torch.nn as nn

    return nn.Conv2d(ins[0][0], a["out_channels"], pair(a["kernel"]), stride=pair(a["stride"]),
                     padding=_conv_padding(a), dilation=pair(a["dilation"]), groups=a["groups"],
                     bias=a["bias"])


def _conv_init(m, a):
    import torch.nn as nn

    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if m.bias is not None:
        nn.init.zeros_(m.bias)


op(OpSpec(
    "conv", "2-D convolution; grouped (groups), depthwise (groups = channels) and dilated "
    "(dilation) convs are attributes. padding defaults to dilation*(kernel-1)//2. "
    "Init: He normal with fan-out (torchvision's ResNet/MobileNet), bias zero.",
    (Attr("out_channels", "int", minimum=1), Attr("kernel", "pair", minimum=1),
     Attr("stride", "pair", 1, minimum=1), Attr("padding", "optional_pair", None, minimum=0),
     Attr("dilation", "pair", 1, minimum=1), Attr("groups", "int", 1, minimum=1),
     Attr("bias", "bool", False)),
    _conv_shape, _conv_torch, cost=_conv_cost, width_attr="out_channels", inplace_safe=True,
    init=_conv_init))


# ---------------------------------------------------------------- normalisation and linear
def _bn_cost(a, ins, out):
    return 2 * ins[0][0], 0, 0


def _bn_torch(a, ins, inplace):
    import torch.nn as nn

    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    return cls(ins[0][0], eps=a["eps"], momentum=a["momentum"])


def _bn_init(m, a):
    import torch.nn as nn

    (nn.init.zeros_ if a["zero_init"] else nn.init.ones_)(m.weight)
    nn.init.zeros_(m.bias)
    m.reset_running_stats()   # mean 0, variance 1, no batches seen


op(OpSpec("bn", "Batch normalisation (2-D on feature maps, 1-D on flat features). Init: "
          "scale 1 and shift 0, or scale 0 with zero_init (the last BN of a residual branch, "
          "torchvision's zero_init_residual, Goyal et al. 2017): the block starts as identity.",
          (Attr("eps", "float", 1e-5, minimum=0), Attr("momentum", "float", 0.1, minimum=0),
           Attr("zero_init", "bool", False, doc="the scale starts at 0", structural=False)),
          _unary, _bn_torch, cost=_bn_cost, inplace_safe=True, init=_bn_init))


def _linear_shape(a, ins):
    _flat(ins[0], "linear")
    return (a["out_features"],)


def _linear_cost(a, ins, out):
    n_in = ins[0][0]
    return n_in * a["out_features"] + (a["out_features"] if a["bias"] else 0), n_in * a["out_features"], a["out_features"]


def _linear_torch(a, ins, inplace):
    import torch.nn as nn

    return nn.Linear(ins[0][0], a["out_features"], bias=a["bias"])


op(OpSpec("linear", "Fully connected layer on flat features. Init: PyTorch's default "
          "(uniform, bound 1/sqrt(fan_in)), as torchvision's ResNet keeps it.",
          (Attr("out_features", "int", minimum=1), Attr("bias", "bool", True)),
          _linear_shape, _linear_torch, cost=_linear_cost, width_attr="out_features",
          inplace_safe=True))


def _lrn_shape(a, ins):
    _feature_map(ins[0], "lrn")
    return ins[0]


def _lrn_torch(a, ins, inplace):
    import torch.nn as nn

    return nn.LocalResponseNorm(a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])


op(OpSpec("lrn", "Local response normalisation across channels (AlexNet).",
          (Attr("size", "int", 5, minimum=1), Attr("alpha", "float", 1e-4),
           Attr("beta", "float", 0.75), Attr("k", "float", 2.0)),
          _lrn_shape, _lrn_torch))


def _dropout_torch(a, ins, inplace):
    import torch.nn as nn

    return nn.Dropout(a["p"])


op(OpSpec("dropout", "Dropout (active in training mode only).",
          (Attr("p", "float", 0.5, minimum=0, maximum=1),), _unary, _dropout_torch))


def _affine_shape(a, ins):
    c, _, _ = _feature_map(ins[0], "channel_affine")
    if not len(a["scale"]) == len(a["shift"]) == c:
        raise OpError(f"channel_affine has {len(a['scale'])} scales and {len(a['shift'])} shifts "
                      f"for an input of {c} channels; give one scale and one shift per channel "
                      "(a zoo net with torchvision's transform_input expects 3-channel RGB input)")
    return ins[0]


def _affine_torch(a, ins, inplace):
    from nas.functional import channel_affine

    return Call(channel_affine, args=([float(v) for v in a["scale"]],
                                      [float(v) for v in a["shift"]]))


op(OpSpec("channel_affine", "Per-channel x * scale + shift on the input (torchvision's "
          "GoogLeNet/Inception-v3 transform_input, which re-normalises ImageNet-normalised "
          "input to [-1, 1]). No parameters; no MACs: MACs count conv and linear layers only, "
          "as FlopCounterMode, which does not count element-wise ops.",
          (Attr("scale", "floats"), Attr("shift", "floats")), _affine_shape, _affine_torch))


# ---------------------------------------------------------------- activations
def _activation(name: str, fn: str, doc: str, inplace_capable: bool, **params):
    """Register an activation compiled to ``torch.nn.functional.<fn>`` (or ``torch.<fn>``)."""
    def build(a, ins, inplace):
        import torch
        import torch.nn.functional as F

        kwargs = {k: a[k] for k in params}
        if inplace:
            kwargs["inplace"] = True
        return Call(getattr(torch, fn) if fn in ("sigmoid", "tanh") else getattr(F, fn), kwargs=kwargs)

    attrs = tuple(Attr(k, "float", v) for k, v in params.items())
    op(OpSpec(name, doc, attrs, _unary, build, inplace_capable=inplace_capable))


_activation("relu", "relu", "ReLU.", True)
_activation("relu6", "relu6", "ReLU clipped at 6 (MobileNet v2).", True)
_activation("leaky_relu", "leaky_relu", "Leaky ReLU.", True, negative_slope=0.01)
_activation("sigmoid", "sigmoid", "Logistic sigmoid (the SE gate).", False)
_activation("hsigmoid", "hardsigmoid", "Hard sigmoid (MobileNet v3).", True)
_activation("hswish", "hardswish", "Hard swish (MobileNet v3).", True)
_activation("silu", "silu", "SiLU / swish (EfficientNet, RegNetY's SE).", True)
_activation("gelu", "gelu", "GELU.", False)
_activation("tanh", "tanh", "tanh (LeNet-5).", False)


# ---------------------------------------------------------------- pooling
def _pool_attrs(*extra: Attr) -> tuple[Attr, ...]:
    return (Attr("kernel", "pair", minimum=1), Attr("stride", "optional_pair", None, minimum=1),
            Attr("padding", "pair", 0, minimum=0), Attr("ceil_mode", "bool", False)) + extra


def _maxpool_shape(a, ins):
    c, h, w = _feature_map(ins[0], "maxpool")
    return _windowed(c, h, w, a, "maxpool", a["ceil_mode"])


def _avgpool_shape(a, ins):
    c, h, w = _feature_map(ins[0], "avgpool")
    return _windowed(c, h, w, a, "avgpool", a["ceil_mode"])


def _pool_kwargs(a):
    return dict(kernel_size=pair(a["kernel"]),
                stride=pair(a["stride"] if a["stride"] is not None else a["kernel"]),
                padding=pair(a["padding"]), ceil_mode=a["ceil_mode"])


def _maxpool_torch(a, ins, inplace):
    import torch.nn.functional as F

    return Call(F.max_pool2d, kwargs=_pool_kwargs(a))


def _avgpool_torch(a, ins, inplace):
    import torch.nn.functional as F

    return Call(F.avg_pool2d, kwargs={**_pool_kwargs(a), "count_include_pad": a["count_include_pad"]})


op(OpSpec("maxpool", "Max pooling; stride defaults to the kernel.", _pool_attrs(),
          _maxpool_shape, _maxpool_torch, inplace_safe=True))
op(OpSpec("avgpool", "Average pooling; stride defaults to the kernel.",
          _pool_attrs(Attr("count_include_pad", "bool", True)),
          _avgpool_shape, _avgpool_torch, inplace_safe=True))


def _gap_shape(a, ins):
    c, _, _ = _feature_map(ins[0], "gap")
    return (c, 1, 1)


def _gap_torch(a, ins, inplace):
    import torch.nn.functional as F

    return Call(F.adaptive_avg_pool2d, args=(1,))


op(OpSpec("gap", "Global average pooling to (C, 1, 1); follow with 'flatten' for a classifier.",
          (), _gap_shape, _gap_torch, inplace_safe=True))


def _adaptive_shape(a, ins):
    c, _, _ = _feature_map(ins[0], "adaptive_avgpool")
    return (c, *pair(a["output_size"]))


def _adaptive_torch(a, ins, inplace):
    import torch.nn.functional as F

    return Call(F.adaptive_avg_pool2d, args=(pair(a["output_size"]),))


op(OpSpec("adaptive_avgpool", "Adaptive average pooling to a fixed output size (AlexNet, VGG).",
          (Attr("output_size", "pair", minimum=1),), _adaptive_shape, _adaptive_torch,
          inplace_safe=True))


# ---------------------------------------------------------------- structure
def _identity_torch(a, ins, inplace):
    return None  # passthrough: the compiler forwards the input tensor


op(OpSpec("identity", "Skip connection: the input unchanged.", (), _unary, _identity_torch,
          passthrough=True))


def _add_shape(a, ins):
    for i, s in enumerate(ins[1:], 1):
        if s != ins[0]:
            raise OpError(f"add needs inputs of one shape, but input 0 is {ins[0]} and input {i} "
                          f"is {s}; add a projection (1x1 conv with the right stride and width)")
    return ins[0]


def _add_torch(a, ins, inplace):
    import operator

    if inplace:
        return Call("add_", method=True, chain=True)
    return Call(operator.add, chain=True)


op(OpSpec("add", "Element-wise sum of two or more inputs of one shape (residuals).", (),
          _add_shape, _add_torch, arity=(2, None), inplace_safe=True, inplace_capable=True))


def _mul_shape(a, ins):
    x, g = ins
    if len(x) != len(g) or x[0] != g[0] or (g[1:] != x[1:] and tuple(g[1:]) != (1,) * (len(g) - 1)
                                            and tuple(x[1:]) != (1,) * (len(x) - 1)):
        raise OpError(f"mul needs inputs of one shape or a (C, 1, 1) gate with the same C; got "
                      f"{x} and {g}; check the SE branch's output channels")
    return x if g[1:] == (1,) * (len(g) - 1) else g


def _mul_torch(a, ins, inplace):
    import operator

    return Call(operator.mul)


op(OpSpec("mul", "Element-wise product; a (C, 1, 1) input broadcasts (the SE gate).", (),
          _mul_shape, _mul_torch, arity=(2, 2)))


def _concat_shape(a, ins):
    for i, s in enumerate(ins):
        if len(s) != len(ins[0]) or s[1:] != ins[0][1:]:
            raise OpError(f"concat joins channels, so spatial sizes must match: input 0 is "
                          f"{ins[0]} and input {i} is {s}; align strides/padding of the branches")
    return (sum(s[0] for s in ins), *ins[0][1:])


def _concat_torch(a, ins, inplace):
    import torch

    return Call(torch.cat, args=(1,), pack=True)


op(OpSpec("concat", "Channel concatenation, in input order (inception, dense blocks).", (),
          _concat_shape, _concat_torch, arity=(1, None), inplace_safe=True))


def _shuffle_shape(a, ins):
    c, _, _ = _feature_map(ins[0], "channel_shuffle")
    if c % a["groups"]:
        raise OpError(f"channel_shuffle groups={a['groups']} must divide the channels ({c})")
    return ins[0]


def _shuffle_torch(a, ins, inplace):
    return Call(channel_shuffle, args=(a["groups"],))


def channel_shuffle(x, groups: int):
    """ShuffleNet's channel shuffle: (g, C/g) -> (C/g, g) channel interleave."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


op(OpSpec("channel_shuffle", "ShuffleNet channel shuffle.", (Attr("groups", "int", minimum=1),),
          _shuffle_shape, _shuffle_torch))


def _split_shape(a, ins):
    c, h, w = _feature_map(ins[0], "channel_split")
    if c % a["parts"] or a["index"] >= a["parts"]:
        raise OpError(f"channel_split takes part index {a['index']} of {a['parts']} equal parts, "
                      f"so parts must divide the channels ({c}) and index be < parts")
    return (c // a["parts"], h, w)


def _split_torch(a, ins, inplace):
    part = ins[0][0] // a["parts"]
    return Call("narrow", args=(1, a["index"] * part, part), method=True)


op(OpSpec("channel_split", "One of `parts` equal channel slices (ShuffleNet v2).",
          (Attr("parts", "int", 2, minimum=1), Attr("index", "int", 0, minimum=0)),
          _split_shape, _split_torch))


def _flatten_shape(a, ins):
    return (math.prod(ins[0]),)


def _flatten_torch(a, ins, inplace):
    import torch

    return Call(torch.flatten, args=(1,))


op(OpSpec("flatten", "Flatten (C, H, W) to (C*H*W,).", (), _flatten_shape, _flatten_torch))


def _input_torch(a, ins, inplace):
    raise OpError("the input node is compiled as the module's argument")


def _input_shape(a, ins):
    return tuple(a["shape"])


op(OpSpec("input", "The genotype's input: shape = [C, H, W] of one sample.",
          (Attr("shape", "shape"),), _input_shape, _input_torch, arity=(0, 0)))
