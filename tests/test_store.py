"""nas.store: schema, the read contract, WAL/busy timeout, atomic claims under concurrency on
SQLite and PostgreSQL (limit, numbers, repeats, the queue), runs, heartbeats and recovery."""
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest

import nas.store as store_module
from nas.store import StoreError, TrialStore, normalize_url, worker_alive, worker_id

KEYS = {"number", "state", "params", "genotype", "genotype_hash", "seed_name", "target_params",
        "target_macs", "proxy_params", "proxy_macs", "accuracy", "val_loss", "train_loss",
        "proxy_score", "latency_ms", "error", "interrupted", "feasible", "retry_of", "duplicate_of",
        "started_at", "finished_at", "duration_s", "worker", "epochs"}


def _study(store, name="s", **kw):
    args = dict(space="tiny", budget_macs=1000, params_budget=None, objectives=["accuracy", "macs"],
                config={"epochs": 1})
    args.update(kw)
    return store.open_study(name, **args)


def _claim(store, run, h, limit=None, study="s", **kw):
    return store.claim(study, run, limit, params={"h": h}, genotype="{}", genotype_hash=h,
                       target_params=1, target_macs=10, **kw)


def _trial(store, run, h, state="COMPLETE", **fields):
    c = _claim(store, run, h)
    if state != "RUNNING":
        store.finish(c.trial_id, state, **fields)
    return c


