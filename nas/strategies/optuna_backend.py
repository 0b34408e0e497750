"""Optuna strategy: ask/tell with TPE, NSGA-II, random, ... samplers; Optuna's RDB storage
lives beside the nas tables (same database) so a search resumes by re-running it."""
from __future__ import annotations

import random
import signal
import threading
import time
import warnings

from nas.registry import Registry
from nas.store import make_url
from nas.strategies import OBJECTIVES, RunSummary, SearchJob, Strategy
from nas.strategies.runner import Outcome, TrialStopped, run_trial

#: name -> (factory(seed, n_objectives) -> sampler); each imports Optuna only when called.
SAMPLERS: Registry = Registry("sampler")
INFEASIBLE_LATENCY_MS = 1e6  # told for an over-budget trial whose latency was never measured
MAX_INFEASIBLE_STREAK = 500
#: Random start-up trials of each sampler, drawn feasible by construction (random: all).
STARTUP = {"tpe": 10, "gp": 10, "nsga2": 16, "nsga3": 16, "random": 1 << 62}


def _tpe(seed: int, n_obj: int):
    import optuna
    return optuna.samplers.TPESampler(seed=seed)


def _nsga2(seed: int, n_obj: int):
    import optuna
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def _nsga3(seed: int, n_obj: int):
    import optuna
    return optuna.samplers.NSGAIIISampler(seed=seed, population_size=16)


def _random(seed: int, n_obj: int):
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed: int, n_obj: int):
    import optuna
    return optuna.samplers.GPSampler(seed=seed)


def _qmc(seed: int, n_obj: int):
    import optuna
    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


for _name, _factory in (("tpe", _tpe), ("nsga2", _nsga2), ("nsga3", _nsga3), ("random", _random),
                        ("gp", _gp), ("qmc", _qmc)):
    SAMPLERS.register(_name, _factory)


def rdb_storage(url: str):
    """Optuna RDB storage on ``url``; on SQLite its connections get the nas store's settings
    (WAL, synchronous=NORMAL, busy timeout), which Optuna does not set itself."""
    import optuna

    from nas.store import sqlite_connect, sqlite_path

    path = sqlite_path(url) if make_url(url).get_backend_name() == "sqlite" else None
    kwargs = {"creator": lambda: sqlite_connect(path)} if path is not None else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


