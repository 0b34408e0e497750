"""Ray Tune backend on a real local Ray cluster (2 CPUs, one per module): parallel trials,
ASHA early stopping, every trial in the store, resume, crashed workers."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cost import count
from nas.spaces import load_space
from nas.store import TrialStore, worker_id
from nas.strategies import SearchJob

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


class EpochEvaluator:
    """A cheap evaluator with real per-epoch reports: accuracy grows with the epoch and differs by
    architecture (more MACs, higher accuracy), each epoch takes ``seconds``; it can crash its
    worker process for architectures of a given depth."""

    def __init__(self, epochs: int = EPOCHS, seconds: float = 0.25, crash_depth1: int | None = None):
        self.epochs, self.seconds, self.crash_depth1 = epochs, seconds, crash_depth1

    def __call__(self, genotype, on_epoch) -> dict:
        cost = count(genotype)
        if self.crash_depth1 is not None and _depth1(genotype) == self.crash_depth1:
            os._exit(3)  # a hard crash (like the OOM killer): no exception reaches Python
        quality = cost.macs / (cost.macs + 2e9)  # in (0, 1), distinct per architecture
        history = []
        for epoch in range(1, self.epochs + 1):
            time.sleep(self.seconds)
            acc = quality * epoch / self.epochs
            history.append({"epoch": epoch, "val_accuracy": acc, "train_loss": 1 - acc,
                            "seconds": self.seconds})
            on_epoch(epoch, acc)
        return {"accuracy": history[-1]["val_accuracy"], "epochs": history}


def _depth1(genotype) -> int:
    """Blocks in stage 1 of a resnet_like genotype (from node names 'layer1.<i>.')."""
    return len({n.split(".")[1] for n in genotype.graph.nodes if str(n).startswith("layer1.")})


@pytest.fixture(scope="module")
def cluster():
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _job(store: TrialStore, study: str, trials: int, evaluator, *, seeds: bool = False) -> SearchJob:
    space = load_space("resnet_like")
    seed_points = [{"params": s.params, "seed_name": s.name} for s in space.seeds()] if seeds else []
    store.open_study(study, space=space.name, budget_macs=None, params_budget=None,
                     objectives=["accuracy"], config={}, seeds=seed_points)
    return SearchJob(study=study, space=space, budget_macs=None, params_budget=None,
                     objectives=["accuracy"], evaluator=evaluator, store=store, trials=trials,
                     sampler="random", seed=1, worker=worker_id())


def _run(job: SearchJob, tmp_path: Path, **options):
    from nas.strategies.driver import Driver
    from nas.strategies.ray_backend import run_ray

    driver = Driver(job, parallel=2)
    try:
        run_ray(driver, job.evaluator, cpus_per_trial=1, max_epochs=EPOCHS,
                ray_storage=str(tmp_path / "ray"), **options)
    finally:
        driver.close()
    return driver.summary


def test_parallel_asha_store_and_resume(cluster, tmp_path):
    store = TrialStore(tmp_path / "nas.db")
    job = _job(store, "ray", 8, EpochEvaluator())
    summary = _run(job, tmp_path)
    trials = store.trials("ray")
    assert summary.started == len(trials) == 8
    assert all(t["state"] in ("COMPLETE", "PRUNED") and t["feasible"] for t in trials)
    assert sorted(t["number"] for t in trials) == list(range(8))
    # two trials ran at once: some pair's [start, end] intervals overlap
    spans = sorted((t["started_at"], t["finished_at"]) for t in trials)
    assert any(b0 < a1 for (a0, a1), (b0, b1) in zip(spans, spans[1:]))
    # ASHA stopped weak trials before the last epoch; complete ones have every epoch
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned and all(len(t["epochs"]) < EPOCHS for t in pruned)
    assert all(len(t["epochs"]) == EPOCHS for t in trials if t["state"] == "COMPLETE")
    assert all(t["worker"] and t["genotype_hash"] for t in trials)

    # re-running with a higher limit continues the numbering; nothing is repeated or lost
    job = _job(store, "ray", 11, EpochEvaluator())
    summary = _run(job, tmp_path)
    again = store.trials("ray")
    assert summary.started == 3 and len(again) == 11
    assert sorted(t["number"] for t in again) == list(range(11))
    assert [t for t in again if t["number"] < 8] == trials
    # Optuna's copy of the study agrees with the store
    import optuna

    study = optuna.load_study(study_name="ray", storage=store.url)
    states = {t.user_attrs["nas_number"]: t.state.name for t in study.trials}
    assert states == {t["number"]: t["state"] for t in again}
    assert not (tmp_path / "ray").exists()      # no Ray experiment folders left behind


def test_crashed_worker_is_a_failed_trial(cluster, tmp_path):
    store = TrialStore(tmp_path / "nas.db")
    space = load_space("resnet_like")
    seed = next(s for s in space.seeds() if s.name == "resnet18")  # depth1 = 2 -> crashes
    job = _job(store, "crash", 3, EpochEvaluator(seconds=0.05, crash_depth1=2), seeds=True)
    _run(job, tmp_path, scheduler="none")
    trials = store.trials("crash")
    crashed = [t for t in trials if t["seed_name"] == "resnet18"]
    assert crashed and crashed[0]["state"] == "FAIL" and crashed[0]["params"] == seed.params
    assert "worker crashed" in crashed[0]["error"]
    assert len(trials) == 3 and all(t["state"] != "RUNNING" for t in trials)


@pytest.mark.parametrize("flags, message", [
    (["--cpus-per-trial", "0"], "--cpus-per-trial: must be a finite number > 0"),
    (["--device", "cuda"], "needs --gpus-per-trial > 0"),
])
def test_bad_ray_flags_exit_2_with_one_line(tmp_path, capsys, flags, message):
    from nas.search import main

    db = tmp_path / "nas.db"
    assert main(["--space", "resnet_like", "--backend", "ray", "--storage", str(db), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def _store_trials(db: Path) -> list[dict]:
    store = TrialStore(db)
    try:
        studies = store.studies()
        return store.trials(studies[0]["name"]) if studies else []
    finally:
        store.close()


@pytest.mark.slow
def test_cli_ray_search_survives_a_kill_and_resumes(tmp_path):
    """`python -m nas.search --backend ray` with real MNIST training: killed (driver and its
    local Ray cluster) while a trial trains, then re-run: the interrupted trial is failed and
    retried, nothing is repeated, the study reaches its trial count."""
    import signal

    db = tmp_path / "nas.db"
    cmd = [sys.executable, "-m", "nas.search", "--space", "resnet_like", "--budget", "2GFLOPs",
           "--backend", "ray", "--cpus-per-trial", "1", "--trials", "3", "--epochs", "2",
           "--limit", "400", "--storage", str(db), "--dashboard", str(tmp_path / "d.html")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(2)
            if db.exists() and any(t["state"] == "RUNNING" and t["genotype_hash"]
                                   for t in _store_trials(db)):
                break
        else:
            pytest.fail("no trial started within 300 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
        proc.wait()
    killed = [t["number"] for t in _store_trials(db) if t["state"] == "RUNNING"]
    assert killed

    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Pareto front" in done.stdout
    trials = _store_trials(db)
    assert not [t for t in trials if t["state"] == "RUNNING"]
    for n in killed:
        row = next(t for t in trials if t["number"] == n)
        assert row["state"] == "FAIL" and row["interrupted"]
        retry = [t for t in trials if t["retry_of"] == n]
        assert len(retry) == 1 and retry[0]["params"] == row["params"]
    # three trained trials (ASHA may stop some after epoch 1: PRUNED counts toward --trials)
    trained = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED") and t["feasible"]
               and t["duplicate_of"] is None]
    assert len(trained) == 3 and all(t["epochs"] for t in trained), \
        [(t["number"], t["state"], t["feasible"], t["duplicate_of"], t["error"]) for t in trials]
    assert all(0 <= t["accuracy"] <= 1 and len(t["epochs"]) == 2
               for t in trained if t["state"] == "COMPLETE")
    assert len({t["number"] for t in trials}) == len(trials)
