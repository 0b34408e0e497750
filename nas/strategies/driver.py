"""The one owner of a trial's life cycle: propose -> cost and budget -> claim (limit, queue,
repeats) -> evaluate (an executor's job) -> record -> tell.

One :class:`Driver` per search process talks to the optimiser and the store; executors
call :meth:`Driver.propose`, hand the genotype to whatever evaluates it (this process, a
local worker process, a Ray Tune trial) and report back with :meth:`Driver.epoch` and
:meth:`Driver.finish`. Several processes or hosts on one study each run a driver: the
store's claims keep them consistent (see :mod:`nas.store`).
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

from nas.cost import count
from nas.store import HEARTBEAT_S, Claim
from nas.strategies import RunSummary, SearchJob

#: Stop after this many proposals in a row that train nothing (over budget or repeats).
MAX_IDLE_STREAK = 500
#: Seconds between looks at other processes' trials (sampler sync, finished originals of
#: repeats, dead runs) and between exports to Optuna's tables.
SYNC_S = 2.0
EXPORT_S = 60.0


@dataclass
class Live:
    """A claimed trial on its way through an executor."""

    trial_id: int
    number: int
    params: dict
    genotype: object                # nas.genotype.Genotype
    trial: object                   # the optimiser's trial
    seed_name: str | None = None
    epochs: list = field(default_factory=list)
    final: dict | None = None       # Ray: the trainable's last report
    worker: str | None = None       # the process evaluating it, when not this one


def over_budget(job: SearchJob, macs: int, params: int) -> str | None:
    """Why a cost breaks the job's budgets, or None when it fits."""
    if job.budget_macs is not None and macs > job.budget_macs:
        return f"over budget: {macs:,} MACs > {job.budget_macs:,}"
    if job.params_budget is not None and params > job.params_budget:
        return f"over budget: {params:,} params > {job.params_budget:,}"
    return None


