"""The optimiser: Optuna samplers on a private in-memory study per run, and the export of a
study to Optuna's own tables.

Each search process keeps its own in-memory Optuna study: the trials of the store (its own,
earlier runs', other processes') are added to it as they finish, and only this process asks
and tells it. So Optuna's RDB tables are never a second record to keep in step; they are
written by :func:`export`, derived from the store, for ``optuna.load_study`` and
optuna-dashboard.
"""
from __future__ import annotations

import json
import random
import warnings
import weakref

from nas.registry import Registry
from nas.store import make_url

#: name -> factory(seed, parallel) -> sampler; each imports Optuna only when called.
SAMPLERS: Registry = Registry("sampler")
#: Objective values the private study is told for an over-budget point (with the constraint,
#: so constrained samplers learn it); never exported as values.
INFEASIBLE_LATENCY_MS = 1e6
#: Random start-up trials of each sampler, drawn feasible by construction (random: all).
STARTUP = {"tpe": 10, "gp": 10, "nsga2": 16, "nsga3": 16, "random": 1 << 62}


def _tpe(seed: int, parallel: bool):
    import optuna
    # Parallel trials: running ones count as bad results, so workers do not all pick one point.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)


def _nsga2(seed: int, parallel: bool):
    import optuna
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def _nsga3(seed: int, parallel: bool):
    import optuna
    return optuna.samplers.NSGAIIISampler(seed=seed, population_size=16)


def _random(seed: int, parallel: bool):
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed: int, parallel: bool):
    import optuna
    return optuna.samplers.GPSampler(seed=seed)


def _qmc(seed: int, parallel: bool):
    import optuna
    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


for _name, _factory in (("tpe", _tpe), ("nsga2", _nsga2), ("nsga3", _nsga3), ("random", _random),
                        ("gp", _gp), ("qmc", _qmc)):
    SAMPLERS.register(_name, _factory)


def _quiet():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


class Proposer:
    """The optimiser of one run: ask, tell, report epochs, learn what others recorded."""

    def __init__(self, job, index: int, parallel: bool = False):
        optuna = _quiet()
        self.job = job
        seed = (job.seed + 1000 * index) % 2**32
        self.prunes = job.prune and len(job.objectives) == 1 and job.metric == "accuracy"
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if self.prunes else None
        self.study = optuna.create_study(sampler=SAMPLERS.get(job.sampler)(seed, parallel),
                                         pruner=pruner, directions=job.directions())
        self.rng = random.Random(job.seed * 7919 + index)
        self.known: set[int] = set()    # store numbers the study holds
        self.feasible = 0               # feasible trials the study holds

    # -- asking ----------------------------------------------------------------------------
    def ask(self, fixed: dict | None = None):
        """A new trial and its point (``fixed``: this point, e.g. a seed)."""
        if fixed is None and self._startup():
            fixed = self.job.space.sample(self.rng, self.job.budget_macs, self.job.params_budget)
        if fixed is not None:
            self.study.enqueue_trial(fixed)
        trial = self.study.ask()
        return trial, self.job.space.suggest(trial, self.job.budget_macs, self.job.params_budget)

    def _startup(self) -> bool:
        """Whether to draw the next point feasible by construction (``space.sample``): the
        sampler is still in its random start-up, and most of a space's volume usually lies
        over the budget. The sampler takes over afterwards."""
        job = self.job
        return (self.feasible < STARTUP.get(job.sampler, 0) and hasattr(job.space, "sample")
                and (job.budget_macs is not None or job.params_budget is not None))

    def report(self, trial, epoch: int, accuracy: float) -> bool:
        """Report an epoch; True when the pruner says stop."""
        if not self.prunes:
            return False
        trial.report(accuracy, epoch)
        return trial.should_prune()

    # -- telling ---------------------------------------------------------------------------
    def tell(self, trial, t: dict) -> None:
        """Tell how the stored trial ``t`` (asked here as ``trial``) ended."""
        from optuna.trial import TrialState

        self.known.add(t["number"])
        self.feasible += bool(t["feasible"])
        if t["state"] == "COMPLETE" or not t["feasible"]:
            self.study.tell(trial, self.values(t))
        else:
            self.study.tell(trial, state=TrialState.PRUNED if t["state"] == "PRUNED"
                            else TrialState.FAIL)

    def forget(self, trial) -> None:
        """Drop an asked trial that did not become a stored one."""
        from optuna.trial import TrialState

        self.study.tell(trial, state=TrialState.FAIL)

    def values(self, t: dict) -> list[float]:
        """The private objective vector of a stored trial; an over-budget point gets the
        worst quality (its constraint tells constrained samplers the rest)."""
        from nas import quality

        job = self.job
        worst = float("inf") if job.directions()[0] == "minimize" else 0.0
        quality = quality.metric(job.metric).value(t) if t["feasible"] else worst
        table = {"accuracy": quality, "macs": t.get("target_macs"),
                 "params": t.get("target_params"),
                 "latency": t.get("latency_ms") if t["feasible"] else INFEASIBLE_LATENCY_MS}
        values = [table[o] for o in job.objectives]
        missing = [o for o, v in zip(job.objectives, values) if v is None]
        if missing:
            raise RuntimeError(f"the evaluator returned no value for objective(s) {missing}")
        return [float(v) for v in values]

    def learn(self, trials: list[dict]) -> int:
        """Add the finished stored trials the study does not hold yet; returns how many."""
        new = [t for t in trials if t["state"] != "RUNNING" and t["number"] not in self.known
               and not t["interrupted"]]
        for t in new:
            frozen = frozen_trial(self.job, t, self.values(t) if t["state"] == "COMPLETE"
                                  or not t["feasible"] else None, private=True)
            self.study.add_trial(frozen)
            self.known.add(t["number"])
            self.feasible += bool(t["feasible"])
        return len(new)


