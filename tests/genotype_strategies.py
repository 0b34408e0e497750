"""Hypothesis strategies: random valid genotypes built through the public builder."""
from __future__ import annotations

from hypothesis import strategies as st

from nas.builder import GraphBuilder
from nas.genotype import Genotype


@st.composite
def random_genotypes(draw, max_ops: int = 10) -> Genotype:
    """A random valid genotype over the op vocabulary, small enough to compile quickly."""
    c = draw(st.sampled_from([1, 2, 3, 4]))
    hw = draw(st.integers(6, 12))
    b = GraphBuilder((c, hw, hw), "random")
    maps = [b.input]  # feature-map nodes available as inputs
    for i in range(draw(st.integers(1, max_ops))):
        x = draw(st.sampled_from(maps))
        xc, xh, _ = b.shape(x)
        kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "pool", "add", "concat", "mul",
                                     "shuffle", "split", "identity", "dropout", "lrn"]))
        name = f"n{i}"
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2, xc) if xc % g == 0]))
            out = groups * draw(st.integers(1, 4))
            k = draw(st.sampled_from([1, 3, 5] if xh >= 5 else [1, 3]))
            stride = draw(st.sampled_from([1, 2]))
            dilation = draw(st.sampled_from([1, 2])) if k == 3 and xh >= 5 else 1
            x = b.node(name, "conv", [x], out_channels=out, kernel=k, stride=stride,
                       groups=groups, dilation=dilation, bias=draw(st.booleans()))
        elif kind == "bn":
            x = b.node(name, "bn", [x])
        elif kind == "act":
            x = b.node(name, draw(st.sampled_from(["relu", "relu6", "sigmoid", "hswish", "silu",
                                                   "tanh", "gelu", "leaky_relu", "hsigmoid"])), [x])
        elif kind == "pool":
            op = draw(st.sampled_from(["maxpool", "avgpool"]))
            k = draw(st.sampled_from([2, 3]))
            if xh < k:
                continue
            x = b.node(name, op, [x], kernel=k, stride=draw(st.sampled_from([1, 2])),
                       padding=draw(st.sampled_from([0, 1])), ceil_mode=draw(st.booleans()))
        elif kind == "add":
            same = [m for m in maps if b.shape(m) == b.shape(x)]
            x = b.node(name, "add", [x, draw(st.sampled_from(same))])
        elif kind == "concat":
            same = [m for m in maps if b.shape(m)[1:] == b.shape(x)[1:]]
            x = b.node(name, "concat", [x, draw(st.sampled_from(same))])
        elif kind == "mul":
            gate = b.node(name + "_gate", "sigmoid", [b.node(name + "_gap", "gap", [x])])
            x = b.node(name, "mul", [x, gate])
        elif kind == "shuffle" and xc % 2 == 0:
            x = b.node(name, "channel_shuffle", [x], groups=2)
        elif kind == "split" and xc % 2 == 0:
            x = b.node(name, "channel_split", [x], parts=2, index=draw(st.integers(0, 1)))
        elif kind == "identity":
            x = b.node(name, "identity", [x])
        elif kind == "dropout":
            x = b.node(name, "dropout", [x], p=0.1)
        elif kind == "lrn":
            x = b.node(name, "lrn", [x], size=3)
        else:
            continue
        maps.append(x)
    used = {i for n in b.graph for i in b.graph.nodes[n]["inputs"]}
    leaves = [m for m in maps if m not in used and m != b.input] or [maps[-1]]
    if leaves == [b.input]:
        leaves = [b.node("stem", "conv", [b.input], out_channels=2, kernel=1)]
    flat = [b.node(f"{m}_flat", "flatten", [b.node(f"{m}_gap_head", "gap", [m])]) for m in leaves]
    y = flat[0] if len(flat) == 1 else b.node("head_cat", "concat", flat)
    y = b.node("fc", "linear", [y], out_features=draw(st.integers(1, 5)),
               bias=draw(st.booleans()))
    return b.build(y)
