"""FeasibleRandomSampler: Optuna random search whose every trial fits the budget.

It hands Optuna a whole configuration drawn by :meth:`SearchSpace.sample` (feasible by
construction) as the trial's relative parameters, so random search through Optuna trains
only points within the budget, and enqueued seeds still take precedence.
"""
from __future__ import annotations

import random
from typing import Any

from optuna.samplers import BaseSampler, RandomSampler


class FeasibleRandomSampler(BaseSampler):
    """Random sampling of a :class:`~nas.spaces.SearchSpace` under MAC/params budgets."""

    def __init__(self, space, budget_macs: int | None = None, params_budget: int | None = None,
                 seed: int | None = None):
        self.space = space
        self.budget_macs = budget_macs
        self.params_budget = params_budget
        self._rng = random.Random(seed)
        self._fallback = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        """Re-seed from system entropy (Optuna calls this in forked workers)."""
        self._rng = random.Random()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict:
        """Every parameter of the space."""
        return self.space.optuna_distributions()

    def sample_relative(self, study, trial, search_space: dict) -> dict[str, Any]:
        """A feasible configuration of the space (its active parameters)."""
        if not search_space:
            return {}
        params = self.space.sample(self._rng, self.budget_macs, self.params_budget)
        return {k: v for k, v in params.items() if k in search_space}

    def sample_independent(self, study, trial, param_name: str, param_distribution) -> Any:
        """Parameters outside the space (none when used with :meth:`SearchSpace.suggest`)."""
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)
