"""Ray Tune as an executor: each trial's genotype is evaluated as a Ray Tune trial, with
``cpus_per_trial`` / ``gpus_per_trial`` resources (fractional GPUs share a device) on this
machine or a cluster, and ASHA stopping weak trials on their per-epoch accuracy.

Tune does not own the trial life cycle: a Tune ``Searcher`` asks the run's
:class:`~nas.strategies.driver.Driver` for the next claimed trial, and a Tune ``Callback``
hands per-epoch results, ends, early stops and crashes back to it. Only the driver (in this
process) talks to the optimiser and the store, so seeds, the budget, repeats, trial
numbers, several commands on one study and resume behave as with local workers.

Resume: re-running the command resumes from the store; each run is a fresh Ray experiment
(``Tuner.restore`` re-runs the exact job it saved; the store holds everything), and its
folder is removed when the run ends (errors are in the store).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.errors import NasError

SCHEDULERS = ("asha", "hyperband", "none")
QUALITY = "nas_quality"    # per-epoch validation accuracy (ASHA's metric)
EPOCH = "nas_epoch"        # ASHA's time attribute; absent from the final report
FINAL = "nas_final"        # marks the trainable's last report (COMPLETE or FAIL)


class RayBackendError(NasError):
    """Ray settings that cannot work (resources larger than the cluster, bad scheduler...)."""


def check_options(*, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
                  ray_address: str | None = None, scheduler: str = "asha",
                  max_concurrent: int | None = None, **_: Any) -> None:
    """Raise RayBackendError for options that cannot work (before anything starts)."""
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
    if ray_address and ray_address not in ("auto", "local"):
        _probe(ray_address)


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise RayBackendError unless something listens at ``address`` (HOST:PORT): Ray's own
    connection attempt retries for minutes against an address where nothing listens."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayBackendError(f"--ray-address {address!r}: expected auto or HEAD_IP:PORT "
                              "(e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__ if not isinstance(e, socket.timeout) \
            else f"no answer within {timeout:g} s"
        raise RayBackendError(f"cannot reach the Ray cluster at {address}: {reason}; start it "
                              "(ray start --head) or check --ray-address") from None


# ------------------------------------------------------------------ worker side
def trainable(config: dict, *, evaluator, max_epochs: int | None) -> None:
    """Ray Tune function trainable: evaluate the genotype of ``config``, report each epoch
    (for ASHA) and a final result; an evaluator exception becomes a FAIL report."""
    from ray import tune

    from nas.genotype import Genotype
    from nas.strategies import error_text

    last = [time.perf_counter()]

    def on_epoch(epoch: int, accuracy: float) -> None:
        if max_epochs is not None and epoch >= max_epochs:
            return  # the last epoch arrives with the final report: ASHA never judges a finished trial
        now = time.perf_counter()
        tune.report({EPOCH: epoch, QUALITY: float(accuracy), "nas_seconds": now - last[0]})
        last[0] = now

    try:
        result = dict(evaluator(Genotype.from_json(config["genotype"]), on_epoch))
    except Exception as e:  # noqa: BLE001 - a failing architecture is data; the search goes on
        tune.report({FINAL: True, "nas_state": "FAIL", "nas_error": error_text(e), QUALITY: None})
        return
    tune.report({FINAL: True, "nas_state": "COMPLETE", "nas_result": result,
                 QUALITY: result.get("accuracy")})


# ------------------------------------------------------------------ driver side
def run_ray(driver, evaluator, *, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
            ray_address: str | None = None, scheduler: str = "asha", max_epochs: int | None = None,
            max_concurrent: int | None = None, ray_storage: str | None = None,
            reuse_actors: bool = True, reduction_factor: float = 2.0) -> None:
    """Evaluate the driver's proposals as Ray Tune trials until it proposes no more.
    Raises KeyboardInterrupt when Tune stopped early (Ctrl-C)."""
    check_options(cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                  ray_address=ray_address, scheduler=scheduler, max_concurrent=max_concurrent)
    from ray import tune

    started = connect(ray_address)
    root = ray_storage or _storage_root(driver.store.url)
    name = f"{_safe(driver.job.study)}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}"
    try:
        concurrent = _concurrency(cpus_per_trial, gpus_per_trial, max_concurrent)
        _check_picklable(evaluator)
        fn = tune.with_parameters(trainable, evaluator=evaluator, max_epochs=max_epochs)
        book: dict[str, Any] = {}
        tuner = tune.Tuner(
            tune.with_resources(fn, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
            tune_config=tune.TuneConfig(search_alg=_searcher(driver, book),
                                        scheduler=_scheduler(scheduler, max_epochs, reduction_factor),
                                        num_samples=-1, max_concurrent_trials=concurrent,
                                        reuse_actors=reuse_actors),
            run_config=tune.RunConfig(name=name, storage_path=root, verbose=0,
                                      callbacks=[_callback(driver, book)],
                                      failure_config=tune.FailureConfig(max_failures=0)))
        tuner.fit()
        if not driver.done:  # Tune returns early only when it was stopped (Ctrl-C)
            raise KeyboardInterrupt
    finally:
        shutil.rmtree(Path(root) / name, ignore_errors=True)
        try:
            os.rmdir(root)  # only when no other run uses it
        except OSError:
            pass
        if started:
            import ray

            ray.shutdown()


def _searcher(driver, book: dict):
    from ray.tune.search import Searcher

    class DriverSearcher(Searcher):
        """Hands Tune the driver's claimed trials; FINISHED when the driver is done."""

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True

        def suggest(self, trial_id: str):
            driver.poll()
            live = None if driver.done else driver.propose()
            if live is None:
                return None if driver.waiting() else Searcher.FINISHED
            book[trial_id] = live
            return {"genotype": live.genotype.to_json(), "number": live.number}

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
            pass  # the callback records it

        def save(self, checkpoint_path: str):
            raise NotImplementedError("state lives in the store")

        def restore(self, checkpoint_path: str):
            raise NotImplementedError("re-run the search command to resume")

        def __reduce__(self):  # Tune pickles its config; the live store stays in the driver
            return (_unpicklable, (type(self).__name__,))

    return DriverSearcher()


