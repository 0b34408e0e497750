"""nas.search: the loop (injected tiny space and evaluators), resume, failures, Ctrl-C, bad
inputs, and end-to-end runs of the real CLI (real space, real training, a killed subprocess)."""
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import pytest

from nas.blocks import classifier, conv_bn_act
from nas.builder import GraphBuilder
from nas.cost import Cost, count
from nas.genotype import Genotype
from nas.evaluate.protocol import DEFAULT as PROTOCOL
from nas.search import SearchConfig, main, pareto, run_search
from nas.store import StoreError, TrialStore

ROOT = Path(__file__).resolve().parents[1]
TINY_CLI = ["--space", "resnet_like", "--budget", "600MFLOPs", "--limit", "120", "--resolution",
            "16", "--batch-size", "32", "--workers", "1"]


@dataclass
class Seed:
    name: str
    params: dict
    cost: Cost
    fits: bool


class TinySpace:
    """A two-parameter conv net space (fast to build and count)."""

    name, path, input_shape, num_classes = "tiny", None, (3, 16, 16), 10
    params = ["width", "depth"]

    def build(self, p):
        b = GraphBuilder(self.input_shape, name="tiny")
        x = b.input
        for i in range(p["depth"]):
            with b.scope(f"l{i}"):
                x = conv_bn_act(b, x, p["width"], 3, 2 if i == 0 else 1)
        return b.build(classifier(b, x, self.num_classes), classifiers=["fc"])

    def suggest(self, trial, budget_macs=None, params_budget=None):
        p = {"width": trial.suggest_categorical("width", [4, 8, 16, 32]),
             "depth": trial.suggest_int("depth", 1, 3)}
        if budget_macs:
            trial.set_constraint("macs", count(self.build(p)).macs / budget_macs - 1)
        return p

    def seeds(self, budget_macs=None, params_budget=None):
        out = []
        for name, p in (("small", {"width": 4, "depth": 1}), ("big", {"width": 32, "depth": 3})):
            c = count(self.build(p))
            out.append(Seed(name, p, c, budget_macs is None or c.macs <= budget_macs))
        return out


class FakeEvaluator:
    """Accuracy grows with MACs; records every genotype it was asked to score."""

    def __init__(self, fail_on=None, exc=RuntimeError("boom")):
        self.calls, self.fail_on, self.exc = [], fail_on, exc

    def __call__(self, genotype, on_epoch):
        self.calls.append(genotype)
        if self.fail_on is not None and len(self.calls) in self.fail_on:
            raise self.exc
        acc = min(1.0, count(genotype).macs / 400_000)
        on_epoch(1, acc)
        return {"accuracy": acc, "epochs": [{"epoch": 1, "val_accuracy": acc, "train_loss": 1.0,
                                             "seconds": 0.0}]}


def _config(tmp_path, **kw):
    # the fake evaluators score accuracy, so these studies rank by it (whatever DEFAULT's signal)
    args = dict(space="tiny", budget="300K", trials=6, storage=str(tmp_path / "s.db"), study="t",
                workers=1, signal="accuracy")
    args.update(kw)
    return SearchConfig(**args)


def evaluated(trials):
    """COMPLETE trials that were really evaluated (repeats of an architecture reuse a result)."""
    return [t for t in trials if t["state"] == "COMPLETE" and t["duplicate_of"] is None]


def _optuna_states(db, study="t"):
    import optuna

    s = optuna.load_study(study_name=study, storage=f"sqlite:///{db}")
    return [t.state.name for t in s.get_trials(deepcopy=False)]


