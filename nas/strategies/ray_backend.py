"""Ray Tune strategy: the same search fanned out over the CPUs and GPUs of a machine or a cluster.

Each architecture runs as a Ray Tune function trainable with ``cpus_per_trial`` /
``gpus_per_trial`` (fractional GPUs share a device); ASHA stops weak trials on their
per-epoch accuracy. Ray's ``OptunaSearch`` proposes points through a define-by-run function
(:meth:`SearchSpace.suggest`), on the *same* Optuna RDB study the Optuna backend uses, so
seeds, budget constraints, trial numbers and resume behave as there.

One writer: only the driver touches the store. The searcher claims a store slot before it
asks Optuna (so the trial limit holds), over-budget points are recorded without launching a
Ray trial, and a Tune callback records starts, per-epoch results, ends and crashes.

Resume: re-running the command opens the Optuna study and the store again (like the Optuna
backend), each run under a fresh Ray experiment name. ``Tuner.restore`` is not used: it
re-runs the exact job it saved (same trial count, same searcher object) and trials carry no
checkpoints to resume from, while the store and the Optuna study already hold everything.
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.strategies import OBJECTIVES, RunSummary, SearchJob, Strategy
from nas.strategies.optuna_backend import (MAX_INFEASIBLE_STREAK, SAMPLERS, OptunaStrategy,
                                           rdb_storage)
from nas.strategies.runner import objective_values, over_budget

SCHEDULERS = ("asha", "hyperband", "none")
META = "_nas"              # config key carrying the trial's number, seed name and costs
QUALITY = "nas_quality"    # per-epoch validation accuracy (ASHA's metric)
EPOCH = "nas_epoch"        # ASHA's time attribute; absent from the final report
FINAL = "nas_final"        # marks the trainable's last report (COMPLETE or FAIL)


class RayBackendError(NasError):
    """Ray settings that cannot work (resources larger than the cluster, bad scheduler...)."""


def _obj_key(objective: str) -> str:
    return f"obj_{objective}"


@dataclass(frozen=True)
class TrialSpec:
    """What a Ray worker needs besides the evaluator, as plain data."""

    space: dict                   # SearchSpace.to_dict()
    space_path: str | None
    objectives: tuple
    metric: str
    max_epochs: int | None


# ------------------------------------------------------------------ worker side
_SPACES: dict = {}


def _space(spec: TrialSpec):
    """The search space rebuilt from plain data, once per worker process."""
    from nas.spaces.space import space_from_dict

    key = (spec.space_path, spec.space["name"])
    if key not in _SPACES:
        _SPACES[key] = space_from_dict(spec.space, Path(spec.space_path) if spec.space_path else None)
    return _SPACES[key]


def trainable(config: dict, *, spec: TrialSpec, evaluator) -> None:
    """Ray Tune function trainable: build the genotype of ``config``, evaluate it, report each
    epoch (for ASHA) and a final result; an evaluator exception becomes a FAIL report."""
    from ray import tune

    meta = config[META]
    params = {k: v for k, v in config.items() if k != META}
    costs = {"target_params": meta["target_params"], "target_macs": meta["target_macs"]}
    known = {"macs": costs["target_macs"], "params": costs["target_params"]}
    last = [time.perf_counter()]

    def on_epoch(epoch: int, accuracy: float) -> None:
        if spec.max_epochs is not None and epoch >= spec.max_epochs:
            return  # the last epoch arrives with the final report: ASHA never judges a finished trial
        now = time.perf_counter()
        quality = accuracy if spec.metric == "accuracy" else None
        tune.report({EPOCH: epoch, QUALITY: float(accuracy), "nas_seconds": now - last[0],
                     **{_obj_key(o): quality if o == "accuracy" else known.get(o)
                        for o in spec.objectives}})
        last[0] = now

    try:
        genotype = _space(spec).build(params)
        result = dict(evaluator(genotype, on_epoch))
        metrics = {**costs, **{k: v for k, v in result.items() if k != "epochs"}}
        values = objective_values(spec, metrics)
    except Exception as e:  # noqa: BLE001 - a failing architecture is data; the search goes on
        import traceback

        where = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3)).strip()
        tune.report({FINAL: True, "nas_state": "FAIL", "nas_error": f"{type(e).__name__}: {e}\n{where}",
                     QUALITY: None, **{_obj_key(o): None for o in spec.objectives}})
        return
    quality = metrics.get("accuracy") if spec.metric == "accuracy" else metrics.get("proxy_score")
    tune.report({FINAL: True, "nas_state": "COMPLETE", QUALITY: quality, "nas_metrics": metrics,
                 "nas_epochs": list(result.get("epochs") or []),
                 **{_obj_key(o): v for o, v in zip(spec.objectives, values)}})


# ------------------------------------------------------------------ driver side
@dataclass
class _Live:
    """A trial the driver has claimed a store slot for, until it is recorded as finished."""

    slot: int
    number: int
    params: dict
    seed_name: str | None
    retry_of: int | None
    costs: dict
    genotype: str
    genotype_hash: str
    started: bool = False
    epochs: list = field(default_factory=list)
    final: dict | None = None
    stopped: bool = False          # the scheduler stopped it (ASHA)
    worker: str | None = None


class _Book:
    """The driver's record of live trials; the only code that writes to the store."""

    def __init__(self, job: SearchJob, summary: RunSummary, optuna: OptunaStrategy):
        self.job, self.summary, self.optuna = job, summary, optuna
        self.study = optuna.study(job)
        # Seeded by the study's size: a resumed run does not replay the first run's draws.
        self.rng = random.Random(job.seed * 7919 + len(self.study.get_trials(deepcopy=False)))
        self.live: dict[str, _Live] = {}
        self.t0 = time.monotonic()
        self.streak = 0
        self.full = False  # the last claim found the limit reached and no trial ended since

    # -- called by the searcher ------------------------------------------------------------
    def out_of_time(self) -> bool:
        job = self.job
        if job.timeout is not None and time.monotonic() - self.t0 >= job.timeout:
            self.summary.stop_reason = f"timeout of {job.timeout:g} s reached"
            return True
        if self.streak >= MAX_INFEASIBLE_STREAK:
            self.summary.stop_reason = (f"{self.streak} over-budget proposals in a row; the "
                                        "budget may be too small for the space")
            return True
        return False

    def claim(self) -> int | str | None:
        """A store slot for one more trial; "wait" while running trials may still free one
        (a pruned trial does not count toward the limit); None when the limit is reached."""
        if self.full and self.live:
            return "wait"
        slot = self.job.store.claim(self.job.study, self.job.trials, self.job.worker)
        self.full = slot is None
        if slot is None and self.live:
            return "wait"
        if slot is None:
            self.summary.stop_reason = f"{self.job.trials} trials reached"
        return slot

    def admit(self, trial_id: str, slot: int, config: dict) -> str | None:
        """Take a proposed config: None when it may run, else why it does not (recorded
        without building it, in one write, as the Optuna backend does)."""
        job, meta = self.job, config[META]
        params = {k: v for k, v in config.items() if k != META}
        costs = {"target_params": meta["target_params"], "target_macs": meta["target_macs"]}
        ids = {"params": params, "seed_name": meta.get("seed_name"), "retry_of": meta.get("retry_of")}
        reason = over_budget(job, costs["target_macs"], costs["target_params"])
        if reason is not None:
            job.store.finish(slot, "PRUNED", error=reason, feasible=False, number=meta["number"],
                             **ids, **costs)
            self.streak += 1
            self.summary.started += 1
            self.summary.infeasible += 1
            if job.progress:
                job.progress({"number": meta["number"], "state": "PRUNED", "feasible": False,
                              "values": None, "error": reason, "seed_name": ids["seed_name"], **costs})
            return reason
        genotype = job.space.build(params)
        self.live[trial_id] = _Live(slot, meta["number"], params, ids["seed_name"], ids["retry_of"],
                                    costs, genotype.to_json(), genotype.canonical_hash())
        self.streak = 0
        return None

    def feed_startup(self) -> None:
        """As the Optuna backend: during the sampler's random start-up, queue points drawn
        feasible by construction, so start-up trials are not wasted over the budget."""
        self.optuna._feed_startup(self.job, self.study, self.rng)

    def fail_unproposed(self, slot: int, number: int | None, error: str) -> None:
        """Record a proposal that broke before it became a config (a broken space point)."""
        self.job.store.start(slot, number if number is not None else -slot, params={})
        self.job.store.finish(slot, "FAIL", error=error)
        self.summary.started += 1
        self.summary.failed += 1

    # -- called by the Tune callback ---------------------------------------------------------
    def _start(self, live: _Live) -> None:
        self.job.store.start(live.slot, live.number, params=live.params, seed_name=live.seed_name,
                             retry_of=live.retry_of, genotype=live.genotype,
                             genotype_hash=live.genotype_hash, **live.costs)
        live.started = True

    def started(self, trial_id: str) -> None:
        live = self.live.get(trial_id)
        if live is not None:
            self._start(live)

    def result(self, trial_id: str, result: dict) -> None:
        live = self.live.get(trial_id)
        if live is None:
            return
        if result.get("hostname") and result.get("pid"):
            live.worker = f"{result['hostname']}:{result['pid']}"
        if result.get(FINAL):
            live.final = result
        elif EPOCH in result:
            live.epochs.append({"epoch": int(result[EPOCH]), "val_accuracy": result[QUALITY],
                                "train_loss": None, "seconds": result.get("nas_seconds")})
            live.stopped = bool(result.get("done"))

    def completed(self, trial_id: str) -> None:
        live = self.live.pop(trial_id, None)
        if live is None:
            return
        self.full = False
        if not live.started:
            self._start(live)
        final, store = live.final, self.job.store
        if final is not None and final.get("nas_state") == "COMPLETE":
            m = final["nas_metrics"]
            store.finish(live.slot, "COMPLETE", epochs=final.get("nas_epochs"), worker=live.worker,
                         **{k: m.get(k) for k in ("accuracy", "proxy_score", "latency_ms",
                                                   "proxy_params", "proxy_macs")})
            self._end(live, "COMPLETE", metrics=m,
                      values=[final[_obj_key(o)] for o in self.job.objectives])
        elif final is not None:
            self._fail(live, final.get("nas_error") or "the evaluator failed")
        elif live.stopped:
            last = live.epochs[-1]
            error = (f"stopped early by the scheduler after epoch {last['epoch']} "
                     f"(accuracy {last['val_accuracy']:.4f})")
            store.finish(live.slot, "PRUNED", error=error, epochs=live.epochs, worker=live.worker)
            self._end(live, "PRUNED", error=error)
        else:
            self._fail(live, "the trial ended without a final report (the trainable returned early)")

    def errored(self, trial_id: str, reason: str) -> None:
        live = self.live.pop(trial_id, None)
        self.full = False
        if live is not None:
            if not live.started:
                self._start(live)
            self._fail(live, f"worker crashed: {reason}")

    def _fail(self, live: _Live, error: str) -> None:
        self.job.store.finish(live.slot, "FAIL", error=error, epochs=live.epochs, worker=live.worker)
        self._end(live, "FAIL", error=error.splitlines()[0])

    def _end(self, live: _Live, state: str, *, metrics: dict | None = None,
             values: list | None = None, error: str | None = None) -> None:
        self.summary.started += 1
        self.summary.complete += state == "COMPLETE"
        self.summary.pruned += state == "PRUNED"
        self.summary.failed += state == "FAIL"
        self._progress(live, state, metrics=metrics, values=values, error=error)

    def _progress(self, live: _Live, state: str, *, feasible: bool = True, metrics=None,
                  values=None, error=None) -> None:
        if self.job.progress:
            self.job.progress({"number": live.number, "state": state, "feasible": feasible,
                               "values": values, "error": error, "seed_name": live.seed_name,
                               **live.costs, **(metrics or {})})

    # -- after the experiment ----------------------------------------------------------------
    def abandon(self) -> int:
        """Leave store and study consistent after an interrupted experiment: unfinished trials
        are marked interrupted (or their slot released) and queued for retry."""
        from optuna.trial import TrialState

        for live in self.live.values():
            if live.started:
                self.job.store.finish(live.slot, "FAIL", interrupted=True, epochs=live.epochs,
                                      error="interrupted before the trial finished; retried on resume")
            else:
                self.job.store.release(live.slot)
            self.study.tell(live.number, state=TrialState.FAIL, skip_if_finished=True)
            attrs = {"retry_of": live.number}
            if live.seed_name:
                attrs["seed_name"] = live.seed_name
            self.study.enqueue_trial(dict(live.params), user_attrs=attrs)
        n = len(self.live)
        self.live.clear()
        return n