class OptunaStrategy(Strategy):
    """Optuna ask/tell loop over a :class:`SearchJob`."""

    name = "optuna"

    def __init__(self, storage_url: str | None = None, worker_index: int = 0):
        self.storage_url = storage_url
        self.worker_index = worker_index
        self._startup_done = False
        self._space_constrains: bool | None = None

    def study(self, job: SearchJob):
        """Create or load the Optuna study of ``job``."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        sampler = SAMPLERS.get(job.sampler)(job.seed + 1000 * self.worker_index,
                                            len(job.objectives))
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if self._prunes(job) else None
        return optuna.create_study(
            study_name=job.study, storage=rdb_storage(self.storage_url or job.store.url),
            sampler=sampler, pruner=pruner, load_if_exists=True,
            directions=[OBJECTIVES[o] for o in job.objectives])

    @staticmethod
    def _prunes(job: SearchJob) -> bool:
        # Optuna's Trial.report raises for multi-objective studies.
        return len(job.objectives) == 1 and job.options.get("prune", True)

    # -- before workers start -------------------------------------------------------------
    def prepare(self, job: SearchJob) -> dict:
        """Recover trials of a killed run (retrying them) and enqueue the space's seeds."""
        from optuna.trial import TrialState

        study = self.study(job)
        recovered = {t["number"]: t for t in job.store.recover(job.study)}
        stored = {t["number"]: t for t in job.store.trials(job.study)}
        retried = 0
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            row = stored.get(frozen.number)
            if row is not None and row["state"] == "RUNNING":
                continue  # a live worker of another run owns it
            if row is not None and row["state"] != "FAIL":
                self._tell(study, frozen.number, job, _outcome_of(row, job))
                continue
            study.tell(frozen.number, state=TrialState.FAIL)
            if row is not None and not row["interrupted"]:
                continue  # a real failure, stored before the kill
            params = (row or {}).get("params") or frozen.system_attrs.get("fixed_params")
            if params:
                attrs = {"retry_of": frozen.number}
                seed_name = (row or {}).get("seed_name") or frozen.user_attrs.get("seed_name")
                if seed_name:
                    attrs["seed_name"] = seed_name
                study.enqueue_trial(params, user_attrs=attrs)
                retried += 1
        seeds = 0
        if job.use_seeds:
            for seed in job.space.seeds(job.budget_macs):
                if seed.fits:
                    study.enqueue_trial(dict(seed.params), user_attrs={"seed_name": seed.name},
                                        skip_if_exists=True)
                    seeds += 1
        return {"recovered": len(recovered), "retried": retried, "seeds": seeds}

    # -- the loop -------------------------------------------------------------------------
    def run(self, job: SearchJob) -> RunSummary:
        """Ask, evaluate, tell until the trial limit, the timeout or Ctrl-C."""
        study = self.study(job)
        summary = RunSummary()
        rng = random.Random(job.seed * 7919 + self.worker_index)
        t0 = time.monotonic()
        streak = 0
        while True:
            if job.timeout is not None and time.monotonic() - t0 >= job.timeout:
                summary.stop_reason = f"timeout of {job.timeout:g} s reached"
                break
            if streak >= MAX_INFEASIBLE_STREAK:
                summary.stop_reason = (f"{streak} over-budget proposals in a row; the budget "
                                       "may be too small for the space")
                break
            slot = job.store.claim(job.study, job.trials, job.worker)
            if slot is None:
                summary.stop_reason = f"{job.trials} trials reached"
                break
            trial = None
            try:
                try:
                    self._feed_startup(job, study, rng)
                    trial = study.ask()
                except BaseException:
                    job.store.release(slot)
                    raise
                outcome = self._one(job, study, trial, slot)
            except KeyboardInterrupt:
                self._abandon(job, study, trial, slot)
                summary.interrupted = True
                summary.stop_reason = "interrupted"
                break
            summary.started += 1
            _count(summary, outcome)
            streak = streak + 1 if not outcome.feasible else 0
            if job.progress:
                job.progress({"number": trial.number, "state": outcome.state,
                              "feasible": outcome.feasible, "values": outcome.values,
                              "error": outcome.error, "seed_name": trial.user_attrs.get("seed_name"),
                              **outcome.metrics})
        return summary

    def _feed_startup(self, job: SearchJob, study, rng: random.Random) -> None:
        """Queue a feasible random point while the sampler is still in its random start-up.

        Samplers start with uniform random proposals, and most of a space's volume usually
        lies over the budget: drawing the start-up points feasible by construction
        (``space.sample``) keeps those trials useful. The sampler takes over afterwards.
        """
        from optuna.trial import TrialState

        startup = STARTUP.get(job.sampler, 0)
        if self._startup_done or not startup or not hasattr(job.space, "sample") \
                or (job.budget_macs is None and job.params_budget is None):
            return
        if job.store.count(job.study) > startup:
            self._startup_done = True
            return
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return  # seeds or retries go first
        params = job.space.sample(rng, job.budget_macs, job.params_budget)
        study.enqueue_trial(params, user_attrs={"startup": True})

    def _one(self, job: SearchJob, study, trial, slot: int) -> Outcome:
        """Suggest params for ``trial``, run it, tell Optuna."""
        try:
            params = job.space.suggest(trial, job.budget_macs, job.params_budget)
        except Exception as e:  # noqa: BLE001 - a broken space point fails this trial only
            job.store.start(slot, trial.number, params=dict(trial.params))
            job.store.finish(slot, "FAIL", error=f"{type(e).__name__}: {e}")
            outcome = Outcome("FAIL", error=f"{type(e).__name__}: {e}")
        else:
            attrs = trial.user_attrs
            outcome = run_trial(job, slot, trial.number, params, seed_name=attrs.get("seed_name"),
                                retry_of=attrs.get("retry_of"), report=self._reporter(job, trial))
            self._ensure_constraint(job, trial, outcome)
        self._tell(study, trial, job, outcome)
        return outcome

    def _ensure_constraint(self, job: SearchJob, trial, outcome: Outcome) -> None:
        """State the MAC budget as a constraint when the space's ``suggest`` does not (checked
        on the first trial only: each check is a storage read)."""
        if job.budget_macs is None or "target_macs" not in outcome.metrics:
            return
        if self._space_constrains is None:
            self._space_constrains = bool(trial.constraints)
        if not self._space_constrains:
            trial.set_constraint("macs_over_budget",
                                 (outcome.metrics["target_macs"] - job.budget_macs) / job.budget_macs)

    def _reporter(self, job: SearchJob, trial):
        if not self._prunes(job):
            return None

        def report(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise TrialStopped(f"epoch {epoch} accuracy {accuracy:.4f} below the median")
        return report

    @staticmethod
    def _tell(study, trial, job: SearchJob, outcome: Outcome, recovering: bool = False) -> None:
        """Tell Optuna how a trial ended (``recovering``: it may have been told already)."""
        from optuna.trial import TrialState

        if outcome.state == "COMPLETE":
            study.tell(trial, outcome.values, skip_if_finished=recovering)
        elif not outcome.feasible:
            study.tell(trial, _infeasible_values(job, outcome.metrics), skip_if_finished=recovering)
        else:
            state = TrialState.PRUNED if outcome.state == "PRUNED" else TrialState.FAIL
            study.tell(trial, state=state, skip_if_finished=recovering)

    def _abandon(self, job: SearchJob, study, trial, slot: int) -> None:
        """Leave store and study consistent after Ctrl-C: an unfinished trial is retried on
        resume, a finished one keeps its result."""
        restore = _ignore_sigint()
        try:
            job.store.release(slot)  # no-op once the slot became a trial
            if trial is None:
                return
            row = next((t for t in job.store.trials(job.study) if t["number"] == trial.number),
                       None)
            if row is not None and row["state"] == "RUNNING":
                job.store.finish(slot, "FAIL", interrupted=True,
                                 error="interrupted by the user (Ctrl-C); retried on resume")
            elif row is not None and not row["interrupted"]:
                self._tell(study, trial, job, _outcome_of(row, job), recovering=True)
                return
            self._tell(study, trial, job, Outcome("FAIL"), recovering=True)
            if trial.params:  # partial params are fine: the rest is sampled again
                attrs = {"retry_of": trial.number}
                if trial.user_attrs.get("seed_name"):
                    attrs["seed_name"] = trial.user_attrs["seed_name"]
                study.enqueue_trial(dict(trial.params), user_attrs=attrs)
        finally:
            restore()


def _infeasible_values(job: SearchJob, metrics: dict) -> list[float]:
    """Objective values told for an over-budget trial (the constraint does the real work)."""
    table = {"accuracy": 0.0, "macs": float(metrics.get("target_macs", 0)),
             "params": float(metrics.get("target_params", 0)), "latency": INFEASIBLE_LATENCY_MS}
    return [table[o] for o in job.objectives]


def _outcome_of(row: dict, job: SearchJob) -> Outcome:
    """The outcome a finished stored trial implies (to tell Optuna after a kill)."""
    from nas.strategies.runner import objective_values

    metrics = {k: row.get(k) for k in ("accuracy", "proxy_score", "latency_ms", "target_macs",
                                       "target_params")}
    if row["state"] == "COMPLETE":
        return Outcome("COMPLETE", values=objective_values(job, metrics), metrics=metrics)
    return Outcome(row["state"], feasible=row.get("feasible", True), metrics=metrics)


def _count(summary: RunSummary, outcome: Outcome) -> None:
    if not outcome.feasible:
        summary.infeasible += 1
    elif outcome.state == "COMPLETE":
        summary.complete += 1
    elif outcome.state == "PRUNED":
        summary.pruned += 1
    else:
        summary.failed += 1


def _ignore_sigint():
    """Ignore further Ctrl-C while cleaning up; returns the function restoring the handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    return lambda: signal.signal(signal.SIGINT, old)