def test_loop_stores_every_trial_seeds_first_and_skips_over_budget(tmp_path):
    ev, lines = FakeEvaluator(), []
    result = run_search(_config(tmp_path), evaluator=ev, space=TinySpace(), out=lines.append)
    trials = TrialStore(tmp_path / "s.db").trials("t")
    done = [t for t in trials if t["state"] == "COMPLETE"]
    evaluated = [t for t in done if t["duplicate_of"] is None]
    assert len(evaluated) == 6 and result["summary"]["complete"] == 6
    assert result["summary"]["repeats"] == len(done) - 6
    assert trials[0]["seed_name"] == "small" and not any(t["seed_name"] == "big" for t in trials)
    assert len(ev.calls) == 6          # over-budget points and repeated architectures never train
    hashes = [t["genotype_hash"] for t in evaluated]
    assert len(set(hashes)) == len(hashes)
    by_number = {t["number"]: t for t in trials}
    for t in done:
        if t["duplicate_of"] is not None:  # an isomorphic net seen before: its result reused
            first = by_number[t["duplicate_of"]]
            assert (first["genotype_hash"], first["accuracy"]) == (t["genotype_hash"], t["accuracy"])
    space = TinySpace()
    for t in trials:
        c = count(space.build(t["params"]))
        assert (t["target_macs"], t["target_params"]) == (c.macs, c.params)
        assert t["feasible"] == (c.macs <= 300_000)
        assert t["state"] == ("COMPLETE" if t["feasible"] else "PRUNED")
        if t["feasible"]:
            g = Genotype.from_json(t["genotype"])
            assert g == space.build(t["params"]) and t["genotype_hash"] == g.canonical_hash()
        else:                                         # over budget: never built
            assert t["genotype"] is None and t["error"].startswith("over budget")
    assert all(t["epochs"][0]["val_accuracy"] == t["accuracy"] for t in evaluated)
    assert "RUNNING" not in _optuna_states(tmp_path / "s.db")
    assert len(_optuna_states(tmp_path / "s.db")) == len(trials)
    front = result["pareto"]
    assert front and all(a["target_macs"] < b["target_macs"] and a["accuracy"] < b["accuracy"]
                         for a, b in zip(front, front[1:]))
    assert any(line.startswith("Pareto front") for line in "\n".join(lines).splitlines())
    assert any("ETA" in line and "best" in line for line in lines)


def test_always_failing_evaluator_fails_trials_and_search_goes_on(tmp_path):
    ev = FakeEvaluator(fail_on=range(1, 100), exc=RuntimeError("boom"))
    result = run_search(_config(tmp_path, trials=4), evaluator=ev, space=TinySpace(), out=lambda s: None)
    trials = [t for t in TrialStore(tmp_path / "s.db").trials("t")
              if t["feasible"] and t["duplicate_of"] is None]
    assert len(trials) == 4 and len(ev.calls) == 4
    assert all(t["state"] == "FAIL" and t["error"].startswith("RuntimeError: boom") for t in trials)
    assert result["summary"]["failed"] == 4 and result["pareto"] == []
    assert set(_optuna_states(tmp_path / "s.db")) <= {"FAIL", "PRUNED"}  # PRUNED: over budget


def test_resume_continues_the_study_without_repeating_trials(tmp_path):
    run_search(_config(tmp_path, trials=3), evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)
    first = TrialStore(tmp_path / "s.db").trials("t")
    ev = FakeEvaluator()
    run_search(_config(tmp_path, trials=5), evaluator=ev, space=TinySpace(), out=lambda s: None)
    trials = TrialStore(tmp_path / "s.db").trials("t")
    assert trials[:len(first)] == first                     # nothing lost or rewritten
    assert len(evaluated(trials)) == 5 and len(ev.calls) == 2
    assert [t["seed_name"] for t in trials].count("small") == 1   # seed not queued again
    numbers = [t["number"] for t in trials]
    assert numbers == sorted(set(numbers))


def test_ctrl_c_leaves_a_consistent_store_and_the_trial_is_retried(tmp_path):
    ev = FakeEvaluator(fail_on={2}, exc=KeyboardInterrupt())
    result = run_search(_config(tmp_path), evaluator=ev, space=TinySpace(), out=lambda s: None)
    assert result["summary"]["interrupted"]
    trials = TrialStore(tmp_path / "s.db").trials("t")
    stopped = [t for t in trials if t["interrupted"]]
    assert len(stopped) == 1 and stopped[0]["state"] == "FAIL"
    assert "RUNNING" not in {t["state"] for t in trials}
    assert "RUNNING" not in _optuna_states(tmp_path / "s.db")
    run_search(_config(tmp_path), evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)
    trials = TrialStore(tmp_path / "s.db").trials("t")
    retry = [t for t in trials if t["retry_of"] == stopped[0]["number"]]
    assert len(retry) == 1 and retry[0]["params"] == stopped[0]["params"]
    assert retry[0]["state"] == "COMPLETE"
    assert len(evaluated(trials)) == 6


