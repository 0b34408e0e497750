"""One trial, the same for every strategy: build, count, check the budget, evaluate, store."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from nas.cost import count
from nas.strategies import SearchJob


class TrialStopped(Exception):
    """Raised from an ``on_epoch`` hook to stop a trial early (pruning)."""


@dataclass
class Outcome:
    """How a trial ended: its store state, the values to tell the optimiser, and metrics."""

    state: str                      # COMPLETE | PRUNED | FAIL
    values: list[float] | None = None
    feasible: bool = True
    metrics: dict = field(default_factory=dict)
    error: str | None = None


def objective_values(job: SearchJob, metrics: dict) -> list[float]:
    """The objective vector of a trial, in ``job.objectives`` order."""
    quality = metrics.get("proxy_score") if job.metric != "accuracy" else metrics.get("accuracy")
    table = {"accuracy": quality, "macs": metrics.get("target_macs"),
             "params": metrics.get("target_params"), "latency": metrics.get("latency_ms")}
    values = [table[o] for o in job.objectives]
    missing = [o for o, v in zip(job.objectives, values) if v is None]
    if missing:
        raise RuntimeError(f"the evaluator returned no value for objective(s) {missing}")
    return [float(v) for v in values]


def over_budget(job: SearchJob, macs: int, params: int) -> str | None:
    """Why a cost breaks the job's budgets, or None when it fits."""
    if job.budget_macs is not None and macs > job.budget_macs:
        return f"over budget: {macs:,} MACs > {job.budget_macs:,}"
    if job.params_budget is not None and params > job.params_budget:
        return f"over budget: {params:,} params > {job.params_budget:,}"
    return None


def run_trial(job: SearchJob, slot: int, number: int, params: dict, *,
              seed_name: str | None = None, retry_of: int | None = None,
              report: Callable[[int, float], None] | None = None) -> Outcome:
    """Evaluate ``params`` as trial ``number`` in store slot ``slot`` and record the result.

    An exception from the space or evaluator becomes a FAIL trial carrying its message;
    KeyboardInterrupt marks the trial as interrupted (to be retried) and propagates.
    """
    store = job.store
    started = False
    ids = {"params": params, "seed_name": seed_name, "retry_of": retry_of}
    try:
        cost = _cost(job.space, params)
        metrics = {"target_params": cost.params, "target_macs": cost.macs}
        reason = over_budget(job, cost.macs, cost.params)
        if reason:  # never built nor trained: one write, the sampler still learns the constraint
            store.finish(slot, "PRUNED", error=reason, feasible=False, number=number, **ids, **metrics)
            return Outcome("PRUNED", feasible=False, metrics=metrics, error=reason)
        genotype = job.space.build(params)
        digest = genotype.canonical_hash()
        store.start(slot, number, **ids, genotype=genotype.to_json(), genotype_hash=digest, **metrics)
        started = True
        prior = store.evaluated(slot, digest)
        if prior is not None:  # the same architecture again: reuse its result, train nothing
            metrics.update({k: prior[k] for k in _METRICS})
            store.finish(slot, "COMPLETE", duplicate_of=prior["number"],
                         **{k: metrics.get(k) for k in _METRICS})
            return Outcome("COMPLETE", values=objective_values(job, metrics), metrics=metrics)
        result = dict(job.evaluator(genotype, report or (lambda e, a: None)))
        metrics.update({k: v for k, v in result.items() if k != "epochs"})
        values = objective_values(job, metrics)
        store.finish(slot, "COMPLETE", epochs=result.get("epochs"),
                     **{k: metrics.get(k) for k in _METRICS})
        return Outcome("COMPLETE", values=values, metrics=metrics)
    except TrialStopped as e:
        store.finish(slot, "PRUNED", error=f"pruned: {e}")
        return Outcome("PRUNED", error=str(e))
    except KeyboardInterrupt:
        if not started:
            store.start(slot, number, **ids)
        store.finish(slot, "FAIL", error="interrupted by the user (Ctrl-C); retried on resume",
                     interrupted=True)
        raise
    except Exception as e:  # noqa: BLE001 - any evaluator failure is data, the search goes on
        message = f"{type(e).__name__}: {e}"
        if not started:
            store.start(slot, number, **ids)
        store.finish(slot, "FAIL", error=message + "\n" + _where(e))
        return Outcome("FAIL", error=message)


def _cost(space, params: dict):
    """The target-spec cost of a point: the space's (cached, already computed when the
    sampler proposed it) or counted from the built genotype."""
    if hasattr(space, "cost"):
        return space.cost(params)
    return count(space.build(params))


_METRICS = ("accuracy", "proxy_score", "latency_ms", "proxy_params", "proxy_macs")


def _where(e: BaseException) -> str:
    """The last frames of ``e``'s traceback, for the stored error text."""
    return "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3)).strip()


def timer() -> Callable[[], float]:
    """Seconds since the call."""
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0
