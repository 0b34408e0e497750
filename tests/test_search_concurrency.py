"""Several search commands (or workers) on one study, and stopping them: the real CLI in
subprocesses on SQLite and on a real PostgreSQL server (NAS_TEST_POSTGRES_URL)."""
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from nas.store import TrialStore

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "nas.search", "--space", "resnet_like", "--budget", "600MFLOPs",
       "--limit", "120", "--resolution", "16", "--batch-size", "32"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cmd(url, study, trials, workers=1, *extra):
    return [*CLI, "--storage", url, "--study", study, "--trials", str(trials),
            "--workers", str(workers), "--dashboard", os.devnull + ".html", *extra]


def _start(cmd, **kw):
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def check_study(url, study, trials):
    """The invariants of a finished study: ``trials`` trained trials, no trial number or queued
    point taken twice, no architecture trained twice, nothing RUNNING, Optuna's copy complete."""
    store = TrialStore(url)
    rows = store.trials(study)
    trained = [t for t in rows if t["feasible"] and t["duplicate_of"] is None
               and not t["interrupted"]]
    assert store.count(study) == len(trained) == trials
    numbers = [t["number"] for t in rows]
    assert len(numbers) == len(set(numbers))
    hashes = Counter(t["genotype_hash"] for t in trained)
    assert max(hashes.values()) == 1, hashes                 # no architecture trained twice
    seeds = Counter(t["seed_name"] for t in trained if t["seed_name"])
    assert not seeds or max(seeds.values()) == 1, seeds     # each seed trained once
    assert not [t for t in rows if t["state"] == "RUNNING"]
    assert store.queued(study) == [] or store.count(study) >= trials
    import optuna

    exported = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    assert sorted(t.user_attrs["nas_number"] for t in exported) == numbers
    assert {t.state.name for t in exported} <= {"COMPLETE", "PRUNED", "FAIL"}
    store.close()
    return rows


@pytest.mark.slow
def test_four_commands_on_one_study(storage_url):
    procs = [_start(_cmd(storage_url, "four", 8)) for _ in range(4)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert sum("joining a running study" in out for out, _ in outs) >= 1
    check_study(storage_url, "four", 8)
    store = TrialStore(storage_url)
    with store.engine.connect() as conn:
        indices = [r[0] for r in conn.exec_driver_sql(
            "SELECT index FROM nas_runs ORDER BY id".replace("index", '"index"'))]
    assert sorted(indices) == [0, 1, 2, 3]                  # each process its own sampler seed


@pytest.mark.slow
def test_four_workers_in_one_command(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    p = _start(_cmd(url, "w4", 8, 4))
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
    rows = check_study(url, "w4", 8)
    assert len({t["worker"] for t in rows if t["duplicate_of"] is None and t["feasible"]}) >= 2


def _running(url, study, proc, timeout=300, running=1):
    """Wait until ``study`` has a finished trial and ``running`` RUNNING ones."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            store = TrialStore(url)
            rows = store.trials(study)
            store.close()
        except Exception:  # noqa: BLE001 - not created yet
            rows = []
        if sum(t["state"] == "RUNNING" for t in rows) >= running \
                and any(t["state"] == "COMPLETE" for t in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError("no trial ran")


@pytest.mark.slow
def test_sigterm_to_the_main_process_stops_the_run_within_10s(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    p = _start(_cmd(url, "term", 30, 2))
    _running(url, "term", p)
    from datetime import datetime, timedelta, timezone

    sent = datetime.now(timezone.utc).replace(tzinfo=None)
    p.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 10
    assert p.returncode == 130 and "Traceback" not in err, err
    rows = TrialStore(url).trials("term")
    assert not [t for t in rows if t["state"] == "RUNNING"]
    assert all(t["started_at"] < sent + timedelta(seconds=0.5) for t in rows)  # none started after
    assert all(t["state"] == "FAIL" and t["interrupted"] for t in rows if t["error"] and
               "interrupted" in t["error"])


def _workers(pid):
    """The worker processes of search process ``pid`` (not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in path.read_text().split()] if path.exists() else []
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.slow
def test_a_killed_worker_is_noticed_within_10s(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    p = _start(_cmd(url, "wk", 8, 2, "--limit", "1000"))
    _running(url, "wk", p, running=2)                        # both workers busy
    victim = _workers(p.pid)[0]
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        rows = TrialStore(url).trials("wk")
        dead = [t for t in rows if t["error"] and f"worker process {victim} died" in t["error"]]
        if dead:
            break
        time.sleep(0.1)
    else:
        p.kill()
        raise AssertionError("the dead worker's trial was not recorded within 10 s")
    assert dead[0]["state"] == "FAIL" and "exit code -9" in dead[0]["error"]
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    check_study(url, "wk", 8)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_loses_and_repeats_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    rng = random.Random(12)
    finished: dict = {}
    for _ in range(5):
        p = _start(_cmd(url, "k9", 10, 2), start_new_session=True)
        time.sleep(rng.uniform(4, 14))
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        rows = TrialStore(url).trials("k9") if Path(tmp_path / "s.db").exists() else []
        for t in rows:
            if t["state"] != "RUNNING":
                if t["number"] in finished:                  # a finished trial never changes
                    assert finished[t["number"]] == t
                finished[t["number"]] = t
    p = _start(_cmd(url, "k9", 10, 2))
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    rows = check_study(url, "k9", 10)
    by_number = {t["number"]: t for t in rows}
    for n, t in finished.items():
        assert by_number[n] == t
    for t in rows:                          # each interrupted trial is retried at most once
        if t["interrupted"] and t["duplicate_of"] is None:
            assert len([r for r in rows if r["retry_of"] == t["number"]]) <= 1


@pytest.fixture
def ray_cluster(tmp_path):
    """A local Ray cluster of 2 CPUs started with ``ray start --head --block`` in its own
    process group (stopped by killing that group: never ``ray stop``, which stops every
    cluster of the machine); yields its address."""
    pytest.importorskip("ray")
    import shutil
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import tempfile

    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    log = open(tmp_path / "ray.log", "w")
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--num-cpus", "2",
                             "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--include-dashboard", "false", "--disable-usage-stats",
                             "--temp-dir", temp],
                            env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, (tmp_path / "ray.log").read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not listen within 120 s"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)   # `ray start --block` stops what it started
            head.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_three_ray_commands_on_one_study(storage_url, ray_cluster):
    """`--backend ray` commands joining one cluster and one study share the work like local
    ones: each exits 0, the trial total is respected, no architecture is trained twice
    (repeats reuse the result), nothing is left RUNNING."""
    cmd = _cmd(storage_url, "ray3", 6, 1, "--backend", "ray", "--ray-address", ray_cluster,
               "--epochs", "1")
    procs = [_start(cmd) for _ in range(3)]
    outs = [p.communicate(timeout=1200) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert sum("joining a running study" in out for out, _ in outs) >= 1
    rows = check_study(storage_url, "ray3", 6)
    assert len({t["worker"] for t in rows}) >= 2            # more than one driver recorded trials