class Driver:
    """Proposes, records and tells for one run of a search (see the module docstring)."""

    def __init__(self, job: SearchJob, *, parallel: int = 1):
        from nas.strategies.optuna_backend import Proposer

        self.job, self.store = job, job.store
        self.run = self.store.join(job.study, job.worker or None)
        self.recovered = self.store.recover(job.study)
        self.proposer = Proposer(job, self.run["index"], parallel > 1)
        self.proposer.learn(self.store.trials(job.study))
        self.summary = RunSummary()
        self.live: dict[int, Live] = {}
        self.repeats: dict[int, tuple] = {}   # trial id -> (optimiser trial, original number)
        self.done = False                     # no more proposals in this run
        self.idle_streak = 0
        self.t0 = time.monotonic()
        self._synced = self._exported = time.monotonic()
        self._others = bool(self.run["others"])
        self._skip: set[int] = set()          # queue ids another process took
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="nas-heartbeat")
        self._beat.start()
        self.export()   # Optuna's copy exists from the start (and catches up with past runs)

    # -- proposing ---------------------------------------------------------------------------
    def propose(self) -> Live | None:
        """The next trial to evaluate, claimed in the store; None when this run proposes no
        more (``done``: trial limit, timeout, too many idle proposals)."""
        job = self.job
        while not self.done:
            if job.timeout is not None and time.monotonic() - self.t0 >= job.timeout:
                return self._finish_proposing(f"timeout of {job.timeout:g} s reached")
            if self.idle_streak >= MAX_IDLE_STREAK:
                return self._finish_proposing(
                    f"{self.idle_streak} proposals in a row were over the budget or repeats of "
                    "evaluated architectures; the budget may be too small or the space exhausted")
            queued = next((q for q in self.store.queued(job.study) if q["id"] not in self._skip),
                          None)
            trial, params = self.proposer.ask(queued["params"] if queued else None)
            ids = {"seed_name": queued["seed_name"] if queued else None,
                   "retry_of": queued["retry_of"] if queued else None,
                   "queue_id": queued["id"] if queued else None, "worker": job.worker or None}
            try:
                cost = job.space.cost(params) if hasattr(job.space, "cost") \
                    else count(job.space.build(params))
                reason = over_budget(job, cost.macs, cost.params)
                genotype = None if reason else job.space.build(params)
            except Exception as e:  # noqa: BLE001 - a broken space point is one failed trial
                reason, genotype = None, e
            costs = {"target_params": getattr(cost, "params", None),
                     "target_macs": getattr(cost, "macs", None)} if not isinstance(genotype, Exception) else {}
            if reason:
                number = self.store.record_over_budget(job.study, self.run["id"], params=params,
                                                       error=reason, **costs, **ids)
                if number is None:
                    self._taken(trial, queued)
                    continue
                t = {"number": number, "state": "PRUNED", "feasible": False, "params": params,
                     "error": reason, "seed_name": ids["seed_name"], **costs}
                self.proposer.tell(trial, t)
                self._count(t)
                continue
            if isinstance(genotype, Exception):
                genotype = _FailedBuild(genotype)
            claim: Claim = self.store.claim(
                job.study, self.run["id"], job.trials, params=params,
                genotype=genotype.to_json(), genotype_hash=genotype.canonical_hash(),
                target_params=costs.get("target_params"), target_macs=costs.get("target_macs"),
                **ids)
            if claim.status == "taken":
                self._taken(trial, queued)
                continue
            if claim.status == "full":
                self.proposer.forget(trial)
                return self._finish_proposing(f"{job.trials} trials reached")
            if claim.status == "repeat":
                self.idle_streak += 1
                if claim.owner["state"] == "RUNNING":
                    self.repeats[claim.trial_id] = (trial, claim.owner["number"])
                else:
                    self._told(trial, self.store.resolve_repeat(claim.trial_id))
                continue
            live = Live(claim.trial_id, claim.number, params, genotype, trial, ids["seed_name"])
            if isinstance(genotype, _FailedBuild):
                self.live[live.trial_id] = live
                self.finish(live, error=genotype.error)
                continue
            self.idle_streak = 0
            self.live[live.trial_id] = live
            return live
        return None

    def _taken(self, trial, queued: dict) -> None:
        self.proposer.forget(trial)
        self._skip.add(queued["id"])

    def _finish_proposing(self, reason: str) -> None:
        self.done = True
        self.summary.stop_reason = self.summary.stop_reason or reason
        return None

    # -- results -----------------------------------------------------------------------------
    def epoch(self, live: Live, epoch: int, accuracy: float) -> bool:
        """An epoch of ``live`` ended; True when the pruner says stop it."""
        return self.proposer.report(live.trial, epoch, accuracy)

    def finish(self, live: Live, result: dict | None = None, *, error: str | None = None,
               pruned: str | None = None, interrupted: bool = False,
               worker: str | None = None) -> dict:
        """Record how ``live`` ended (``result``: the evaluator's dict; ``worker``: the process
        that evaluated it, when not this one) and tell the optimiser."""
        self.live.pop(live.trial_id, None)
        store = self.store
        if worker is not None:
            store = _WithWorker(store, worker)
        if interrupted:
            t = store.finish(live.trial_id, "FAIL", interrupted=True, requeue=True,
                             error=error or "interrupted before the trial finished; retried on resume")
        elif pruned is not None:
            t = store.finish(live.trial_id, "PRUNED", error=f"pruned: {pruned}",
                             epochs=(result or {}).get("epochs") or live.epochs)
        elif error is not None:
            t = store.finish(live.trial_id, "FAIL", error=error,
                             epochs=(result or {}).get("epochs") or live.epochs)
        else:
            from nas.store import METRICS

            metrics = {k: result.get(k) for k in METRICS if result.get(k) is not None}
            epochs = result.get("epochs") or []
            for k in ("val_loss", "train_loss"):
                if k not in metrics and epochs and epochs[-1].get(k) is not None:
                    metrics[k] = epochs[-1][k]
            missing = self._missing(metrics)
            if missing:
                t = store.finish(live.trial_id, "FAIL", epochs=epochs, **metrics,
                                 error=f"the evaluator returned no value for objective(s) {missing}")
            else:
                t = store.finish(live.trial_id, "COMPLETE", epochs=epochs, **metrics)
        self._told(live.trial, t, interrupted)
        return t

    def _missing(self, metrics: dict) -> list[str]:
        from nas import quality

        have = {"accuracy": quality.metric(self.job.metric).value(metrics),
                "latency": metrics.get("latency_ms")}
        return [o for o in self.job.objectives if o in have and have[o] is None]

    def _told(self, trial, t: dict, interrupted: bool = False) -> None:
        if interrupted:
            self.proposer.forget(trial)
        else:
            self.proposer.tell(trial, t)
        self._count(t)

    def _count(self, t: dict) -> None:
        s = self.summary
        s.started += 1
        if not t["feasible"]:
            s.infeasible += 1
            self.idle_streak += 1
        elif t.get("duplicate_of") is not None:
            s.repeats += 1
        elif t.get("interrupted"):
            pass
        elif t["state"] == "COMPLETE":
            s.complete += 1
        elif t["state"] == "PRUNED":
            s.pruned += 1
        else:
            s.failed += 1
        if self.job.progress:
            self.job.progress(t)

    # -- housekeeping --------------------------------------------------------------------------
    def poll(self, force: bool = False) -> None:
        """Every ``SYNC_S``: close repeats whose original finished, recover dead runs' trials,
        learn other processes' results; every ``EXPORT_S``: export to Optuna's tables."""
        now = time.monotonic()
        if not force and now - self._synced < SYNC_S:
            return
        self._synced = now
        for tid, (trial, _) in list(self.repeats.items()):
            t = self.store.resolve_repeat(tid)
            if t is not None:
                del self.repeats[tid]
                self._told(trial, t, t["interrupted"])
        self.store.recover(self.job.study)
        if self.repeats or self._others or self.store.live_runs(self.job.study) != [self.run_worker]:
            self._others = True
            self.proposer.learn(self.store.trials(self.job.study))
        if now - self._exported >= EXPORT_S:
            self._exported = now
            self.export()

    @property
    def run_worker(self) -> str:
        from nas.store import worker_id

        return self.job.worker or worker_id()

    def waiting(self) -> bool:
        """Whether repeats still wait for trials running in other processes."""
        return bool(self.repeats)

    def export(self) -> int:
        from nas.strategies.optuna_backend import export

        return export(self.job)

    def close(self, interrupted: bool = False) -> None:
        """End the run: unfinished trials become interrupted FAILs queued for retry (repeats
        are failed without retry), the run is marked finished, Optuna's copy exported (not
        when interrupted: stopping stays quick; the next run or export catches up)."""
        restore = _ignore_signals()
        try:
            if interrupted:
                self.summary.interrupted = True
                self.summary.stop_reason = "interrupted"
            for live in list(self.live.values()):
                self.finish(live, interrupted=True)
            for tid, (trial, number) in list(self.repeats.items()):
                t = self.store.finish(tid, "FAIL", interrupted=True,
                                      error=f"interrupted while waiting for trial {number}")
                self._told(trial, t, True)
            self.repeats.clear()
            self._stop.set()
            self.store.leave(self.run["id"])
            self.store.recover(self.job.study)   # anything claimed but never handed out
            if not interrupted:
                self.export()
        finally:
            restore()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.store.heartbeat(self.run["id"])
            except Exception:  # noqa: BLE001 - a missed beat is retried; the run goes on
                pass


class _WithWorker:
    """The store, with ``worker`` added to each :meth:`finish`."""

    def __init__(self, store, worker: str):
        self.store, self.worker = store, worker

    def finish(self, *args, **kwargs) -> dict:
        return self.store.finish(*args, worker=self.worker, **kwargs)


class _FailedBuild:
    """Stands in for a genotype whose space point could not be built (recorded as FAIL)."""

    def __init__(self, error: Exception):
        self.error = f"{type(error).__name__}: {error}"

    def to_json(self) -> None:
        return None

    def canonical_hash(self) -> None:
        return None


def _ignore_signals():
    """Ignore Ctrl-C and SIGTERM while cleaning up; returns the function restoring them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in old.items()]
