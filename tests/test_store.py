"""nas.store: schema, the read contract, WAL/busy timeout, claims under concurrency, recovery."""
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys

import pytest

from nas.store import StoreError, TrialStore, normalize_url, worker_alive, worker_id

KEYS = {"number", "state", "params", "genotype", "genotype_hash", "seed_name", "target_params",
        "target_macs", "proxy_params", "proxy_macs", "accuracy", "latency_ms", "error",
        "started_at", "finished_at", "duration_s", "worker", "epochs"}


def _study(store, name="s", **kw):
    args = dict(space="tiny", budget_macs=1000, params_budget=None, objectives=["accuracy", "macs"],
                config={"epochs": 1})
    args.update(kw)
    return store.open_study(name, **args)


def _trial(store, number, state="COMPLETE", study="s", worker=None, **fields):
    slot = store.claim(study, None, worker or worker_id())
    store.start(slot, number, params={"w": number}, genotype="{}", genotype_hash=f"h{number}",
                target_macs=10 * number, target_params=number)
    if state != "RUNNING":
        store.finish(slot, state, **fields)
    return slot


def test_plain_path_becomes_sqlite_url_with_wal_and_busy_timeout(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    assert store.url == "sqlite:///" + str(tmp_path / "a.db")
    _study(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    raw = sqlite3.connect(tmp_path / "a.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"nas_studies", "nas_trials", "nas_epochs"} <= {
        r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_sqlalchemy_urls_are_accepted(tmp_path):
    mem = TrialStore("sqlite://")
    _study(mem)
    assert [s["name"] for s in mem.studies()] == ["s"]
    url = f"sqlite:///{tmp_path}/b.db"
    assert normalize_url(url) == url
    assert TrialStore(url).studies() == []
    with pytest.raises(StoreError, match="cannot parse storage URL"):
        normalize_url("nope://::")


def test_trial_dicts_follow_the_contract(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    assert _study(store) is False
    st = store.studies()[0]
    assert st["name"] == "s" and st["budget_macs"] == 1000 and st["objectives"] == ["accuracy", "macs"]
    assert st["config"] == {"epochs": 1} and st["created_at"] is not None
    slot = _trial(store, 0, "RUNNING")
    store.finish(slot, "COMPLETE", accuracy=0.75, latency_ms=3.5, proxy_macs=7,
                 epochs=[{"epoch": 2, "val_accuracy": 0.75, "train_loss": 0.5, "seconds": 1.0},
                         {"epoch": 1, "val_accuracy": 0.5, "train_loss": 1.0, "seconds": 1.0}])
    _trial(store, 1, "FAIL", error="RuntimeError: boom")
    t0, t1 = store.trials("s")
    assert KEYS <= set(t0)
    assert (t0["state"], t0["accuracy"], t0["latency_ms"], t0["proxy_macs"]) == ("COMPLETE", 0.75, 3.5, 7)
    assert [e["epoch"] for e in t0["epochs"]] == [1, 2]
    assert t0["params"] == {"w": 0} and t0["duration_s"] >= 0 and t0["finished_at"] >= t0["started_at"]
    assert (t1["state"], t1["error"], t1["accuracy"]) == ("FAIL", "RuntimeError: boom", None)


def test_reopening_a_study_checks_its_definition(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    _study(store)
    assert _study(store) is True
    with pytest.raises(StoreError, match=r"budget_macs 1000 \(now 2000\)"):
        _study(store, budget_macs=2000)
    with pytest.raises(StoreError, match="objectives"):
        _study(store, objectives=["accuracy"])
    assert len(store.studies()) == 1 and store.studies()[0]["budget_macs"] == 1000


def test_failed_write_rolls_back(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    _study(store)
    slot = _trial(store, 0, "RUNNING")
    with pytest.raises(Exception):
        store.finish(slot, "COMPLETE", epochs=[{"epoch": 1}, {"epoch": 1}])  # duplicate epoch row
    t = store.trials("s")[0]
    assert t["state"] == "RUNNING" and t["epochs"] == []


def test_claims_respect_the_limit_and_what_counts(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    _study(store)
    _trial(store, 0, "COMPLETE")
    _trial(store, 1, "PRUNED", feasible=False)        # over budget: not counted
    _trial(store, 2, "FAIL", interrupted=True)        # interrupted: retried, not counted
    _trial(store, 3, "FAIL")                          # a real failure counts
    _trial(store, 4, "PRUNED")                        # stopped early by a pruner counts
    assert store.count("s") == 3
    a = store.claim("s", 4, worker_id())
    assert a is not None and store.claim("s", 4, worker_id()) is None
    store.release(a)
    assert store.count("s") == 3 and store.claim("s", 4, worker_id()) is not None


def _claim_loop(url, n, out):
    store = TrialStore(url)
    got = 0
    while store.claim("s", n, worker_id()) is not None:
        got += 1
    out.put(got)


def test_parallel_processes_never_overshoot_the_limit(tmp_path):
    url = str(tmp_path / "a.db")
    _study(TrialStore(url))
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_claim_loop, args=(url, 40, q)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    assert sum(got) == 40 and TrialStore(url).count("s") == 40


def test_recover_fails_trials_of_dead_workers_only(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    _study(store)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    dead_worker = f"{worker_id().rpartition(':')[0]}:{dead}"
    live_worker = f"{worker_id().rpartition(':')[0]}:{os.getppid()}"
    assert not worker_alive(dead_worker) and worker_alive(live_worker)
    _trial(store, 0, "COMPLETE")
    _trial(store, 1, "RUNNING", worker=dead_worker)
    _trial(store, 2, "RUNNING", worker=live_worker)
    store.claim("s", None, dead_worker)                # a slot that never got a number
    recovered = store.recover("s")
    assert [t["number"] for t in recovered] == [1]
    states = {t["number"]: (t["state"], t["interrupted"]) for t in store.trials("s")}
    assert states == {0: ("COMPLETE", False), 1: ("FAIL", True), 2: ("RUNNING", False)}
    assert "interrupted" in store.trial("s", 1)["error"]
    assert store.count("s") == 2                       # 0 and the live 2; the orphan slot is gone


def test_unwritable_or_missing_locations_are_errors(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        TrialStore(tmp_path / "no" / "such" / "a.db")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="does not exist"):
        TrialStore(tmp_path / "file" / "a.db")
    with pytest.raises(StoreError, match="not writable"):
        TrialStore("/proc/nas-test.db")             # not creatable, even for root
    with pytest.raises(StoreError, match="no database"):
        TrialStore(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()
