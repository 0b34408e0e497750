"""``python -m nas.search``: search a space under a FLOP budget, every trial stored, resumable.

    python -m nas.search --space resnet_like --budget 2GFLOPs

Re-running the same command resumes the study (trials left running by a killed run are
retried); several commands (or hosts) on the same study and storage share the work. The run
ends with the Pareto front (accuracy vs MACs), the database path and a dashboard. "FLOPs" in
budgets means multiply-accumulates (MACs), as in the papers (README, "Conventions").
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

from nas import cli
from nas.cost import human, parse_budget
from nas.errors import NasError
from nas.evaluate.protocol import DEFAULT as PROTOCOL
from nas import quality
from nas.strategies import OBJECTIVES, RunSummary, SearchJob

DEFAULT_STORAGE = "nas.db"
#: Evaluation settings that make accuracies incomparable: resuming with other values is an error.
EVAL_KEYS = ("dataset", "epochs", "resolution", "limit", "proxy", "batch_size", "lr",
             "val_images", "warmup", "label_smoothing", "transform", "precise_bn",
             "weight_average", "signal")
#: The values of evaluation settings that studies stored before the setting existed were
#: trained with (their validation split was 20% of the images: see :func:`legacy_config`).
LEGACY_EVAL = {"warmup": 0.0, "label_smoothing": 0.0, "transform": "none", "precise_bn": 0,
               "weight_average": 0.0, "signal": "accuracy"}
LEGACY_VAL_SHARE = 0.2


class SearchError(NasError):
    """A search setting that cannot work (bad objectives, timeout, worker count...)."""


@dataclass
class SearchConfig:
    """Every setting of a search, as plain data (the CLI's flags; evaluation defaults from
    :data:`nas.evaluate.protocol.DEFAULT`)."""

    space: str
    budget: str | None = None
    params_budget: str | None = None
    trials: int | None = 24
    timeout: float | None = None
    sampler: str = "tpe"
    objectives: list[str] = field(default_factory=lambda: ["accuracy", "macs"])
    epochs: int = PROTOCOL.epochs
    dataset: str = PROTOCOL.dataset
    resolution: int = PROTOCOL.resolution
    limit: int | None = PROTOCOL.images
    batch_size: int = PROTOCOL.batch_size
    lr: float = PROTOCOL.lr
    val_images: int | None = None     # of the `limit` images; None: the protocol's share
    warmup: float = PROTOCOL.warmup
    label_smoothing: float = PROTOCOL.label_smoothing
    transform: str = PROTOCOL.transform
    precise_bn: int = PROTOCOL.precise_bn
    weight_average: float = PROTOCOL.weight_average
    signal: str = PROTOCOL.signal
    proxy: str | None = None
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    seed: int = 0
    seeds: bool = True
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    threads: int = 1
    device: str = "auto"
    dashboard: str | None = None
    backend: str = "optuna"           # optuna | ray
    cpus_per_trial: float = 1.0       # --backend ray only
    gpus_per_trial: float = 0.0
    ray_address: str | None = None
    scheduler: str = "asha"

    def budget_macs(self) -> int | None:
        """The MAC budget (None: unconstrained)."""
        return parse_budget(self.budget) if self.budget is not None else None

    def params_limit(self) -> int | None:
        """The parameter budget (None: unconstrained)."""
        return parse_budget(self.params_budget) if self.params_budget is not None else None

    def metric(self) -> str:
        """The quality metric: the proxy's name, else the protocol's signal."""
        return self.proxy or self.signal

    def study_name(self, space_name: str) -> str:
        """``--study``, or space, budget as typed (spaces dropped) and objectives."""
        if self.study:
            return self.study
        budget = re.sub(r"\s+", "", self.budget) if self.budget is not None else "nobudget"
        objectives = "+".join(self.metric() if o == "accuracy" else o for o in self.objectives)
        return f"{space_name}-{budget}-{objectives}"

    def evaluation(self) -> dict:
        """The settings that define how a trial is scored."""
        return {k: getattr(self, k) for k in EVAL_KEYS}

    def val_split(self) -> dict:
        """The validation split as ``load_dataset`` keywords: ``val_images`` of the ``limit``
        images, or (None) the protocol's share of them (DEFAULT's val_images / images)."""
        if self.val_images is not None:
            return {"val_images": self.val_images}
        return {"val_fraction": PROTOCOL.val_fraction}

    def resolved_val_images(self) -> int | float | None:
        """The validation image count when it is known before loading (a share of all the
        images otherwise)."""
        if self.val_images is not None:
            return self.val_images
        return round(self.limit * PROTOCOL.val_fraction) if self.limit else PROTOCOL.val_fraction


# ---------------------------------------------------------------- evaluation
class TrainEvaluator:
    """Scores a genotype by proxy training on a dataset (or a zero-cost proxy), optionally
    measuring its latency at the target spec. Picklable: the dataset is loaded on first use
    in each process."""

    def __init__(self, config: SearchConfig, input_shape: tuple, device: str):
        self.config = config
        self.device = device
        self.input_shape = tuple(input_shape)
        self._dataset = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None}

    @property
    def dataset(self):
        if self._dataset is None:
            from nas.evaluate.data import load_dataset

            c = self.config
            self._dataset = load_dataset(c.dataset, resolution=c.resolution, seed=c.seed,
                                         limit=c.limit, **c.val_split())
        return self._dataset

    def __call__(self, genotype, on_epoch: Callable[[int, float], None]) -> dict:
        """Metrics of ``genotype`` (see :class:`nas.strategies.Evaluator`)."""
        c = self.config
        out: dict = {}
        if c.proxy:
            from nas.evaluate import proxies
            from nas.evaluate.train import proxy_genotype

            cost = count_cost(proxy_genotype(genotype, self.dataset))
            out.update(proxy_params=cost.params, proxy_macs=cost.macs,
                       proxy_score=proxies.score(c.proxy, genotype, self.dataset, seed=c.seed))
        else:
            from nas.evaluate.train import train

            r = train(genotype, self.dataset, epochs=c.epochs, batch_size=c.batch_size, lr=c.lr,
                      seed=c.seed, device=self.device, on_epoch=on_epoch, warmup=c.warmup,
                      label_smoothing=c.label_smoothing, transform=c.transform,
                      precise_bn=c.precise_bn, weight_average=c.weight_average)
            out.update(accuracy=r.accuracy, val_loss=r.val_loss,
                       train_loss=r.history[-1]["train_loss"],
                       proxy_params=r.proxy_params, proxy_macs=r.proxy_macs, epochs=r.history)
        if "latency" in c.objectives:
            from nas.evaluate.latency import measure_latency

            out["latency_ms"] = 1000 * measure_latency(genotype, input_shape=self.input_shape,
                                                       device=self.device)
        return out


def count_cost(genotype):
    from nas.cost import count

    return count(genotype)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; other names are checked by torch."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise SearchError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SearchError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return device


# ---------------------------------------------------------------- setup
def check_config(c: SearchConfig) -> None:
    """Raise NasError for settings that are wrong on their face (before anything is opened)."""
    from nas.strategies.optuna_backend import SAMPLERS

    c.budget_macs()
    c.params_limit()
    SAMPLERS.get(c.sampler)
    bad = [o for o in c.objectives if o not in OBJECTIVES]
    if bad or not c.objectives or c.objectives[0] != "accuracy" or len(set(c.objectives)) != len(c.objectives):
        raise SearchError(f"bad --objectives {','.join(c.objectives)!r}; use 'accuracy' or "
                          f"'accuracy,' followed by any of macs, params, latency (e.g. accuracy,macs)")
    for name, value, low in (("--trials", c.trials, 1), ("--epochs", c.epochs, 1),
                             ("--workers", c.workers, 1), ("--batch-size", c.batch_size, 2),
                             ("--threads", c.threads, 1)):
        if value is not None and value < low:
            raise SearchError(f"{name} must be >= {low}, got {value}")
    if c.timeout is not None and not c.timeout > 0:
        raise SearchError(f"--timeout must be positive seconds, got {c.timeout:g}")
    _check_protocol(c)
    if c.proxy:
        from nas.evaluate.proxies import PROXIES

        if c.proxy not in PROXIES:
            from nas.registry import closest

            near = closest(c.proxy, list(PROXIES)) or sorted(PROXIES)
            raise SearchError(f"unknown proxy {c.proxy!r}; use one of {', '.join(near)}")


def _check_protocol(c: SearchConfig) -> None:
    """The protocol settings, checked by the protocol itself (the CLI validates them too; this
    covers SearchConfig users)."""
    if c.val_images is not None and c.limit is not None and isinstance(c.val_images, int) \
            and c.val_images >= c.limit:
        raise SearchError(f"--val-images {c.val_images} must be under --limit {c.limit} "
                          "(the images used, train + val; the rest train)")
    given = {"val_images": c.val_images} if c.val_images is not None else {}
    try:
        PROTOCOL.with_(warmup=c.warmup, label_smoothing=c.label_smoothing,
                       transform=c.transform, precise_bn=c.precise_bn,
                       weight_average=c.weight_average, signal=c.signal, **given)
    except NasError as e:
        raise SearchError(str(e)) from None


def legacy_config(stored: dict) -> dict:
    """A stored study config with the settings it predates filled in with the values such
    studies were trained with (:data:`LEGACY_EVAL`; the 20% validation split as a count of
    the images used when that is known)."""
    out = {**LEGACY_EVAL, **stored}
    if "val_images" not in stored and stored.get("limit"):
        out["val_images"] = round(LEGACY_VAL_SHARE * stored["limit"])
    return out


def _comparable(evaluation: dict, c: "SearchConfig") -> dict:
    return {**evaluation, "val_images": c.resolved_val_images()}


def check_budget(space, c: SearchConfig) -> None:
    """Raise SearchError when even the cheapest point of the space breaks the budget."""
    if c.budget is None and c.params_budget is None or not hasattr(space, "complete_cheapest"):
        return
    cheapest = space.cost(space.complete_cheapest({}))
    from nas.strategies.driver import over_budget

    job = SearchJob("", space, c.budget_macs(), c.params_limit(), [], None, None)
    if over_budget(job, cheapest.macs, cheapest.params):
        raise SearchError(f"the cheapest architecture of space {space.name!r} has "
                          f"{_short(cheapest.macs)}MACs and {_short(cheapest.params)} params, over "
                          f"the budget; raise --budget/--params-budget")


def open_study(job: SearchJob, c: SearchConfig) -> bool:
    """Create the study in the store (queueing the space's seed architectures that fit, once)
    or check it matches; True when it already existed."""
    config = {**asdict(c), "space_name": job.space.name,
              "space_path": str(getattr(job.space, "path", "") or "")}
    seeds = [{"params": dict(s.params), "seed_name": s.name}
             for s in (job.space.seeds(job.budget_macs, job.params_budget) if c.seeds else [])
             if s.fits]
    existed = job.store.open_study(job.study, space=job.space.name, budget_macs=job.budget_macs,
                                   params_budget=job.params_budget, objectives=job.objectives,
                                   config=config, seeds=seeds)
    if existed:
        stored = job.store.study(job.study)["config"]
        then = SearchConfig(**{k: v for k, v in legacy_config(stored).items()
                               if k in {f.name for f in fields(SearchConfig)}})
        old = _comparable(then.evaluation(), then)
        diff = [f"{k} {old[k]!r} (now {v!r})" for k, v in _comparable(c.evaluation(), c).items()
                if old[k] != v]
        if diff:
            from nas.store import StoreError

            raise StoreError(f"study {job.study!r} was evaluated with different settings: "
                             f"{', '.join(diff)}; pass --study with a new name, or repeat them")
    return existed


# ---------------------------------------------------------------- running
def run_search(c: SearchConfig, *, evaluator=None, space=None, out=print) -> dict:
    """Run (or resume, or join) the search ``c`` in this process and its workers; returns a
    summary. ``evaluator`` and ``space`` replace the real ones (tests, benchmarks; with
    ``workers`` > 1 the evaluator must be picklable)."""
    from nas.store import check_name

    check_config(c)
    device = None
    if evaluator is None:
        device = resolve_device(c.device) if c.backend != "ray" else _ray_device(c)
    if space is None:
        from nas.spaces import load_space

        space = load_space(c.space)
    check_budget(space, c)
    check_name(c.study_name(space.name))
    if c.backend == "ray":
        from nas.strategies.ray_backend import check_options

        check_options(**_ray_options(c))
    if evaluator is None:
        _set_threads(c.threads)
        evaluator = TrainEvaluator(c, space.input_shape, device)
        evaluator.dataset  # noqa: B018 - a dataset that cannot load is an error before any write
    joined = False
    if c.backend == "ray" and c.ray_address:  # a cluster that cannot be joined: before any write
        from nas.strategies.ray_backend import connect

        joined = connect(c.ray_address)
    try:
        return _run(c, evaluator, space, out)
    finally:
        if joined:
            import ray

            ray.shutdown()


def _run(c: SearchConfig, evaluator, space, out) -> dict:
    from nas.store import TrialStore, worker_id
    from nas.strategies.driver import Driver

    store = TrialStore(c.storage)
    try:
        printer = Progress(c.trials, out)
        job = SearchJob(study=c.study_name(space.name), space=space, budget_macs=c.budget_macs(),
                        params_budget=c.params_limit(), objectives=list(c.objectives),
                        evaluator=evaluator, store=store, trials=c.trials, timeout=c.timeout,
                        sampler=c.sampler, seed=c.seed, worker=worker_id(), metric=c.metric(),
                        progress=printer.trial)
        existed = open_study(job, c)
        if existed and c.trials is not None and store.count(job.study) >= c.trials \
                and not store.queued(job.study):
            return printer.nothing(job, c)
        pool = None
        if c.backend == "optuna" and c.workers > 1:
            from nas.strategies.local import Pool

            pool = Pool(evaluator, c.workers, c.threads)  # children start while the study opens
        try:
            driver = Driver(job, parallel=c.workers if c.backend == "optuna" else 2)
            printer.start(job, existed, driver, c)
            t0 = time.monotonic()
            interrupted = False
            try:
                if c.backend == "ray":
                    from nas.strategies.ray_backend import run_ray

                    run_ray(driver, evaluator, **_ray_options(c))
                elif pool is None:
                    from nas.strategies.local import run_inline

                    run_inline(driver, evaluator)
                else:
                    from nas.strategies.local import run_pool

                    run_pool(driver, pool)
            except KeyboardInterrupt:
                interrupted = True
        finally:
            if pool is not None:
                pool.close()
        driver.close(interrupted=interrupted)
        return printer.finish(job, driver.summary, time.monotonic() - t0)
    finally:
        store.close()


def _ray_options(c: SearchConfig) -> dict:
    """Ray options: resources, cluster, scheduler."""
    return {"cpus_per_trial": c.cpus_per_trial, "gpus_per_trial": c.gpus_per_trial,
            "ray_address": c.ray_address, "scheduler": c.scheduler, "max_epochs": c.epochs,
            "max_concurrent": c.workers if c.workers > 1 else None}


def _ray_device(c: SearchConfig) -> str:
    """The device inside a Ray trial: 'auto' is cuda when the trial gets GPUs, else cpu."""
    from nas.strategies.ray_backend import trial_device

    return trial_device(c.device, c.gpus_per_trial)


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# ---------------------------------------------------------------- reporting
class Progress:
    """Prints one line per trained trial (trials done toward --trials, best so far, ETA);
    over-budget proposals and repeats are counted and summarised, not printed one by one."""

    def __init__(self, limit: int | None, out: Callable[[str], None]):
        self.limit, self.out = limit, out
        self.t0 = time.monotonic()
        self.trained = 0            # trained trials this run
        self.skipped = {"over budget": 0, "repeat": 0}
        self.last = time.monotonic()  # when the last line was printed
        self.best: tuple[float, int] | None = None
        self.metric = "accuracy"
        self.store = self.study = None

    def _best(self, t: dict) -> None:
        m = quality.metric(self.metric)
        if quality.usable(t, m) and (self.best is None or m.better(m.value(t), self.best[0])):
            self.best = (m.value(t), t["number"])

    def nothing(self, job: SearchJob, c: SearchConfig) -> dict:
        """Say in one line why this run does nothing; returns the summary."""
        stored = job.store.study(job.study)["config"]
        was = [f"{k} {stored.get(k)}" for k in ("sampler", "backend")
               if stored.get(k) not in (None, getattr(c, k))]
        was = f" (it ran with {' and '.join(was)})" if was else ""
        self.out(f"study {job.study!r} already has {job.store.count(job.study)} of {c.trials} "
                 f"trials{was}; nothing to do: raise --trials to continue it, or pass --study "
                 "NAME to start a new study")
        summary = RunSummary(stop_reason=f"{c.trials} trials reached")
        return {"study": job.study, "storage": job.store.url, "summary": asdict(summary),
                "seconds": 0.0, "pareto": pareto(job.store.trials(job.study), self.metric),
                "trials": len(job.store.trials(job.study))}

    def start(self, job: SearchJob, existed: bool, driver, c: SearchConfig) -> None:
        """Say what is being searched, where results go, and who else works on it."""
        self.metric, self.store, self.study = job.metric, job.store, job.study
        done = job.store.count(job.study, finished=True)  # not the ones other runs train now
        for t in job.store.trials(job.study):
            self._best(t)
        budget = f"budget {c.budget} ({_short(job.budget_macs)} MACs)" if job.budget_macs else "no budget"
        state = f"resumed: {done} trials done" if existed else "new"
        self.out(f"study {job.study!r} ({state}): space {job.space.name}, {budget}, objectives "
                 f"{'+'.join(job.metric_names())}, sampler {job.sampler}; database {job.store.display_url}")
        others = driver.run["others"]
        if others:
            self.out(f"  joining a running study: {len(others)} other run(s) work on it "
                     f"({', '.join(others[:4])}); trials are shared toward --trials {c.trials}")
        queued = job.store.queued(job.study)
        if driver.recovered or queued:
            self.out(f"  {len(queued)} architecture(s) queued (seeds, retries); "
                     f"{len(driver.recovered)} interrupted trial(s) of stopped runs marked failed")

    def trial(self, t: dict) -> None:
        """Count one recorded trial; print it when it was trained."""
        if not t["feasible"] or t.get("duplicate_of") is not None:
            self.skipped["over budget" if not t["feasible"] else "repeat"] += 1
            if time.monotonic() - self.last > 10:  # the sampler is busy re-proposing: say so
                self.last = time.monotonic()
                self.out(f"  sampler: {self.skipped['over budget']} over-budget proposals and "
                         f"{self.skipped['repeat']} repeats of evaluated architectures since the "
                         "last trained trial (not trained)")
            return
        if t.get("interrupted"):
            return
        self.trained += 1
        self._best(t)
        done = self.store.count(self.study, finished=True) if self.store else self.trained
        elapsed = time.monotonic() - self.t0
        of = f"/{self.limit}" if self.limit else ""
        v = quality.metric(self.metric).value(t)
        what = (f"{self.metric} {v:.4f}" if t["state"] == "COMPLETE" and v is not None
                else (t.get("error") or t["state"]).splitlines()[0][:90])
        macs = f"{human(t['target_macs'])}MACs" if t.get("target_macs") else "?"
        seed = f" [{t['seed_name']}]" if t.get("seed_name") else ""
        best = f"best {self.best[0]:.4f} (#{self.best[1]})" if self.best else "best -"
        eta = ""
        if self.limit:
            eta = f" | ETA {_clock(elapsed / self.trained * max(0, self.limit - done))}"
        skipped = ", ".join(f"{n} {k}" for k, n in self.skipped.items() if n)
        skipped = f" (+{skipped} not trained)" if skipped else ""
        self.skipped = dict.fromkeys(self.skipped, 0)
        self.last = time.monotonic()
        self.out(f"[{done}{of}] trial {t['number']} {t['state'].lower()}: {what}, {macs}{seed} "
                 f"| {best} | {_clock(elapsed)} elapsed{eta}{skipped}")

    def finish(self, job: SearchJob, summary: RunSummary, seconds: float) -> dict:
        """Print the summary, the Pareto table, the database path."""
        trials = job.store.trials(job.study)
        front = pareto(trials, self.metric)
        extra = ", ".join(f"{n} {what if n > 1 else one}" for n, what, one in (
            (summary.infeasible, "over-budget proposals", "over-budget proposal"),
            (summary.repeats, "repeats of evaluated architectures",
             "repeat of an evaluated architecture")) if n)
        self.out(f"\nthis run: {summary.complete + summary.failed + summary.pruned} trained trials "
                 f"in {_clock(seconds)} ({summary.complete} complete, {summary.failed} failed, "
                 f"{summary.pruned} pruned){'; not trained: ' + extra if extra else ''}"
                 f"{'; ' + summary.stop_reason if summary.stop_reason else ''}")
        done, counted = job.store.count(job.study, finished=True), job.store.count(job.study)
        running = f", {counted - done} training in other runs" if counted > done else ""
        self.out(f"study {job.study!r}: {done} trained trials in total{running}")
        self.out(pareto_table(front, self.metric))
        from nas.store import sqlite_path

        db = sqlite_path(job.store.url)
        self.out(f"database: {db if db else job.store.display_url}")
        return {"study": job.study, "storage": job.store.url, "summary": asdict(summary),
                "seconds": seconds, "pareto": front, "trials": len(trials)}


def pareto(trials: list[dict], metric: str = "accuracy") -> list[dict]:
    """The (``metric``, target MACs) Pareto front of :func:`nas.quality.front`, cheapest first."""
    return quality.front(trials, metric)


def pareto_table(front: list[dict], metric: str = "accuracy") -> str:
    """The Pareto front as a text table (MACs and params at the target spec)."""
    if not front:
        return "Pareto front: no completed trial yet"
    value = quality.metric(metric).value
    latency = any(t.get("latency_ms") is not None for t in front)
    rows = [f"Pareto front ({metric} vs MACs; MACs = multiply-accumulates at the target spec):",
            f"{'trial':>6} {metric:>10} {'MACs':>10} {'params':>10}"
            f"{'   latency' if latency else ''}  seed"]
    for t in front:
        lat = f"{t['latency_ms']:.1f}ms" if t.get("latency_ms") is not None else "-"
        rows.append(f"{t['number']:>6} {value(t):>10.4f} {human(t['target_macs']):>10} "
                    f"{human(t['target_params']):>10}{f' {lat:>9}' if latency else ''}  "
                    f"{t.get('seed_name') or ''}")
    return "\n".join(rows)


def render_dashboard(url: str, study: str, out_path: str | None) -> str:
    """Write the study's dashboard; returns a line saying where (or why not)."""
    try:
        from nas.dashboard import render
    except ImportError:
        return "dashboard: nas.dashboard.render is not available in this install; " \
               "the results are in the database"
    try:
        return f"dashboard: {Path(render(url, studies=[study], out_path=out_path)).resolve()}"
    except NasError as e:
        return f"dashboard: not written ({e})"


def _short(n: int) -> str:
    """2000000000 -> '2G', 1500000 -> '1.5M'."""
    text = human(n, 3)
    return re.sub(r"\.?0+([KMGT]?)$", r"\1", text) if "." in text else text


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ---------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from nas.cost import BUDGET_FORMS
    from nas.evaluate.protocol import SIGNALS
    from nas.evaluate.train import TRANSFORMS

    d = SearchConfig(space="")
    p = cli.ArgumentParser(prog="python -m nas.search", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", required=True, help="space name in search_spaces/ or a .yaml path")
    p.add_argument("--budget", help=f"MAC budget at the target spec, e.g. {BUDGET_FORMS}")
    p.add_argument("--params-budget", help="parameter budget, e.g. 25M")
    p.add_argument("--trials", type=cli.positive_int, default=d.trials, help="evaluated trials the study should reach")
    p.add_argument("--timeout", type=cli.duration, help="stop starting trials after this long (90s, 10m)")
    p.add_argument("--sampler", default=d.sampler, help="tpe, nsga2, nsga3, random, gp or qmc")
    p.add_argument("--objectives", default=",".join(d.objectives),
                   help="accuracy alone (under the budget) or accuracy with macs, params, latency")
    p.add_argument("--epochs", type=cli.positive_int, default=d.epochs, help="training epochs per trial")
    p.add_argument("--dataset", default=d.dataset, help="mnist, cifar10:PATH, folder:PATH")
    p.add_argument("--resolution", type=cli.resolution, default=d.resolution, help="proxy input size")
    p.add_argument("--limit", type=cli.image_limit,
                   help=f"images used (train + val); 0 = all (default: {PROTOCOL.train_images} "
                        "training images + the validation images)")
    p.add_argument("--batch-size", type=cli.int_range(2), default=d.batch_size,
                   help="images per step (>= 2: BatchNorm trains on batches)")
    p.add_argument("--lr", type=cli.positive_float, default=d.lr, help="learning rate (finite, > 0)")
    p.add_argument("--val-images", type=cli.positive_int,
                   help=f"of the --limit images, how many are held out for validation, the rest "
                        f"train (default: {PROTOCOL.val_images} of the default --limit, the "
                        f"same share of another)")
    p.add_argument("--warmup", type=cli.fraction, default=d.warmup,
                   help="fraction of the steps with a linear learning-rate ramp, in [0, 1)")
    p.add_argument("--label-smoothing", type=cli.fraction, default=d.label_smoothing,
                   help="label smoothing of the training loss, in [0, 1)")
    p.add_argument("--transform", choices=TRANSFORMS, default=d.transform,
                   help="resolution transform: none, or stem:K (the last K stem downsamplings at "
                        "stride 1, so later stages keep a spatial extent at proxy resolution)")
    p.add_argument("--precise-bn", type=cli.nonnegative_int, default=d.precise_bn,
                   help="training images the batch-norm statistics are recomputed on before "
                        "validating (0: keep the running averages)")
    p.add_argument("--weight-average", type=cli.fraction, default=d.weight_average,
                   help="validate the mean of the weights of the last FRACTION of the steps, "
                        "in [0, 1) (needs --precise-bn)")
    p.add_argument("--signal", choices=SIGNALS, default=d.signal,
                   help="what trials are ranked by: last-epoch validation accuracy or cross-entropy")
    p.add_argument("--proxy", help="score with a zero-cost proxy instead of training (e.g. naswot)")
    p.add_argument("--storage", default=d.storage, help="SQLAlchemy URL or SQLite file path")
    p.add_argument("--study", help="study name (default: from space, budget and objectives)")
    p.add_argument("--seed", type=cli.seed, default=d.seed, help="random seed, 0..2**32-1")
    p.add_argument("--no-seeds", action="store_true", help="do not start from the classic nets")
    p.add_argument("--workers", type=cli.count, default=d.workers, help="parallel worker processes")
    p.add_argument("--threads", type=cli.count, default=d.threads,
                   help="torch threads per worker (1 is fastest for small nets on a busy machine)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1")
    p.add_argument("--dashboard", help="dashboard HTML path (default dashboards/<study>.html)")
    p.add_argument("--backend", default=d.backend, choices=("optuna", "ray"),
                   help="optuna: trials in this process (--workers processes); ray: Ray Tune")
    p.add_argument("--cpus-per-trial", type=cli.positive_float, default=d.cpus_per_trial, help="ray: CPUs per trial")
    p.add_argument("--gpus-per-trial", type=cli.nonnegative_float, default=d.gpus_per_trial,
                   help="ray: GPUs per trial (fractional: 0.5 = two trials per GPU)")
    p.add_argument("--ray-address", help="ray: join this cluster (auto, or HEAD_IP:6379, from a "
                                         "cluster node); default: start a local one")
    p.add_argument("--scheduler", default=d.scheduler, choices=("asha", "hyperband", "none"),
                   help="ray: early stopping on per-epoch accuracy")
    return p


def _glue_negative_values(argv: list[str]) -> list[str]:
    """``--budget -1GFLOPs`` -> ``--budget=-1GFLOPs`` (argparse would read -1GFLOPs as a flag),
    so a negative budget gets the budget's own error message."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--budget", "--params-budget") and i + 1 < len(argv) \
                and argv[i + 1].startswith("-") and not argv[i + 1].startswith("--"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _limit(a) -> int | None:
    """--limit, by default the protocol's training images plus the validation images."""
    if a.limit is None:
        return PROTOCOL.train_images + (a.val_images if a.val_images is not None
                                        else PROTOCOL.val_images)
    return a.limit or None


def config_from_args(argv: Sequence[str] | None = None) -> SearchConfig:
    """Parse the command line into a :class:`SearchConfig`."""
    a = parser().parse_args(_glue_negative_values(list(sys.argv[1:] if argv is None else argv)))
    return SearchConfig(space=a.space, budget=a.budget, params_budget=a.params_budget,
                        trials=a.trials, timeout=a.timeout, sampler=a.sampler,
                        objectives=[o.strip() for o in a.objectives.split(",") if o.strip()],
                        epochs=a.epochs, dataset=a.dataset, resolution=a.resolution,
                        limit=_limit(a), batch_size=a.batch_size, lr=a.lr,
                        val_images=a.val_images, warmup=a.warmup,
                        label_smoothing=a.label_smoothing, transform=a.transform,
                        precise_bn=a.precise_bn, weight_average=a.weight_average,
                        signal=a.signal, proxy=a.proxy,
                        storage=a.storage, study=a.study, seed=a.seed, seeds=not a.no_seeds,
                        workers=a.workers, threads=a.threads, device=a.device, dashboard=a.dashboard,
                        backend=a.backend, cpus_per_trial=a.cpus_per_trial,
                        gpus_per_trial=a.gpus_per_trial, ray_address=a.ray_address,
                        scheduler=a.scheduler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; 0 on success, 2 on bad input, 130 when interrupted (SIGINT or SIGTERM)."""
    from nas.store import interrupt

    old = {sig: signal.signal(sig, interrupt)  # never in the middle of a database call
           for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(argv)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _main(argv: Sequence[str] | None) -> int:
    try:
        try:
            c = config_from_args(argv)
        except SystemExit as e:  # argparse: --help (0) or a usage error (2, one line printed)
            return int(e.code or 0)
        try:
            result = run_search(c)
        except NasError as e:
            return cli.fail(e)
        if not result["summary"]["interrupted"]:
            print(render_dashboard(result["storage"], result["study"], c.dashboard))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if result["summary"]["interrupted"]:
        print("interrupted: the store is consistent; re-run the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