def test_plain_path_becomes_sqlite_url_with_wal_and_busy_timeout(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    assert store.url == "sqlite:///" + str(tmp_path / "a.db")
    _study(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    raw = sqlite3.connect(tmp_path / "a.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"nas_studies", "nas_runs", "nas_queue", "nas_trials", "nas_epochs"} <= {
        r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_urls_and_in_memory_sqlite_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/b.db"
    assert normalize_url(url) == url
    assert TrialStore(url).studies() == []
    with pytest.raises(StoreError, match="cannot parse storage URL"):
        normalize_url("nope://::")
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(StoreError) as e:
            TrialStore(memory)
        assert "in-memory SQLite" in str(e.value) and "\n" not in str(e.value)


def test_trial_dicts_follow_the_contract(storage_url):
    store = TrialStore(storage_url)
    assert _study(store) is False
    st = store.studies()[0]
    assert st["name"] == "s" and st["budget_macs"] == 1000 and st["objectives"] == ["accuracy", "macs"]
    assert st["config"] == {"epochs": 1} and st["created_at"] is not None
    run = store.join("s")["id"]
    c = _trial(store, run, "a", "RUNNING")
    assert (c.status, c.number) == ("new", 0)
    store.finish(c.trial_id, "COMPLETE", accuracy=0.75, val_loss=0.6, latency_ms=3.5, proxy_macs=7,
                 epochs=[{"epoch": 2, "val_accuracy": 0.75, "val_loss": 0.6, "train_loss": 0.5,
                          "seconds": 1.0},
                         {"epoch": 1, "val_accuracy": 0.5, "val_loss": 0.9, "train_loss": 1.0,
                          "seconds": 1.0}])
    _trial(store, run, "b", "FAIL", error="RuntimeError: boom")
    t0, t1 = store.trials("s")
    assert KEYS <= set(t0)
    assert (t0["state"], t0["accuracy"], t0["val_loss"], t0["latency_ms"], t0["proxy_macs"]) == \
        ("COMPLETE", 0.75, 0.6, 3.5, 7)
    assert [(e["epoch"], e["val_loss"]) for e in t0["epochs"]] == [(1, 0.9), (2, 0.6)]
    assert t0["params"] == {"h": "a"} and t0["duration_s"] >= 0 and t0["finished_at"] >= t0["started_at"]
    assert (t1["state"], t1["error"], t1["accuracy"]) == ("FAIL", "RuntimeError: boom", None)
    store.close()


def test_reopening_a_study_checks_its_definition_and_queues_seeds_once(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    seeds = [{"params": {"w": 1}, "seed_name": "one"}, {"params": {"w": 2}, "seed_name": "two"}]
    assert _study(store, seeds=seeds) is False
    assert _study(store, seeds=seeds) is True
    assert [q["seed_name"] for q in store.queued("s")] == ["one", "two"]
    with pytest.raises(StoreError, match=r"budget_macs 1000 \(now 2000\)"):
        _study(store, budget_macs=2000)
    with pytest.raises(StoreError, match="objectives"):
        _study(store, objectives=["accuracy"])
    assert len(store.studies()) == 1 and store.studies()[0]["budget_macs"] == 1000


def test_failed_write_rolls_back(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    _study(store)
    c = _trial(store, store.join("s")["id"], "a", "RUNNING")
    with pytest.raises(Exception):
        store.finish(c.trial_id, "COMPLETE", epochs=[{"epoch": 1}, {"epoch": 1}])  # duplicate epoch row
    t = store.trials("s")[0]
    assert t["state"] == "RUNNING" and t["epochs"] == []


def test_claims_respect_the_limit_what_counts_and_repeats(tmp_path):
    store = TrialStore(tmp_path / "a.db")
    _study(store)
    run = store.join("s")["id"]
    _trial(store, run, "a", "COMPLETE", accuracy=0.5)
    store.record_over_budget("s", run, params={}, target_params=1, target_macs=10**6,
                             error="over budget")                        # not counted
    _trial(store, run, "b", "FAIL", interrupted=True)                    # interrupted: not counted
    _trial(store, run, "c", "FAIL")                                      # a real failure counts
    _trial(store, run, "d", "PRUNED")                                    # pruned counts
    running = _trial(store, run, "e", "RUNNING")
    assert store.count("s") == 4 and store.count("s", finished=True) == 3
    done = _claim(store, run, "a", limit=4)                              # a finished repeat
    assert done.status == "repeat" and done.owner["number"] == 0
    assert store.trials("s")[-1]["accuracy"] == 0.5 and store.trials("s")[-1]["duplicate_of"] == 0
    waiting = _claim(store, run, "e", limit=4)                           # repeat of a RUNNING one
    assert waiting.status == "repeat" and store.resolve_repeat(waiting.trial_id) is None
    assert _claim(store, run, "f", limit=4).status == "full"
    store.finish(running.trial_id, "COMPLETE", accuracy=0.9)
    assert store.resolve_repeat(waiting.trial_id)["accuracy"] == 0.9
    assert _claim(store, run, "f", limit=5).status == "new" and store.count("s") == 5
    numbers = [t["number"] for t in store.trials("s")]
    assert numbers == list(range(len(numbers)))


def _claimer(url, n, out):
    store = TrialStore(url)
    run = store.join("s")["id"]
    got = []
    while True:
        c = _claim(store, run, f"{os.getpid()}-{len(got)}", limit=n)
        if c.status == "full":
            break
        got.append(c.number)
    store.close()
    out.put(got)


def _race(target, args, n=5):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, q)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return got


def test_racing_processes_never_overshoot_the_limit(storage_url):
    _study(TrialStore(storage_url))
    got = _race(_claimer, (storage_url, 40))
    numbers = sorted(n for g in got for n in g)
    assert numbers == list(range(40)) and TrialStore(storage_url).count("s") == 40


def _same_arch(url, out):
    store = TrialStore(url)
    run = store.join("s")["id"]
    out.put(_claim(store, run, "same", limit=10).status)
    store.close()


def test_one_architecture_is_trained_once_by_racing_processes(storage_url):
    _study(TrialStore(storage_url))
    assert sorted(_race(_same_arch, (storage_url,))) == ["new"] + ["repeat"] * 4
    assert TrialStore(storage_url).count("s") == 1


def _take_queued(url, out):
    store = TrialStore(url)
    run = store.join("s")["id"]
    taken = []
    for q in store.queued("s"):
        c = _claim(store, run, f"q{q['id']}", queue_id=q["id"], seed_name=q["seed_name"])
        if c.status == "new":
            taken.append(q["seed_name"])
    out.put(taken)
    store.close()


def test_each_queued_point_is_taken_once(storage_url):
    seeds = [{"params": {"w": i}, "seed_name": f"seed{i}"} for i in range(12)]
    _study(TrialStore(storage_url), seeds=seeds)
    got = _race(_take_queued, (storage_url,))
    taken = sorted(n for g in got for n in g)
    assert taken == sorted(s["seed_name"] for s in seeds) and TrialStore(storage_url).queued("s") == []


def _open_fresh(url, out):
    try:
        store = TrialStore(url)
        store.open_study("s", space="tiny", budget_macs=None, params_budget=None,
                         objectives=["accuracy"], config={},
                         seeds=[{"params": {"w": 1}, "seed_name": "one"}])
        run = store.join("s")
        from nas.strategies import SearchJob
        from nas.strategies.optuna_backend import export

        export(SearchJob("s", _NoSpace(), None, None, ["accuracy"], None, store))
        out.put(("ok", run["index"]))
    except Exception as e:  # noqa: BLE001 - reported to the test
        out.put(("error", f"{type(e).__name__}: {e}"))


class _NoSpace:
    def suggest(self, trial, *a):
        return {}


@pytest.mark.slow
def test_processes_creating_one_store_and_study_at_once_do_not_collide(storage_url):
    got = _race(_open_fresh, (storage_url,))
    assert [g[0] for g in got] == ["ok"] * 5, got
    assert sorted(g[1] for g in got) == [0, 1, 2, 3, 4]       # distinct run indices
    assert len(TrialStore(storage_url).queued("s")) == 1       # seeds queued once


def test_recovery_fails_trials_of_dead_runs_only_and_queues_retries(storage_url, monkeypatch):
    store = TrialStore(storage_url)
    _study(store)
    host = worker_id().rpartition(":")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    assert not worker_alive(f"{host}:{dead}") and worker_alive(f"{host}:{os.getppid()}")
    assert worker_alive("elsewhere:1") is None
    runs = {w: store.join("s", w)["id"] for w in (f"{host}:{dead}", f"{host}:{os.getppid()}",
                                                  "elsewhere:1")}
    _trial(store, runs[f"{host}:{dead}"], "done", "COMPLETE", accuracy=0.5)
    _trial(store, runs[f"{host}:{dead}"], "killed", "RUNNING")
    _trial(store, runs[f"{host}:{os.getppid()}"], "live", "RUNNING")
    _trial(store, runs["elsewhere:1"], "remote", "RUNNING")
    assert [t["number"] for t in store.recover("s")] == [1]      # the remote run beats recently
    states = {t["params"]["h"]: (t["state"], t["interrupted"]) for t in store.trials("s")}
    assert states == {"done": ("COMPLETE", False), "killed": ("FAIL", True),
                      "live": ("RUNNING", False), "remote": ("RUNNING", False)}
    assert [(q["params"], q["retry_of"]) for q in store.queued("s")] == [({"h": "killed"}, 1)]
    real_now = store_module._now
    monkeypatch.setattr(store_module, "_now", lambda: real_now() + timedelta(seconds=60))
    assert [t["number"] for t in store.recover("s")] == [3]      # its heartbeat went stale
    assert store.count("s") == 2                                 # done and live
    store.close()


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
