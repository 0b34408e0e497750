"""SearchSpace: a declarative space loaded from YAML, with budget-aware sampling for every backend.

One space drives an Optuna trial (:meth:`SearchSpace.suggest`, which records the budget
through ``trial.set_constraint`` so constrained samplers see it) and plain random sampling
(:meth:`SearchSpace.sample`, feasible by construction under a budget).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from nas.cost import Cost
from nas.counting import count_call
from nas.genotype import Genotype
from nas.spaces.params import Param, SpaceError



@dataclass(frozen=True)
class Seed:
    """A classic net that is a point of the space, with its target-spec cost and whether it fits."""

    name: str
    params: dict
    cost: Cost
    fits: bool
    zoo: str | None = None      # the zoo entry this point reproduces exactly, if any


def violations(cost: Cost, budget_macs: int | None, params_budget: int | None) -> dict[str, float]:
    """Relative budget violations, Optuna's convention: <= 0 feasible, > 0 by how much over."""
    out = {}
    if budget_macs:
        out["macs"] = cost.macs / budget_macs - 1.0
    if params_budget:
        out["params"] = cost.params / params_budget - 1.0
    return out


def fits(cost: Cost, budget_macs: int | None, params_budget: int | None = None) -> bool:
    """Whether ``cost`` is within both budgets (None: no budget)."""
    return (not budget_macs or cost.macs <= budget_macs) and (not params_budget or cost.params <= params_budget)