def frozen_trial(job, t: dict, values: list[float] | None, private: bool = False):
    """An Optuna FrozenTrial for the stored trial ``t``: its params with their distributions
    (replayed through ``space.suggest``), values, constraints, per-epoch accuracy and (for
    the export) what the store knows about it as user attributes."""
    import optuna
    from optuna.trial import TrialState

    fixed = optuna.trial.FixedTrial(t["params"])
    job.space.suggest(fixed, job.budget_macs, job.params_budget)
    if t["state"] == "COMPLETE" or (private and not t["feasible"]):
        state = TrialState.COMPLETE
    else:
        state = TrialState.PRUNED if t["state"] == "PRUNED" else TrialState.FAIL
    if state == TrialState.COMPLETE and values is None:  # a metric missing: not a result
        state = TrialState.FAIL
    attrs = {} if private else {k: t[k] for k in (
        "number", "genotype_hash", "seed_name", "target_macs", "target_params", "accuracy",
        "val_loss", "train_loss", "proxy_score", "duplicate_of", "retry_of") if t.get(k) is not None}
    if not private:
        attrs = {("nas_number" if k == "number" else k): v for k, v in attrs.items()}
        if t.get("error"):
            attrs["error"] = t["error"].splitlines()[0][:500]
        if not t["feasible"]:
            attrs["outcome"] = "over budget"
    inter = {e["epoch"]: e["val_accuracy"] for e in t.get("epochs") or []
             if e.get("val_accuracy") is not None}
    return optuna.trial.create_trial(
        state=state, values=values if state == TrialState.COMPLETE else None,
        params=fixed.params, distributions=fixed.distributions, user_attrs=attrs,
        intermediate_values=inter if len(job.objectives) == 1 else None,
        constraints=fixed.constraints or None)


def rdb_storage(url: str):
    """Optuna RDB storage on ``url``; on SQLite its connections get the nas store's settings
    (WAL, synchronous=NORMAL, busy timeout), which Optuna does not set itself."""
    import optuna

    from nas.store import sqlite_connect, sqlite_path

    path = sqlite_path(url) if make_url(url).get_backend_name() == "sqlite" else None
    kwargs = {"creator": lambda: sqlite_connect(path)} if path is not None else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


