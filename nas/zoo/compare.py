"""Our counts of a zoo entry against its published figures.

A published figure is matched at the precision it was printed with (its trailing zeros:
25,600,000 is "25.6M"). Entries tagged ``macs_include_bias`` publish FLOPs that add one per
bias element (pycls's convention): we compare our MACs plus those bias adds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nas.cost import Cost, count
from nas.genotype import Genotype
from nas.zoo.registry import ZOO, ZooEntry

BIAS_TAG = "macs_include_bias"
TOLERANCE = 0.02   # paper figures: within 2%, or the entry's note explains the gap


def precision(published: int) -> int:
    """The rounding step a published figure was printed with (10**trailing zeros)."""
    step = 1
    while published % (step * 10) == 0 and step * 10 <= published:
        step *= 10
    return step


def matches(ours: int, published: int) -> bool:
    """Whether ``ours`` rounds to ``published`` at the precision it was printed with."""
    step = precision(published)
    return math.floor(ours / step + 0.5) * step == published


def bias_adds(genotype: Genotype) -> int:
    """Output elements of the layers that add a bias (what pycls counts as extra FLOPs)."""
    shapes = genotype.infer_shapes()
    main = genotype.main_path()
    return sum(math.prod(shapes[n]) for n in genotype.graph
               if n in main and genotype.resolved_attrs(n).get("bias") is True)


@dataclass(frozen=True)
class Figure:
    """One figure (params or MACs): ours (in the published convention), published, status."""

    ours: int
    published: int | None

    @property
    def diff(self) -> float | None:
        """Relative difference ours/published - 1, or None without a published figure."""
        return None if not self.published else self.ours / self.published - 1

    @property
    def status(self) -> str:
        """'-' (nothing published), 'match' (at the printed precision), 'within 2%' or
        'differs'."""
        if self.published is None:
            return "-"
        if matches(self.ours, self.published):
            return "match"
        return "within 2%" if abs(self.diff) <= TOLERANCE else "differs"


@dataclass(frozen=True)
class Comparison:
    """An entry, its genotype's cost and both figures against the published ones."""

    entry: ZooEntry
    cost: Cost
    params: Figure
    macs: Figure

    @property
    def status(self) -> str:
        """'exact' (torchvision's figures, or figures given to the integer, matched), 'match'
        (at the printed precision), 'within 2%', 'differs' or 'unpublished'."""
        figures = [f for f in (self.params, self.macs) if f.published is not None]
        if not figures:
            return "unpublished"
        worst = max(("match", "within 2%", "differs").index(f.status) for f in figures)
        status = ("match", "within 2%", "differs")[worst]
        to_integer = all(f.ours == f.published for f in figures)
        return "exact" if status == "match" and (self.entry.exact or to_integer) else status

    def difference(self) -> str:
        """A short text: the signed gaps of 0.05% or more (torchvision's figures: only those
        that miss their printed digits), '=' when there are none."""
        if self.status == "unpublished":
            return "-"
        parts = [f"{label} {f.diff:+.1%}" for label, f in (("params", self.params), ("MACs", self.macs))
                 if f.published is not None and abs(f.diff) >= 0.0005
                 and not (self.entry.exact and f.status == "match")]
        return ", ".join(parts) or "="


def compare(name: str, genotype: Genotype | None = None) -> Comparison:
    """Count zoo entry ``name`` and compare it with its published figures."""
    e = ZOO.get(name)
    g = genotype if genotype is not None else e.builder()
    cost = count(g)
    macs = cost.macs + (bias_adds(g) if BIAS_TAG in e.tags else 0)
    return Comparison(e, cost, Figure(cost.params, e.published_params),
                      Figure(macs, e.published_macs))
