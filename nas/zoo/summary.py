"""Stage and layer summaries of a genotype: cost and receptive field along the network.

A stage is the set of main-path nodes whose outputs share one spatial resolution (in order
of first appearance, so an inception module's strided and unstrided branches fall into
their own resolutions); flat outputs (after pooling and flattening) form the head.
"""
from __future__ import annotations

from dataclasses import dataclass

from nas.genotype import Genotype
from nas.receptive import receptive_field


@dataclass(frozen=True)
class Row:
    """One line of a summary: a stage or a layer."""

    name: str
    detail: str
    shape: tuple[int, ...]
    params: int
    macs: int
    rf: tuple[int, int] | None
    jump: tuple[int, int] | None


def node_costs(genotype: Genotype) -> dict[str, tuple[int, int]]:
    """(params, MACs) of every node, from the op registry's cost rules."""
    shapes = genotype.infer_shapes()
    out = {}
    for n in genotype.graph:
        spec = genotype.spec(n)
        p, m, _ = spec.cost(genotype.resolved_attrs(n), [shapes[i] for i in genotype.inputs(n)],
                            shapes[n])
        out[n] = (p, m)
    return out


def _scope(node: str, parts: int = 2) -> str:
    return ".".join(node.split(".")[:parts])


def _order(genotype: Genotype) -> list[str]:
    main = genotype.main_path()
    return [n for n in genotype.topological_order() if n in main and n != genotype.input]


def stages(genotype: Genotype) -> list[Row]:
    """Main-path nodes grouped by output resolution, with their cost, widest output
    (channels x resolution) and the receptive field at the group's last node."""
    shapes, costs, fields = genotype.infer_shapes(), node_costs(genotype), receptive_field(genotype)
    groups: dict[tuple, list[str]] = {}
    for n in _order(genotype):
        groups.setdefault(shapes[n][1:] if len(shapes[n]) == 3 else (), []).append(n)
    rows = []
    for nodes in groups.values():
        first, last = _scope(nodes[0]), _scope(nodes[-1])
        spatial = len(shapes[nodes[-1]]) == 3
        rows.append(Row(first if first == last else f"{first} .. {last}",
                        f"{len(nodes)} nodes",
                        (max(shapes[n][0] for n in nodes), *shapes[nodes[-1]][1:]),
                        sum(costs[n][0] for n in nodes), sum(costs[n][1] for n in nodes),
                        fields[nodes[-1]].size if spatial else None,
                        fields[nodes[-1]].jump if spatial else None))
    return rows


def layers(genotype: Genotype) -> list[Row]:
    """Every node with parameters or a window (convs, linears, pools), in execution order."""
    shapes, costs, fields = genotype.infer_shapes(), node_costs(genotype), receptive_field(genotype)
    rows = []
    for n in _order(genotype):
        attrs = genotype.resolved_attrs(n)
        if costs[n][0] == 0 and "kernel" not in attrs:
            continue
        detail = genotype.op(n) + "".join(
            f" {k}={v}" for k, v in genotype.attrs(n).items() if k in ("kernel", "stride", "groups"))
        groups = attrs.get("groups")
        if isinstance(groups, int) and groups > 1 and genotype.inputs(n):
            # groups = input channels: one filter per channel; fewer: grouped (ResNeXt)
            detail += " (depthwise)" if groups >= shapes[genotype.inputs(n)[0]][0] else " (grouped)"
        spatial = len(shapes[n]) == 3
        rows.append(Row(n, detail, shapes[n], *costs[n],
                        fields[n].size if spatial else None, fields[n].jump if spatial else None))
    return rows
