"""Receptive field of every node of a genotype, in input pixels.

Read generically from the op registry's attributes: an op with a ``kernel`` attribute is a
sliding window (its ``stride``, default the kernel, and ``dilation``, default 1, are read
too); an op without one that still changes the spatial size (global or adaptive pooling,
flatten) is treated as the window that maps its input size onto its output size. Every other
op keeps the field of its widest input. Three stacked 3x3 convs therefore see 7x7, and a
stride-2 layer doubles the growth of every layer after it.
"""
from __future__ import annotations

from dataclasses import dataclass

from nas.genotype import Genotype
from nas.ops import pair


@dataclass(frozen=True)
class Field:
    """What one output position of a node sees: ``size`` (h, w) input pixels, outputs
    ``jump`` (h, w) input pixels apart."""

    size: tuple[int, int]
    jump: tuple[int, int]

    def to_dict(self) -> dict:
        """Plain data."""
        return {"size": list(self.size), "jump": list(self.jump)}


def _grow(field: Field, kernel, stride, dilation) -> Field:
    size = tuple(r + (k - 1) * d * j for r, k, d, j in
                 zip(field.size, pair(kernel), pair(dilation), field.jump))
    jump = tuple(j * s for j, s in zip(field.jump, pair(stride)))
    return Field(size, jump)  # type: ignore[arg-type]


def _implicit_window(field: Field, before, after) -> Field:
    """The window an op without a kernel applies when it maps ``before`` onto ``after``."""
    h, w = before[1:]
    oh, ow = after[1:] if len(after) == 3 else (1, 1)  # flattening sees the whole map
    if (oh, ow) == (h, w):
        return field
    stride = (max(1, h // oh), max(1, w // ow))
    kernel = (h - (oh - 1) * stride[0], w - (ow - 1) * stride[1])
    return _grow(field, kernel, stride, 1)


def receptive_field(genotype: Genotype) -> dict[str, Field]:
    """Every node's receptive field (size and jump, per axis) in input pixels."""
    shapes = genotype.infer_shapes()
    fields: dict[str, Field] = {}
    for n in genotype.topological_order():
        ins = genotype.inputs(n)
        if not ins:
            fields[n] = Field((1, 1), (1, 1))
            continue
        field = Field(tuple(max(fields[i].size[a] for i in ins) for a in (0, 1)),  # type: ignore[arg-type]
                      tuple(max(fields[i].jump[a] for i in ins) for a in (0, 1)))  # type: ignore[arg-type]
        attrs = genotype.resolved_attrs(n)
        before = shapes[ins[0]]
        if "kernel" in attrs:
            stride = attrs.get("stride") or attrs["kernel"]
            field = _grow(field, attrs["kernel"], stride, attrs.get("dilation", 1))
        elif len(before) == 3:
            field = _implicit_window(field, before, shapes[n])
        fields[n] = field
    return fields
