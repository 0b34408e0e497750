"""Cost of a genotype (params, MACs, activations) from the op registry, and FLOP budgets.

Conventions (README, "Units"): MACs are multiply-accumulates of conv and linear layers, the unit
papers call "FLOPs"; ``flops = 2 * macs`` is defined here and nowhere else. Params are
learnable parameters (BN affine included, running statistics excluded).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from nas.errors import BudgetError
from nas.genotype import Genotype

FLOPS_PER_MAC = 2


@dataclass(frozen=True)
class Cost:
    """Per-sample cost at a genotype's input spec (inference: auxiliary heads excluded from
    MACs and activations, included in params)."""

    params: int
    macs: int
    activations: int

    @property
    def flops(self) -> int:
        """Floating-point operations, 2 per MAC (FlopCounterMode's unit)."""
        return FLOPS_PER_MAC * self.macs

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)

    def __str__(self) -> str:
        return (f"{human(self.params)} params, {human(self.macs)}MACs, "
                f"{human(self.activations)} activations")


def count(genotype: Genotype) -> Cost:
    """Count params, MACs and activations of ``genotype`` exactly, without torch."""
    resolved, shapes = genotype.analyse()
    main = genotype.main_path() if genotype.aux_outputs else None
    params = macs = acts = 0
    for n, attrs in resolved.items():
        p, m, a = genotype.spec(n).cost(attrs, [shapes[i] for i in genotype.inputs(n)], shapes[n])
        params += p
        if main is None or n in main:
            macs += m
            acts += a
    return Cost(params, macs, acts)


def human(n: float, digits: int = 3) -> str:
    """25557032 -> '25.557M'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return f"{n:g}"


_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BUDGET = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*(flops?|macs?)?\s*$", re.I)
BUDGET_FORMS = "'2GFLOPs', '2 GFLOPs', '600MFLOPs', '600M', '2e9', '1.5GMACs' (units K, M, G, T)"


def parse_budget(text: str | int | float) -> int:
    """A MAC budget from text: '2GFLOPs' = '2 GFLOPs' = '2e9' = 2,000,000,000 MACs.

    "FLOPs" here means MACs, as in the papers (README, "Units").
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _BUDGET.match(str(text))
        if not m:
            raise BudgetError(f"cannot parse budget {text!r}; use a positive number with an "
                              f"optional unit, e.g. {BUDGET_FORMS}")
        value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not value > 0 or value == float("inf"):
        raise BudgetError(f"budget must be positive, got {text!r}; e.g. {BUDGET_FORMS}")
    return int(round(value))