class Declining(FakeEvaluator):
    """Two epochs; later trials do worse at epoch 1, so the median pruner stops them."""

    def __call__(self, genotype, on_epoch):
        self.calls.append(genotype)
        acc = 1.0 / len(self.calls)
        on_epoch(1, acc)
        on_epoch(2, acc)
        return {"accuracy": acc}


def test_single_objective_reports_epochs_and_prunes(tmp_path):
    ev = Declining()
    run_search(_config(tmp_path, objectives=["accuracy"], trials=9, budget=None, sampler="random"),
               evaluator=ev, space=TinySpace(), out=lambda s: None)
    trials = TrialStore(tmp_path / "s.db").trials("t")
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["duplicate_of"] is None]
    assert len([t for t in trials if t["duplicate_of"] is None]) == 9 and pruned and all(t["number"] >= 5 for t in pruned)
    assert all(t["error"].startswith("pruned: epoch 1") for t in pruned)
    assert {"PRUNED", "COMPLETE"} == set(_optuna_states(tmp_path / "s.db"))


def test_reusing_a_study_name_with_other_settings_is_an_error(tmp_path):
    run_search(_config(tmp_path, trials=1), evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)
    before = TrialStore(tmp_path / "s.db").trials("t")
    for change in ({"budget": "200K"}, {"objectives": ["accuracy"]}, {"epochs": 3}):
        with pytest.raises(StoreError, match="different settings"):
            run_search(_config(tmp_path, **change), evaluator=FakeEvaluator(), space=TinySpace(),
                       out=lambda s: None)
    assert TrialStore(tmp_path / "s.db").trials("t") == before


def test_pareto_keeps_undominated_feasible_trials():
    def t(n, acc, macs, state="COMPLETE", feasible=True):
        return {"number": n, "accuracy": acc, "target_macs": macs, "state": state, "feasible": feasible}
    trials = [t(0, 0.5, 10), t(1, 0.4, 20), t(2, 0.7, 30), t(3, 0.9, 5, "FAIL"),
              t(4, 0.99, 40, feasible=False), t(5, 0.7, 25), t(6, None, 1)]
    assert [x["number"] for x in pareto(trials)] == [0, 5]


# ---------------------------------------------------------------- the real CLI
def _db_digest(path):
    """Studies and trials as stored (a file hash would change with WAL checkpoints)."""
    if not Path(path).exists():
        return None
    con = sqlite3.connect(path)
    rows = [con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("nas_studies", "nas_trials", "nas_epochs", "trials")]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def existing_db(tmp_path_factory):
    """A store holding one real (tiny) study, made by the real CLI."""
    path = tmp_path_factory.mktemp("cli") / "s.db"
    rc = main([*TINY_CLI, "--trials", "2", "--storage", str(path), "--study", "real",
               "--dashboard", str(path.parent / "dash.html")])
    assert rc == 0
    return path


def test_end_to_end_tiny_search_with_the_real_space_and_training(existing_db, capsys):
    trials = TrialStore(existing_db).trials("real")
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(done) == 2
    for t in done:
        assert 0.0 <= t["accuracy"] <= 1.0 and t["target_macs"] <= 600_000_000
        assert t["proxy_macs"] > 0 and t["epochs"] and t["epochs"][-1]["val_accuracy"] == t["accuracy"]
        g = Genotype.from_json(t["genotype"])
        assert count(g).macs == t["target_macs"]
    assert (existing_db.parent / "dash.html").stat().st_size > 10_000


@pytest.mark.parametrize("args, says", [
    (["--budget", "abc"], "cannot parse budget 'abc'"),
    (["--budget", "-1GFLOPs"], "budget must be positive"),
    (["--space", "resnet_lik"], "did you mean resnet_like"),
    (["--sampler", "tpee"], "unknown sampler 'tpee'"),
    (["--storage", "/proc/nas/s.db"], "does not exist"),
    (["--storage", "/proc/s.db"], "not writable"),
    (["--storage", "postgresql://127.0.0.1:1/nas"], "cannot open storage"),
    (["--dataset", "folder:/no/such/folder"], "/no/such/folder"),
    (["--objectives", "macs,accuracy"], "bad --objectives"),
    (["--budget", "100MFLOPs"], "cheapest architecture"),
    (["--budget", "2GFLOPs", "--study", "real"], "different settings"),
])
def test_bad_inputs_exit_2_with_one_line_and_leave_the_store_intact(existing_db, capsys, args, says):
    before = _db_digest(existing_db)
    argv = [*TINY_CLI, "--storage", str(existing_db), "--trials", "1", "--study", "other"]
    rc = main(argv + args)           # later flags win
    err = capsys.readouterr().err
    assert rc == 2, err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _db_digest(existing_db) == before