def _define_by_run(job: SearchJob):
    """The OptunaSearch space: sample through the space (budget constraint included) and pass
    the trial number, seed name and target cost along as constants."""
    def space_fn(trial) -> dict:
        params = job.space.suggest(trial, job.budget_macs, job.params_budget)
        cost = job.space.cost(params)
        attrs = trial.user_attrs
        return {META: {"number": trial.number, "seed_name": attrs.get("seed_name"),
                       "retry_of": attrs.get("retry_of"), "target_params": cost.params,
                       "target_macs": cost.macs}}
    return space_fn


def _searcher(book: _Book, job: SearchJob, storage):
    """OptunaSearch on the job's Optuna RDB study, driven by the store's trial limit."""
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class StoreOptunaSearch(OptunaSearch):
        """OptunaSearch that claims a store slot per trial, records over-budget points without
        running them and tells Optuna PRUNED/FAIL for trials ASHA stopped or that failed."""

        def suggest(self, trial_id: str):
            while not book.out_of_time():
                slot = book.claim()
                if slot is None:
                    return Searcher.FINISHED
                if slot == "wait":
                    return None  # Tune asks again later
                try:
                    book.feed_startup()
                    config = super().suggest(trial_id)
                except Exception as e:  # noqa: BLE001 - a broken space point fails one trial
                    ot = self._ot_trials.pop(trial_id, None)
                    book.fail_unproposed(slot, ot.number if ot else None, f"{type(e).__name__}: {e}")
                    if ot is not None:
                        self._ot_study.tell(ot, state=_state("FAIL"), skip_if_finished=True)
                    continue
                reason = book.admit(trial_id, slot, config)
                if reason is None:
                    return config
                ot = self._ot_trials.pop(trial_id)
                self._ot_study.tell(ot, _infeasible(job, config[META]))
            return Searcher.FINISHED

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if isinstance(self.metric, list) or result.get(self.metric) is None:
                return  # intermediate values only exist for a single objective
            super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            state = (result or {}).get("nas_state")
            if error or state == "FAIL":
                super().on_trial_complete(trial_id, None, error=True)
            elif state == "COMPLETE":
                super().on_trial_complete(trial_id, result)
            else:  # stopped by the scheduler: PRUNED, as Optuna's own pruners would
                super().on_trial_complete(trial_id, None)

        def save(self, checkpoint_path: str):
            raise NotImplementedError("state lives in the Optuna RDB study and the store")

        def restore(self, checkpoint_path: str):
            raise NotImplementedError("re-run the search command to resume")

        def __reduce__(self):  # Tune pickles its config; the live store stays in the driver
            return (_unpicklable, (type(self).__name__,))

    objectives = job.objectives
    metric = [_obj_key(o) for o in objectives] if len(objectives) > 1 else _obj_key(objectives[0])
    mode = [_mode(o) for o in objectives] if len(objectives) > 1 else _mode(objectives[0])
    # Seeded by the study's size: reproducible, yet a resumed run does not replay the first
    # run's random proposals (a seeded RandomSampler would repeat them one by one).
    seed = job.seed + len(book.study.get_trials(deepcopy=False))
    if job.sampler == "tpe":  # trials run in parallel: running ones count as (bad) results
        import optuna

        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    else:
        sampler = SAMPLERS.get(job.sampler)(seed, len(objectives))
    return StoreOptunaSearch(space=_define_by_run(job), metric=metric, mode=mode, sampler=sampler,
                             study_name=job.study, storage=storage)


