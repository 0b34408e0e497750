"""``python -m nas.sweep``: nas.search with the random sampler, no seeds, a -sweep study."""
from __future__ import annotations

import subprocess
import sys

import pytest

from nas.dashboard import compute as C
from nas.sweep import sweep_argv


def test_sweep_argv_fixes_sampler_seeds_and_names_the_study():
    out = sweep_argv(["--space", "resnet_like", "--budget", "600 MFLOPs", "--trials", "3"])
    assert out == ["--space", "resnet_like", "--budget", "600 MFLOPs", "--trials", "3",
                   "--sampler", "random", "--no-seeds", "--study", "resnet_like-600MFLOPs-sweep"]
    named = sweep_argv(["--space", "resnet_like", "--study", "mine", "--no-seeds"])
    assert named == ["--space", "resnet_like", "--study", "mine", "--sampler", "random", "--no-seeds"]
    assert sweep_argv(["--space", "vgg_like", "--sampler=random"])[-1] == "vgg_like-nobudget-sweep"


def test_sweep_refuses_another_sampler(capsys):
    with pytest.raises(SystemExit) as e:
        sweep_argv(["--space", "resnet_like", "--sampler", "tpe"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "drop --sampler tpe" in err


def test_sweep_cli_bad_space_is_one_line():
    r = subprocess.run([sys.executable, "-m", "nas.sweep", "--space", "nope", "--budget", "1G"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "unknown search space 'nope'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_sweep_study_is_a_random_sample_on_the_dashboard(tmp_path):
    db = tmp_path / "s.db"
    r = subprocess.run([sys.executable, "-m", "nas.sweep", "--space", "resnet_like", "--budget",
                        "600MFLOPs", "--trials", "2", "--limit", "64", "--resolution", "16",
                        "--workers", "1", "--storage", str(db), "--dashboard",
                        str(tmp_path / "d.html"), "--device", "cpu"],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    from nas.store import TrialStore
    store = TrialStore(db)
    (study,) = store.studies()
    trials = store.trials(study["name"])
    store.close()
    assert study["name"] == "resnet_like-600MFLOPs-sweep"
    kind = C.sample_kind(study, trials)
    assert kind["unbiased"] and "random sample" in kind["why"]
    assert not any(t.get("seed_name") for t in trials)
    assert "random sample of the space" in (tmp_path / "d.html").read_text()
