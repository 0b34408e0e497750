"""python -m nas.calibrate on a tiny space (seconds), and its rank statistics."""
import json
import math

import pytest

from nas import calibrate
from nas.calibrate import kendall, rankdata, spearman
SMALL = "train_images=40,val_images=40,resolution=8,batch_size=20"


def test_rank_statistics_match_hand_computed_values():
    assert list(rankdata([3, 1, 2, 2])) == [4.0, 1.0, 2.5, 2.5]
    assert kendall([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # 6 pairs: 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)
    assert math.isnan(kendall([1, 1, 1], [1, 2, 3]))


def test_calibrate_runs_reports_and_resumes(tmp_path, tiny_space, capsys):
    out = tmp_path / "out"
    argv = ["--space", str(tiny_space), "--archs", "4", "--seeds", "2",
            "--candidate", f"small:{SMALL}", "--candidate", f"warm:{SMALL},warmup=0.2",
            "--reference", "train_images=400,val_images=40,resolution=8,batch_size=20,epochs=1",
            "--out", str(out), "--max-chance", "1"]
    assert calibrate.main(argv) == 0
    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * (1 + 2 * 2)             # reference once, two candidates x two seeds
    # each run records its worker's CPU seconds (the cost that load does not inflate)
    assert all(0 < r["cpu_seconds"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["archs_complete"] == 4
    table = {(r["candidate"], r["signal"]) for r in summary["rows"]}
    assert table == {(c, s) for c in ("small", "warm") for s in ("accuracy", "val_loss", "train_val_loss")}
    for r in summary["rows"]:
        assert -1 <= r["kendall"] <= 1 and r["kendall_ci"][0] <= r["kendall_ci"][1]
        assert r["image_passes"] == 40 and 0 <= r["at_chance"] <= 1
        runs = [x for x in rows if x["protocol_name"] == r["candidate"]]
        assert r["cpu_seconds"] == pytest.approx(sum(x["cpu_seconds"] for x in runs) / len(runs))
    assert summary["recommended"]["candidate"] in ("small", "warm")
    report = (out / "report.md").read_text()
    assert "Kendall" in report and "Recommendation" in report
    assert "| CPU s |" in report and "s per run (CPU " in report
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert calibrate.main(argv) == 0                   # resumed: nothing left to train
    assert "20 of 20 runs already" in capsys.readouterr().out
    assert len((out / "trials.jsonl").read_text().splitlines()) == 20
    assert "Reference seed-to-seed tau: not measured" in report
    # a second reference seed: only those runs are trained, and the reference's own noise
    # floor (seed 0 vs seed 1) is reported
    assert calibrate.main(argv + ["--reference-seeds", "2"]) == 0
    assert len((out / "trials.jsonl").read_text().splitlines()) == 24
    noise = json.loads((out / "summary.json").read_text())["reference"]["seed_kendall"]
    assert set(noise) == {"accuracy", "val_loss", "train_val_loss"}
    assert all(-1 <= v["kendall"] <= 1 or math.isnan(v["kendall"]) for v in noise.values())
    assert "Reference seed-to-seed tau (seed 0 vs seed 1" in (out / "report.md").read_text()


def test_reference_must_be_ten_times_the_candidates(tmp_path, tiny_space, capsys):
    argv = ["--space", str(tiny_space), "--candidate", f"small:{SMALL}",
            "--reference", "train_images=100,val_images=40,resolution=8", "--out", str(tmp_path)]
    assert calibrate.main(argv) == 2
    err = capsys.readouterr().err
    assert "under 10x candidate 'small'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", ["--candidate=x", "--candidate=reference:", "--reference=epochs=0",
                                 "--reference=foo=1"])
def test_bad_protocols_are_one_line_errors(tmp_path, capsys, bad):
    assert calibrate.main(["--space", "resnet_like", bad, "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_runs_are_keyed_without_the_signal_and_older_rows_keep_their_key(tmp_path):
    """A run is the same run whatever signal ranks it; a row written before a protocol field
    existed is read with that field's class default (new recipe options are off by default)."""
    from nas.evaluate.protocol import Protocol

    p = Protocol(train_images=100, val_images=50)
    assert calibrate._key("h", p, 0) == calibrate._key("h", p.with_(signal="val_loss"), 0)
    assert calibrate._key("h", p, 0) != calibrate._key("h", p.with_(label_smoothing=0.1), 0)
    old = {k: v for k, v in p.to_dict().items() if k not in ("transform", "label_smoothing")}
    (tmp_path / "trials.jsonl").write_text(json.dumps(
        {"key": "whatever form it had", "hash": "h", "protocol": old, "seed": 1,
         "accuracy": 0.5, "val_loss": 1.0, "seconds": 1.0}) + "\n" + '{"torn')
    runs = calibrate.load_runs(tmp_path / "trials.jsonl")
    assert list(runs) == [calibrate._key("h", p, 1)]


def test_cpu_seconds_average_only_the_runs_that_recorded_them():
    # trials.jsonl files written before runs recorded CPU seconds still report (n/a)
    assert math.isnan(calibrate._cpu([{"seconds": 3.0}]))
    assert calibrate._cpu([{"seconds": 3.0, "cpu_seconds": 2.0}, {"seconds": 5.0}]) == 2.0


def test_a_candidate_cut_short_is_reported_apart_on_its_own_architectures(tmp_path, tiny_space, capsys):
    """A candidate with fewer architectures done does not shrink the others' comparison: it
    gets its own table, next to the full candidates on the same architectures."""
    out = tmp_path / "out"
    ref = "train_images=400,val_images=40,resolution=8,batch_size=20,epochs=1"
    base = ["--space", str(tiny_space), "--archs", "5", "--no-seed-nets", "--reference", ref,
            "--out", str(out), "--max-chance", "1", "--candidate", f"small:{SMALL}"]
    assert calibrate.main(base) == 0
    archs = json.loads((out / "archs.json").read_text())
    # the second candidate trains on the first three architectures only (as if cut short)
    runs = []
    for i in range(3):
        for seed in (0, 1):
            p = calibrate.parse_protocol(f"{SMALL},lr=0.1")
            row = calibrate.run_one(archs[i]["genotype"], p.to_dict(), seed)
            runs.append({"key": "", "arch": i, "hash": archs[i]["hash"], "protocol_name": "hot",
                         "protocol": p.to_dict(), "seed": seed, **row})
    with (out / "trials.jsonl").open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in runs)
    assert calibrate.main([*base, "--candidate", f"hot:{SMALL},lr=0.1", "--report-only"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["archs_complete"] == 5
    assert {r["candidate"] for r in summary["rows"]} == {"small"}
    assert all(r["archs"] == 5 for r in summary["rows"])
    assert all(r["seed_kendall_ci"][0] <= r["seed_kendall_ci"][1] for r in summary["rows"])
    assert all(-1 <= r["kendall_one_seed"] <= 1 for r in summary["rows"])
    [part] = summary["partial"]
    assert part["candidate"] == "hot" and part["archs"] == [0, 1, 2]
    assert {(r["candidate"], r["archs"]) for r in part["rows"]} == {("hot", 3), ("small", 3)}
    assert summary["recommended"]["candidate"] == "small"
    assert "### Partial: hot (3 of 5 architectures done)" in (out / "report.md").read_text()


def test_a_larger_archs_extends_the_sample_and_another_request_is_refused(tmp_path, tiny_space, capsys):
    out = tmp_path / "out"
    base = ["--space", str(tiny_space), "--no-seed-nets", "--candidate", f"small:{SMALL}",
            "--reference", "train_images=400,val_images=40,resolution=8,batch_size=20,epochs=1",
            "--max-chance", "1", "--out", str(out)]
    assert calibrate.main([*base, "--archs", "3"]) == 0
    first = json.loads((out / "archs.json").read_text())
    assert calibrate.main([*base, "--archs", "5"]) == 0
    assert "9 of 15 runs already" in capsys.readouterr().out     # 3 archs x 3 runs were kept
    extended = json.loads((out / "archs.json").read_text())
    assert extended[:3] == first and len(extended) == 5
    before = (out / "archs.json").read_bytes()
    for other in (["--archs", "4"], ["--archs", "5", "--sample-seed", "1"]):
        assert calibrate.main([*base, *other]) == 2
        err = capsys.readouterr().err
        assert "holds a calibration of" in err and len(err.strip().splitlines()) == 1
    assert (out / "archs.json").read_bytes() == before