#: Optuna's storage for each open store, reused by its exports.
_STORAGES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def export(job) -> int:
    """Bring Optuna's copy of the study (its RDB tables, same database) up to date with the
    store: each finished trial not there yet is added, COMPLETE with its objective values,
    PRUNED (stopped early; or over budget, with the constraint and ``outcome`` 'over
    budget'), or FAIL with its error. Returns the number of trials added. Idempotent and
    safe with several processes (under the store's lock)."""
    optuna = _quiet()
    store = job.store
    trials = [t for t in store.trials(job.study) if t["state"] != "RUNNING"]
    with store.lock("nas-optuna"):   # Optuna's schema creation is not safe to race
        storage = _STORAGES.get(store)
        if storage is None:           # its set-up (schema, version check) once per store
            storage = _STORAGES[store] = rdb_storage(store.url)
        try:
            study = optuna.create_study(study_name=job.study, storage=storage,
                                        directions=job.directions(), load_if_exists=True)
            if study.metric_names is None:
                study.set_metric_names(job.metric_names())
            sid = storage.get_study_id_from_name(job.study)
            have = _exported(storage, sid)
            new = _add_trials(storage, sid, job, [t for t in trials if t["number"] not in have])
        finally:  # close its connections now (it reconnects when used again)
            storage.engine.dispose()
    return new


def _exported(storage, study_id: int) -> set[int]:
    """The store numbers of the trials already in Optuna's copy of the study."""
    from optuna.storages._rdb import models

    with storage.scoped_session() as session:
        rows = (session.query(models.TrialUserAttributeModel.value_json)
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id,
                        models.TrialUserAttributeModel.key == "nas_number").all())
    return {json.loads(v) for v, in rows}


def _add_trials(storage, study_id: int, job, trials: list[dict]) -> int:
    """Write the stored ``trials`` into Optuna's tables in one transaction, with the store's
    start and end times. (``Study.add_trials`` takes one transaction and a query per param for
    each trial: about 25 ms a trial on SQLite, most of a run's fixed cost.) Returns how many."""
    if not trials:
        return 0
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from sqlalchemy import func

    with storage.scoped_session() as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        number = session.query(func.count(models.TrialModel.trial_id)).filter(
            models.TrialModel.study_id == study_id).scalar()
        for t in trials:
            f = frozen_trial(job, t, _export_values(job, t))
            row = models.TrialModel(number=number, study_id=study_id, state=f.state)
            row._datetime_start_utc, row._datetime_complete_utc = t["started_at"], t["finished_at"]
            number += 1
            row.params = [models.TrialParamModel(
                param_name=k, param_value=f.distributions[k].to_internal_repr(v),
                distribution_json=distribution_to_json(f.distributions[k]))
                for k, v in f.params.items()]
            row.values = [models.TrialValueModel(objective=i, value=stored, value_type=kind)
                          for i, (stored, kind) in enumerate(
                              models.TrialValueModel.value_to_stored_repr(v) for v in f.values or ())]
            row.user_attributes = [models.TrialUserAttributeModel(key=k, value_json=json.dumps(v))
                                   for k, v in f.user_attrs.items()]
            row.system_attributes = [models.TrialSystemAttributeModel(key=k, value_json=json.dumps(v))
                                     for k, v in f.system_attrs.items()]
            row.intermediate_values = [models.TrialIntermediateValueModel(
                step=step, intermediate_value=stored, intermediate_value_type=kind)
                for step, (stored, kind) in (
                    (step, models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v))
                    for step, v in f.intermediate_values.items())]
            session.add(row)
        session.commit()
    return len(trials)


def _export_values(job, t: dict) -> list[float] | None:
    if t["state"] != "COMPLETE":
        return None
    from nas import quality

    table = {"accuracy": quality.metric(job.metric).value(t), "macs": t.get("target_macs"),
             "params": t.get("target_params"), "latency": t.get("latency_ms")}
    values = [table[o] for o in job.objectives]
    return None if any(v is None for v in values) else [float(v) for v in values]
