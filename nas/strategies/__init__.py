"""Search strategies behind one small interface (Optuna here; Ray Tune can plug in the same way).

A :class:`SearchJob` says what to search (space, budgets, objectives), how to evaluate an
architecture (an :data:`Evaluator`), where results go (a :class:`nas.store.TrialStore`) and
when to stop. A :class:`Strategy` decides which parameters to try next; running one trial
(build, count, check the budget, evaluate, store) is shared by every strategy in
:mod:`nas.strategies.runner`.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from nas.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nas.genotype import Genotype
    from nas.store import TrialStore

#: What each objective optimises: accuracy (or a zero-cost proxy score) up, costs down.
OBJECTIVES = {"accuracy": "maximize", "macs": "minimize", "params": "minimize",
              "latency": "minimize"}


class Evaluator(Protocol):
    """Scores one architecture.

    Called as ``evaluator(genotype, on_epoch)`` with the target-spec genotype; ``on_epoch(epoch,
    val_accuracy)`` may be called after each training epoch (it may raise to stop early).
    Returns a dict with any of: ``accuracy``, ``val_loss`` (mean validation cross-entropy),
    ``proxy_score``, ``latency_ms``, ``proxy_params``, ``proxy_macs``, ``epochs`` (list of
    {"epoch", "val_accuracy", "val_loss", "train_loss", "seconds"}).
    """

    def __call__(self, genotype: "Genotype", on_epoch: Callable[[int, float], None]) -> dict: ...


@dataclass
class SearchJob:
    """Everything a strategy needs to run a search (plain settings plus live objects)."""

    study: str
    space: Any                      # nas.spaces.SearchSpace
    budget_macs: int | None
    params_budget: int | None
    objectives: list[str]
    evaluator: Evaluator
    store: "TrialStore"
    trials: int | None = None       # evaluated trials the study should reach
    timeout: float | None = None    # seconds for this run
    sampler: str = "tpe"
    seed: int = 0
    use_seeds: bool = True
    worker: str = ""
    metric: str = "accuracy"        # name of the quality value (a proxy name with --proxy)
    progress: Callable[[dict], None] | None = None
    options: dict = field(default_factory=dict)


@dataclass
class RunSummary:
    """What one run of a strategy did."""

    started: int = 0
    complete: int = 0
    failed: int = 0
    pruned: int = 0
    infeasible: int = 0
    interrupted: bool = False
    stop_reason: str = ""


class Strategy(ABC):
    """Proposes parameters and learns from results; subclasses wrap one optimisation library."""

    name: str = ""

    @abstractmethod
    def prepare(self, job: SearchJob) -> dict:
        """Create or resume the strategy's state for ``job`` (once per search, before workers
        start): recover trials left running by a killed run, enqueue seed architectures.
        Returns plain data describing what was done (e.g. {"recovered": 2, "seeds": 3})."""

    @abstractmethod
    def run(self, job: SearchJob) -> RunSummary:
        """Run trials in this process until the job's trial limit or timeout is reached."""


STRATEGIES: Registry[str] = Registry("search strategy")
STRATEGIES.register("optuna", "nas.strategies.optuna_backend:OptunaStrategy")
STRATEGIES.register("ray", "nas.strategies.ray_backend:RayStrategy")


def get_strategy(name: str, **options: Any) -> Strategy:
    """An instance of the strategy registered under ``name`` (imported on demand)."""
    module, _, cls = STRATEGIES.get(name).partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