def _callback(book: _Book):
    from ray.tune import Callback

    class StoreCallback(Callback):
        """Records Tune's trial events into the store (runs in the driver process)."""

        def on_trial_start(self, iteration, trials, trial, **info):
            book.started(trial.trial_id)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            book.result(trial.trial_id, result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            book.completed(trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info):
            book.errored(trial.trial_id, _error_text(trial))

        def __reduce__(self):
            return (_unpicklable, (type(self).__name__,))

    return StoreCallback()


def _unpicklable(name: str):
    raise RuntimeError(f"{name} holds the driver's store and cannot be restored; re-run the "
                       "search command to resume")


def _error_text(trial) -> str:
    """The reason a Tune trial errored: the last line of its error file, else its error."""
    path = getattr(trial, "error_file", None)
    text = ""
    if path and os.path.exists(path):
        text = Path(path).read_text(errors="replace").strip()
    if not text:
        err = trial.get_error() if hasattr(trial, "get_error") else None
        text = str(err or "unknown error")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    head = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1])
    return head[:500] + ("\n" + "\n".join(lines[-8:]) if len(lines) > 1 else "")


def _mode(objective: str) -> str:
    return "max" if OBJECTIVES[objective] == "maximize" else "min"


def _state(name: str):
    from optuna.trial import TrialState

    return getattr(TrialState, name)