class SearchSpace:
    """A search space: parameters, a registered builder, a target spec and classic seed points."""

    def __init__(self, name: str, path: Path | None, builder: str, params: list[Param], *,
                 input_shape=(3, 224, 224), num_classes: int = 1000, fixed: dict | None = None,
                 stages: list[list[str]] | None = None, shrink: list[str] | None = None,
                 seed_points: list[dict] | None = None,
                 description: str = ""):
        from nas.spaces.builders import BUILDERS

        self.name = name
        self.path = path
        self.builder = builder
        self.params = list(params)
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.fixed = dict(fixed or {})
        self.description = description
        self._fn: Callable[..., Genotype] = BUILDERS.get(builder)
        self._by_name = {p.name: p for p in self.params}
        self.stages = list(stages or [])
        self.shrink = list(shrink or [])
        self._seed_points = list(seed_points or [])
        self._cost = lru_cache(maxsize=8192)(self._cost_uncached)

    # ------------------------------------------------------------ building
    def param(self, name: str) -> Param:
        """The parameter called ``name``."""
        return self._by_name[name]

    def active(self, params: dict) -> dict:
        """``params`` restricted to the parameters active under its own values (declared order)."""
        out: dict = {}
        for p in self.params:
            if p.active(out) and p.name in params:
                out[p.name] = params[p.name]
        return out

    def check(self, params: dict, where: str = "params") -> dict:
        """The active part of ``params`` after checking that it is a point of the space."""
        unknown = sorted(set(params) - set(self._by_name))
        if unknown:
            raise SpaceError(f"{where}.{unknown[0]}: not a parameter of space {self.name!r}; "
                             f"known: {', '.join(self._by_name)}")
        out: dict = {}
        for p in self.params:
            if not p.active(out):
                continue
            if p.name not in params:
                raise SpaceError(f"{where}.{p.name}: missing; give a value ({p.describe()})")
            if not p.contains(params[p.name]):
                raise SpaceError(f"{where}.{p.name}: {params[p.name]!r} is outside the space "
                                 f"({p.describe()})")
            out[p.name] = params[p.name]
        return out

    def build(self, params: dict) -> Genotype:
        """The genotype of the point ``params`` at the target spec (deterministic)."""
        active = self.active(params)
        return self._fn(**self.fixed, **active, input_shape=self.input_shape,
                        num_classes=self.num_classes)

    def cost(self, params: dict) -> Cost:
        """The target-spec cost of the point ``params`` (cached), equal to
        ``count(self.build(params))`` but counted without building the genotype
        (:mod:`nas.counting`)."""
        return self._cost(_key(self.active(params)))

    def _cost_uncached(self, key: tuple) -> Cost:
        return count_call(self._fn, **self.fixed, **dict(key), input_shape=self.input_shape,
                          num_classes=self.num_classes)

    # ------------------------------------------------------------ sampling
    def draw(self, rng: random.Random, names=None, given: dict | None = None) -> dict:
        """Uniform values for the active parameters in ``names`` (all by default), after ``given``."""
        params = dict(given or {})
        for p in self.params:
            if (names is None or p.name in names) and p.name not in params and p.active(params):
                params[p.name] = p.draw(rng)
        return params

    def complete_cheapest(self, params: dict) -> dict:
        """``params`` completed with every missing active parameter at its cheapest value."""
        out = dict(params)
        for p in self.params:
            if p.name not in out and p.active(out):
                out[p.name] = p.default_cheapest()
        return self.active(out)

    def sample(self, rng: random.Random, budget_macs: int | None = None,
               params_budget: int | None = None, max_restarts: int = 200, tries: int = 25) -> dict:
        """A random point of the space; under a budget every returned point fits.

        Feasible by construction (``sampling`` in the YAML): the ``stages`` (e.g. block and
        depths, then ratios) are drawn in order, a stage's draw kept when the configuration
        completed with the cheapest values of the later parameters fits (each ``cheapest``
        value must cost no more than the other values, other things equal); the remaining
        parameters are drawn uniformly and, if the point is over budget, the ``shrink``
        parameters (widths) are scaled down together by the largest factor that fits. So
        depths keep close to their unconstrained distribution and widths absorb the budget.
        """
        if not budget_macs and not params_budget:
            return self.draw(rng)

        def ok(params: dict) -> bool:
            return fits(self.cost(params), budget_macs, params_budget)

        if not ok(self.complete_cheapest({})):
            raise SpaceError(f"space {self.name!r}: even its cheapest point costs "
                             f"{self.cost(self.complete_cheapest({}))}, over the budget; raise the budget")
        for _ in range(max_restarts):
            params: dict | None = self.active(self.draw(rng))
            # at its narrowest this draw fits: every stage check would pass, skip them
            if self.stages and not ok(self._scaled(params, 0.0)):
                params = self._draw_stages(rng, params, ok, tries)
                if params is None:
                    continue
                params = self.active(self.draw(rng, None, params))
            if ok(params):
                return params
            if self.shrink and ok(self._scaled(params, 0.0)):
                return self._shrink_to_fit(params, ok, budget_macs, params_budget)
        raise SpaceError(f"space {self.name!r}: found no configuration within the budget after "
                         f"{max_restarts} restarts (cheapest point: {self.cost(self.complete_cheapest({}))}); "
                         "raise the budget")

    def _draw_stages(self, rng: random.Random, first: dict, ok, tries: int) -> dict | None:
        """The stage parameters drawn stage by stage, each draw kept when its cheapest
        completion fits (None: a stage found none). ``first`` is the first try while no
        earlier stage had to be redrawn."""
        params: dict = {}
        for stage in self.stages:
            for attempt in range(tries):
                if first is not None and attempt == 0:
                    trial = self.active({**params, **{k: first[k] for k in stage if k in first}})
                    trial = self.draw(rng, stage, trial)   # stage parameters first left inactive
                else:
                    first = None
                    trial = self.draw(rng, stage, params)
                if ok(self.complete_cheapest(trial)):
                    params = trial
                    break
            else:
                return None
        return params

    def _scaled(self, params: dict, alpha: float) -> dict:
        """``params`` with every active shrink parameter snapped down to ``alpha`` times its value
        (at least its minimum)."""
        out = dict(params)
        for name in self.shrink:
            if name in out:
                p, target = self.param(name), alpha * out[name]
                if p.values() is None:   # continuous
                    out[name] = max(p.low, target)
                else:
                    vals = sorted(p.values())
                    out[name] = max([v for v in vals if v <= target], default=vals[0])
        return out

    def _shrink_to_fit(self, params: dict, ok, budget_macs, params_budget, steps: int = 5) -> dict:
        """The largest scaling of the shrink parameters found to fit: cost grows roughly with
        width squared, so each step guesses ``alpha * sqrt(budget / cost)`` and falls back
        to bisection when the guess leaves the bracket."""
        def over(alpha: float) -> float:
            cost = self.cost(self._scaled(params, alpha))
            return max(cost.macs / budget_macs if budget_macs else 0,
                       cost.params / params_budget if params_budget else 0)

        lo, hi = 0.0, 1.0
        alpha = min(1.0, 0.99 / over(1.0) ** 0.5)
        for _ in range(steps):
            ratio = over(alpha)
            if ratio <= 1 and ok(self._scaled(params, alpha)):
                lo = alpha
            else:
                hi = alpha
            guess = alpha * 0.995 / ratio ** 0.5
            alpha = guess if lo < guess < hi and abs(guess - alpha) > 1e-3 else (lo + hi) / 2
            if hi - lo < 0.02:
                break
        return self._scaled(params, lo)

    def suggest(self, trial, budget_macs: int | None = None, params_budget: int | None = None) -> dict:
        """Sample every active parameter through ``trial.suggest_*`` and record the budget
        violation with ``trial.set_constraint`` (keys 'macs', 'params'; <= 0 is feasible) so
        constrained samplers (TPE, NSGA-II, GP) see it.

        The caller must not train an infeasible point; it should tell the study a value
        anyway (e.g. the worst one) so the sampler learns the constraint, not FAIL/PRUNE it.
        """
        params: dict = {}
        for p in self.params:
            if p.active(params):
                params[p.name] = p.suggest(trial)
        cost = self.cost(params)
        for key, value in violations(cost, budget_macs, params_budget).items():
            trial.set_constraint(key, value)
        return params

    # ------------------------------------------------------------ description
    def size(self) -> float:
        """The number of distinct points (conditional parameters counted only where active);
        ``math.inf`` when a parameter is continuous."""
        controllers = {k for p in self.params for k in p.when}

        def rec(i: int, assigned: dict) -> float:
            if i == len(self.params):
                return 1
            p = self.params[i]
            if not p.active(assigned):
                return rec(i + 1, assigned)
            if p.name in controllers:
                return sum(rec(i + 1, {**assigned, p.name: v}) for v in p.values())
            return p.size() * rec(i + 1, assigned)
        return rec(0, {})

    def seeds(self, budget_macs: int | None = None, params_budget: int | None = None) -> list[Seed]:
        """The classic nets that are points of this space, in file order, with their cost and
        whether they fit the budget."""
        out = []
        for s in self._seed_points:
            cost = self.cost(s["params"])
            out.append(Seed(s["name"], dict(s["params"]), cost, fits(cost, budget_macs, params_budget),
                            s.get("zoo")))
        return out

    def to_dict(self) -> dict:
        """The space as plain data (the YAML's content)."""
        return {"name": self.name, "description": self.description,
                "target": {"input_shape": list(self.input_shape), "num_classes": self.num_classes},
                "builder": self.builder, "fixed": dict(self.fixed),
                "parameters": {p.name: p.to_dict() for p in self.params},
                "sampling": {"stages": [list(s) for s in self.stages], "shrink": list(self.shrink)},
                "seeds": [dict(s) for s in self._seed_points]}

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self.params)} parameters, builder {self.builder!r})"


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def space_from_dict(data: Any, path: Path | None = None) -> SearchSpace:
    """A checked :class:`SearchSpace` from plain data (see :func:`nas.spaces.loader.space_from_dict`)."""
    from nas.spaces.loader import space_from_dict as load

    return load(data, path)