def _callback(driver, book: dict):
    from ray.tune import Callback

    class DriverCallback(Callback):
        """Hands Tune's trial events to the driver (runs in the driver process)."""

        def on_step_begin(self, iteration, trials, **info):
            driver.poll()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            live = book.get(trial.trial_id)
            if live is None:
                return
            live.worker = f"{result['hostname']}:{result['pid']}" if result.get("pid") else None
            if result.get(FINAL):
                live.final = result
            elif EPOCH in result:
                live.epochs.append({"epoch": int(result[EPOCH]), "val_accuracy": result[QUALITY],
                                    "seconds": result.get("nas_seconds")})

        def on_trial_complete(self, iteration, trials, trial, **info):
            live = book.pop(trial.trial_id, None)
            if live is None:
                return
            final, worker = live.final, live.worker
            if final is not None and final.get("nas_state") == "COMPLETE":
                driver.finish(live, final["nas_result"], worker=worker)
            elif final is not None:
                driver.finish(live, error=final.get("nas_error") or "the evaluator failed",
                              worker=worker)
            elif live.epochs:
                last = live.epochs[-1]
                driver.finish(live, {"epochs": live.epochs}, worker=worker,
                              pruned=f"stopped early by the scheduler after epoch {last['epoch']} "
                                     f"(accuracy {last['val_accuracy']:.4f})")
            else:
                driver.finish(live, error="the trial ended without a final report", worker=worker)

        def on_trial_error(self, iteration, trials, trial, **info):
            live = book.pop(trial.trial_id, None)
            if live is not None:
                driver.finish(live, error=f"worker crashed: {_error_text(trial)}",
                              worker=live.worker)

        def __reduce__(self):
            return (_unpicklable, (type(self).__name__,))

    return DriverCallback()


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


def _scheduler(name: str, max_epochs: int | None, reduction_factor: float):
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    if name == "none":
        return FIFOScheduler()
    # Asynchronous: no trial waits for a rung to fill. "hyperband" runs several brackets
    # (async Hyperband); synchronous HyperBand pauses trials, which needs checkpoints.
    return AsyncHyperBandScheduler(
        time_attr=EPOCH, metric=QUALITY, mode="max", max_t=max(max_epochs or 100, 1),
        grace_period=1, reduction_factor=reduction_factor,
        brackets=3 if name == "hyperband" else 1, stop_last_trials=False)


def _concurrency(cpus_per_trial: float, gpus_per_trial: float, cap: int | None) -> int:
    """Trials the cluster can run at once under the per-trial resources (or ``cap``)."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cpus_per_trial > cpus or gpus_per_trial > gpus:
        raise RayBackendError(
            f"a trial asks for {cpus_per_trial:g} CPU and {gpus_per_trial:g} GPU but the Ray "
            f"cluster has {cpus:g} CPU and {gpus:g} GPU; lower --cpus-per-trial/--gpus-per-trial")
    fit = int(cpus // cpus_per_trial)
    if gpus_per_trial > 0:
        fit = min(fit, int(round(gpus / gpus_per_trial, 6)))
    return max(1, min(fit, cap or fit))


def _storage_root(url: str) -> str:
    """Where Ray keeps a run's logs and error files while it runs: beside a SQLite
    database, else ``~/ray_results``."""
    from nas.store import sqlite_path

    db = sqlite_path(url)
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


def connect(address: str | None) -> bool:
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