def test_bad_input_through_the_real_command(tmp_path):
    db = tmp_path / "s.db"
    p = subprocess.run([sys.executable, "-m", "nas.search", "--space", "resnet_like", "--budget",
                        "abc", "--storage", str(db)], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "cannot parse budget" in p.stderr and "Traceback" not in p.stderr
    assert not db.exists()


@pytest.mark.parametrize("args, says", [
    (["--study", "s" * 256], "study name is 256 characters long"),
    (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--backend", "ray", "--ray-address", "head-node"], "expected auto or HEAD_IP:PORT"),
])
def test_refused_before_anything_is_created(tmp_path, capsys, args, says):
    db = tmp_path / "new.db"
    t0 = time.monotonic()
    rc = main([*TINY_CLI, "--storage", str(db), "--trials", "1", *args])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - t0 < 30 and not db.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("marker", ["networkx", "nas.strategies", "nas.quality"])
def test_ctrl_c_while_the_command_imports_prints_one_line(tmp_path, marker):
    """SIGINT as soon as ``marker`` was imported (-X importtime says when): no traceback."""
    p = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "nas.search", "--space",
                          "resnet_like", "--storage", str(tmp_path / "s.db")], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if line.rstrip().endswith(" " + marker):
            p.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail(f"{marker} was never imported")
    rest = [line for line in p.stderr.read().splitlines() if not line.startswith("import time:")]
    p.wait(timeout=60)
    assert rest == ["interrupted"] and p.returncode == 130, rest
    assert not (tmp_path / "s.db").exists()


def _wait_for_running(db, proc, timeout=120):
    """Wait until the search runs a trial after finishing at least one; its number."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                done = con.execute("SELECT count(*) FROM nas_trials WHERE state='COMPLETE'").fetchone()[0]
                running = con.execute("SELECT number FROM nas_trials WHERE state='RUNNING' "
                                      "AND number IS NOT NULL").fetchall()
                con.close()
            except sqlite3.OperationalError:
                running, done = [], 0
            if done >= 1 and running:
                return running[0][0]
        time.sleep(0.02)
    raise AssertionError(f"search never ran a second trial: {proc.poll()}")


def test_resume_after_sigkill_mid_trial(tmp_path):
    db = tmp_path / "s.db"
    argv = [*TINY_CLI, "--trials", "3", "--storage", str(db), "--study", "k", "--dashboard",
            str(tmp_path / "d.html")]
    proc = subprocess.Popen([sys.executable, "-m", "nas.search", *argv], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = _wait_for_running(db, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = {t["number"]: t for t in TrialStore(db).trials("k")}
    assert before[killed]["state"] == "RUNNING"
    finished = {n: t for n, t in before.items() if t["state"] == "COMPLETE"}
    assert main(argv) == 0
    after = {t["number"]: t for t in TrialStore(db).trials("k")}
    for n, t in finished.items():                       # no finished trial repeated or lost
        assert after[n] == t
    assert after[killed]["state"] == "FAIL" and after[killed]["interrupted"]
    retry = [t for t in after.values() if t["retry_of"] == killed]
    assert len(retry) == 1 and retry[0]["params"] == before[killed]["params"]
    assert retry[0]["state"] == "COMPLETE"
    hashes = [t["genotype_hash"] for t in evaluated(after.values())]
    assert len(hashes) == 3 == TrialStore(db).count("k")
    assert "RUNNING" not in _optuna_states(db, "k")


@pytest.mark.slow
def test_parallel_workers_share_the_store(tmp_path):
    db = tmp_path / "s.db"
    rc = main([*TINY_CLI, "--trials", "4", "--workers", "2", "--storage", str(db), "--study", "w",
               "--dashboard", str(tmp_path / "d.html")])
    assert rc == 0
    trials = TrialStore(db).trials("w")
    workers = {t["worker"] for t in trials}
    assert len(evaluated(trials)) == 4 and len(workers) == 2


@pytest.mark.slow
def test_ctrl_c_on_parallel_workers_stops_cleanly_and_resumes(tmp_path):
    db = tmp_path / "s.db"
    argv = [*TINY_CLI, "--trials", "4", "--workers", "2", "--storage", str(db), "--study", "c",
            "--dashboard", str(tmp_path / "d.html")]
    proc = subprocess.Popen([sys.executable, "-m", "nas.search", *argv], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _wait_for_running(db, proc)
    os.killpg(proc.pid, signal.SIGINT)              # what Ctrl-C in a terminal sends
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    trials = TrialStore(db).trials("c")
    assert "RUNNING" not in {t["state"] for t in trials}
    assert "RUNNING" not in _optuna_states(db, "c")
    stopped = [t for t in trials if t["interrupted"]]
    assert stopped and all(t["state"] == "FAIL" for t in stopped)
    assert main(argv) == 0
    after = TrialStore(db).trials("c")
    assert len(evaluated(after)) == 4
    assert {t["number"] for t in stopped} <= {t["retry_of"] for t in after}


@pytest.mark.parametrize("sampler", ["nsga2", "random", "gp"])
def test_every_sampler_runs_within_the_budget(tmp_path, sampler):
    run_search(_config(tmp_path, sampler=sampler, trials=4), evaluator=FakeEvaluator(),
               space=TinySpace(), out=lambda s: None)
    trials = TrialStore(tmp_path / "s.db").trials("t")
    done = evaluated(trials)
    assert len(done) == 4 and all(t["target_macs"] <= 300_000 for t in done)


def test_train_evaluator_reports_val_loss_per_trial_and_per_epoch():
    from nas.search import TrainEvaluator

    c = SearchConfig(space="tiny", limit=120, resolution=16, epochs=2, device="cpu")
    ev = TrainEvaluator(c, TinySpace.input_shape, "cpu")
    seen = []
    out = ev(TinySpace().build({"width": 8, "depth": 1}), lambda e, a: seen.append(e))
    assert seen == [1, 2] and [e["epoch"] for e in out["epochs"]] == [1, 2]
    assert all(e["val_loss"] > 0 for e in out["epochs"])
    assert out["val_loss"] == out["epochs"][-1]["val_loss"]
    assert out["accuracy"] == out["epochs"][-1]["val_accuracy"]


def test_study_name_echoes_the_budget_as_typed():
    c = SearchConfig(space="x", budget="2 GFLOPs")
    assert c.study_name("resnet_like") == f"resnet_like-2GFLOPs-{PROTOCOL.signal}+macs"
    assert SearchConfig(space="x", budget="600M", signal="accuracy").study_name("s") == "s-600M-accuracy+macs"


def test_a_run_with_nothing_to_do_says_why_in_one_line(tmp_path):
    run_search(_config(tmp_path, trials=2), evaluator=FakeEvaluator(), space=TinySpace(),
               out=lambda s: None)
    lines, ev = [], FakeEvaluator()
    run_search(_config(tmp_path, trials=2, sampler="nsga2"), evaluator=ev, space=TinySpace(),
               out=lines.append)
    assert len(lines) == 1 and not ev.calls
    assert "already has 2 of 2 trials (it ran with sampler tpe); nothing to do" in lines[0]
    assert "--study" in lines[0] and "--trials" in lines[0]


def test_optuna_sees_over_budget_points_as_pruned_with_the_constraint_and_names(tmp_path):
    import optuna

    run_search(_config(tmp_path), evaluator=FakeEvaluator(), space=TinySpace(), out=lambda s: None)
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert study.metric_names == ["accuracy", "macs"]
    trials = {t["number"]: t for t in TrialStore(tmp_path / "s.db").trials("t")}
    exported = study.get_trials(deepcopy=False)
    assert sorted(ft.number for ft in exported) == list(range(len(trials)))
    assert sorted(ft.user_attrs["nas_number"] for ft in exported) == sorted(trials)

    def utc(d):
        return d.astimezone(timezone.utc).replace(tzinfo=None)
    for ft in exported:
        t = trials[ft.user_attrs["nas_number"]]
        assert ft.params == t["params"]
        assert (utc(ft.datetime_start), utc(ft.datetime_complete)) == (t["started_at"], t["finished_at"])
        if not t["feasible"]:
            assert ft.state.name == "PRUNED" and ft.values is None
            assert ft.user_attrs["outcome"] == "over budget" and ft.constraints["macs"] > 0
        elif t["state"] == "COMPLETE":
            assert ft.values == [t["accuracy"], t["target_macs"]]