def _infeasible(job: SearchJob, meta: dict) -> list[float] | float:
    """Values told for an over-budget point (the constraint does the real work)."""
    from nas.strategies.optuna_backend import INFEASIBLE_LATENCY_MS

    table = {"accuracy": 0.0, "macs": float(meta["target_macs"]),
             "params": float(meta["target_params"]), "latency": INFEASIBLE_LATENCY_MS}
    values = [table[o] for o in job.objectives]
    return values if len(values) > 1 else values[0]


class RayStrategy(Strategy):
    """Ray Tune over a :class:`SearchJob`: parallel trials, ASHA, OptunaSearch, one writer."""

    name = "ray"

    def __init__(self, storage_url: str | None = None, worker_index: int = 0,
                 cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
                 ray_address: str | None = None, scheduler: str = "asha",
                 max_epochs: int | None = None, max_concurrent: int | None = None,
                 ray_storage: str | None = None, reuse_actors: bool = True,
                 reduction_factor: float = 2.0):
        if scheduler not in SCHEDULERS:
            raise RayBackendError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
        if not cpus_per_trial > 0 or gpus_per_trial < 0:
            raise RayBackendError(f"--cpus-per-trial must be > 0 and --gpus-per-trial >= 0, got "
                                  f"{cpus_per_trial:g} and {gpus_per_trial:g}")
        if ray_address and ray_address.startswith("ray://"):
            raise RayBackendError(
                f"--ray-address {ray_address}: Ray Client runs Tune on the head node, away from "
                "this process's store; run the search on a cluster node with --ray-address auto "
                "(or HEAD_IP:6379)")
        if max_concurrent is not None and max_concurrent < 1:
            raise RayBackendError(f"max_concurrent must be >= 1, got {max_concurrent}")
        self.storage_url = storage_url
        self.worker_index = worker_index
        self.cpus, self.gpus = float(cpus_per_trial), float(gpus_per_trial)
        self.address, self.scheduler = ray_address, scheduler
        self.max_epochs, self.max_concurrent = max_epochs, max_concurrent
        self.ray_storage, self.reuse_actors = ray_storage, reuse_actors
        self.reduction_factor = reduction_factor
        self.ray_dir: str | None = None  # the last run's Ray experiment folder
        self._started_ray = False

    def prepare(self, job: SearchJob) -> dict:
        """Start or join Ray and check a trial fits the cluster; then, as the Optuna backend,
        recover trials of a killed run (queued for retry) and queue the seeds."""
        self._started_ray = _connect(self.address) or self._started_ray
        try:
            self._concurrency()
        except BaseException:
            self._shutdown()
            raise
        return OptunaStrategy(storage_url=self.storage_url).prepare(job)

    def run(self, job: SearchJob) -> RunSummary:
        """Run trials on Ray until the trial limit, the timeout or Ctrl-C; record each in the store."""
        self._started_ray = _connect(self.address) or self._started_ray
        summary = RunSummary()
        try:
            storage = rdb_storage(self.storage_url or job.store.url)
            book = _Book(job, summary, OptunaStrategy(storage_url=self.storage_url))
            tuner = self._tuner(job, book, storage, self._concurrency())
            try:
                tuner.fit()
            except KeyboardInterrupt:
                summary.interrupted = True
            finally:
                abandoned = book.abandon()
            # With num_samples=-1 a run ends normally only when the searcher says FINISHED
            # (which sets stop_reason); anything else is Tune stopping on Ctrl-C.
            if abandoned or not summary.stop_reason:
                summary.interrupted = True
            if summary.interrupted:
                summary.stop_reason = "interrupted"
        finally:
            self._shutdown()
        return summary

    def _shutdown(self) -> None:
        """Stop the local Ray cluster this strategy started (a joined cluster keeps running)."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False

    def _tuner(self, job: SearchJob, book: _Book, storage, concurrent: int):
        from ray import tune

        spec = TrialSpec(space=job.space.to_dict(), space_path=str(job.space.path or "") or None,
                         objectives=tuple(job.objectives), metric=job.metric,
                         max_epochs=self.max_epochs)
        _check_picklable(job.evaluator)
        fn = tune.with_parameters(trainable, spec=spec, evaluator=job.evaluator)
        resources = {"cpu": self.cpus, "gpu": self.gpus}
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        name = f"{_safe(job.study)}-{stamp}"  # a fresh name: a reused one overwrites (ray#35812)
        root = self._storage_root(job)
        self.ray_dir = str(Path(root) / name)
        return tune.Tuner(
            tune.with_resources(fn, resources),
            tune_config=tune.TuneConfig(search_alg=_searcher(book, job, storage),
                                        scheduler=self._make_scheduler(), num_samples=-1,
                                        max_concurrent_trials=concurrent,
                                        reuse_actors=self.reuse_actors),
            run_config=tune.RunConfig(name=name, storage_path=root, verbose=0,
                                      callbacks=[_callback(book)],
                                      failure_config=tune.FailureConfig(max_failures=0)))

    def _make_scheduler(self):
        from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

        if self.scheduler == "none":
            return FIFOScheduler()
        # Asynchronous: no trial waits for a rung to fill. "hyperband" runs several brackets
        # (async Hyperband); synchronous HyperBand pauses trials, which needs checkpoints.
        return AsyncHyperBandScheduler(
            time_attr=EPOCH, metric=QUALITY, mode="max", max_t=max(self.max_epochs or 100, 1),
            grace_period=1, reduction_factor=self.reduction_factor,
            brackets=3 if self.scheduler == "hyperband" else 1, stop_last_trials=False)

    def _concurrency(self) -> int:
        """Trials the cluster can run at once under the per-trial resources (or the given cap)."""
        import ray

        total = ray.cluster_resources()
        cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
        if self.cpus > cpus or self.gpus > gpus:
            raise RayBackendError(
                f"a trial asks for {self.cpus:g} CPU and {self.gpus:g} GPU but the Ray cluster has "
                f"{cpus:g} CPU and {gpus:g} GPU; lower --cpus-per-trial/--gpus-per-trial")
        fit = int(cpus // self.cpus)
        if self.gpus > 0:
            fit = min(fit, int(round(gpus / self.gpus, 6)))
        return max(1, min(fit, self.max_concurrent or fit))

    def _storage_root(self, job: SearchJob) -> str:
        """Where Ray keeps its logs and error files: ``ray_storage``, else beside a SQLite
        database, else ``~/ray_results``."""
        from nas.store import sqlite_path

        if self.ray_storage:
            return self.ray_storage
        db = sqlite_path(job.store.url)
        root = db.parent / "ray_results" if db else Path("~/ray_results").expanduser()
        return str(root.resolve())


def trial_device(device: str, gpus_per_trial: float) -> str:
    """The torch device a Ray trial evaluates on: 'auto' is cuda when the trial gets GPUs
    (Ray sets CUDA_VISIBLE_DEVICES to its share), else cpu; a cuda device needs GPUs."""
    if device == "auto":
        return "cuda" if gpus_per_trial > 0 else "cpu"
    if device.startswith("cuda") and not gpus_per_trial > 0:
        raise RayBackendError(f"--device {device} with --backend ray needs --gpus-per-trial > 0 "
                              "(Ray hides GPUs from trials that did not ask for one)")
    return device


class _NoRestoreHint(logging.Filter):
    """Drops Ray's "Resume experiment with: Tuner.restore(...)" hint: here a search resumes by
    re-running its command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


