"""The search's trial pipeline: one driver, several executors.

A :class:`SearchJob` says what to search (space, budgets, objectives), how to evaluate an
architecture (an :data:`Evaluator`), where results go (a :class:`nas.store.TrialStore`) and
when to stop. :class:`nas.strategies.driver.Driver` owns every trial from proposal to
record: it asks the optimiser (:mod:`nas.strategies.optuna_backend`), costs the point,
checks the budget, claims the trial in the store (limit, queue and repeats, atomically),
records the result and tells the optimiser. Executors only evaluate genotypes: in this
process or a local process pool (:mod:`nas.strategies.local`), or as Ray Tune trials
(:mod:`nas.strategies.ray_backend`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nas.genotype import Genotype
    from nas.store import TrialStore

#: What each objective optimises: "accuracy" stands for the quality metric (accuracy, val_loss
#: or a zero-cost proxy score, in its own direction: :mod:`nas.quality`), costs down.
OBJECTIVES = {"accuracy": "maximize", "macs": "minimize", "params": "minimize",
              "latency": "minimize"}


class Evaluator(Protocol):
    """Scores one architecture.

    Called as ``evaluator(genotype, on_epoch)`` with the target-spec genotype; ``on_epoch(epoch,
    val_accuracy)`` may be called after each training epoch (it may raise to stop early).
    Returns a dict with any of: ``accuracy``, ``val_loss`` (mean validation cross-entropy),
    ``train_loss`` (the last epoch's mean training loss),
    ``proxy_score``, ``latency_ms``, ``proxy_params``, ``proxy_macs``, ``epochs`` (list of
    {"epoch", "val_accuracy", "val_loss", "train_loss", "seconds"}).
    """

    def __call__(self, genotype: "Genotype", on_epoch: Callable[[int, float], None]) -> dict: ...


@dataclass
class SearchJob:
    """Everything the driver needs to run a search (plain settings plus live objects)."""

    study: str
    space: Any                      # nas.spaces.SearchSpace
    budget_macs: int | None
    params_budget: int | None
    objectives: list[str]
    evaluator: Evaluator
    store: "TrialStore"
    trials: int | None = None       # trained trials the study should reach
    timeout: float | None = None    # seconds for this run
    sampler: str = "tpe"
    seed: int = 0
    worker: str = ""
    metric: str = "accuracy"        # the quality metric (accuracy, val_loss or a proxy name)
    prune: bool = True              # median pruning on per-epoch accuracy (one objective)
    progress: Callable[[dict], None] | None = None

    def directions(self) -> list[str]:
        """Optuna directions of the objectives."""
        from nas import quality

        return [quality.metric(self.metric).direction if o == "accuracy" else OBJECTIVES[o]
                for o in self.objectives]

    def metric_names(self) -> list[str]:
        """The objectives' names as Optuna shows them (the quality metric by its name)."""
        return [self.metric if o == "accuracy" else o for o in self.objectives]


@dataclass
class RunSummary:
    """What one run did (``started``: trials recorded by this run, of every kind)."""

    started: int = 0
    complete: int = 0
    failed: int = 0
    pruned: int = 0
    infeasible: int = 0
    repeats: int = 0
    interrupted: bool = False
    stop_reason: str = ""


class TrialStopped(Exception):
    """Raised from an ``on_epoch`` hook to stop a trial early (pruning)."""


def error_text(e: BaseException) -> str:
    """``Type: message`` and the last frames of ``e``'s traceback, for the stored error."""
    import traceback

    where = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3)).strip()
    return f"{type(e).__name__}: {e}\n{where}"