def _connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` or start a local one; True when this call started it."""
    if address and "RAY_AUTH_MODE" not in os.environ and _auth_token_available():
        # Ray 2.59+ `ray start --head` turns token auth on when a token exists, but
        # ray.init(address=HOST:PORT) does not send it unless the mode is set (ray#64755);
        # Ray reads the mode when it is imported.
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables on stdout
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TB files per trial
    # Ray's result grid warns about the per-trial result files the line above switches off.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    logging.getLogger("ray.tune.search.searcher").setLevel(logging.ERROR)  # "save not implemented"
    tune_log = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _NoRestoreHint) for f in tune_log.filters):
        tune_log.addFilter(_NoRestoreHint())
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise RayBackendError(f"cannot start or join {where}: {str(e).splitlines()[0]}; check "
                              "--ray-address (auto, or HEAD_IP:6379 from a cluster node)") from None
    return True


def _auth_token_available() -> bool:
    """Whether a Ray auth token is configured (environment or the default token file)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def _check_picklable(evaluator: Any) -> None:
    """Raise a readable error when the evaluator cannot be shipped to Ray workers."""
    import ray.cloudpickle as cloudpickle

    try:
        cloudpickle.dumps(evaluator)
    except Exception as e:  # noqa: BLE001 - any pickling failure means the same thing
        raise RayBackendError(f"the evaluator {type(evaluator).__name__} cannot be sent to Ray "
                              f"workers ({type(e).__name__}: {e}); use a picklable evaluator") from None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
