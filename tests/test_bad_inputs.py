"""Bad input at every edge: the five CLIs and space files.

Every case must end with exit status 2, exactly one line on stderr, no traceback, nothing on
stdout, the study database unchanged byte for byte and no file left in the working directory.
Cases run in-process through each CLI's ``main(argv)`` (the same code ``python -m`` runs:
argparse, validators and the one-line error path); a sample of them also runs as real
``python -m`` subprocesses. Storage cases (bogus URLs, foreign databases) live with the store's
tests.
"""
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cost import count

ROOT = Path(__file__).resolve().parents[1]
STUDY = "bad-inputs"
RESNET = (ROOT / "search_spaces" / "resnet_like.yaml").read_text()


# ---------------------------------------------------------------- a real study database
class MacsEvaluator:
    """Scores by MACs (no training: the database only has to be a real one)."""

    def __call__(self, genotype, on_epoch):
        acc = min(0.99, count(genotype).macs / 4e9)
        on_epoch(1, acc)
        return {"accuracy": acc, "val_loss": 1.0 - acc,
                "epochs": [{"epoch": 1, "train_loss": 1.0, "val_accuracy": acc,
                            "val_loss": 1.0 - acc, "seconds": 0.0}]}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A database written by a real 3-trial search of resnet_like (evaluation injected)."""
    from nas.search import SearchConfig, run_search

    path = tmp_path_factory.mktemp("db") / "nas.db"
    config = SearchConfig(space="resnet_like", budget="2GFLOPs", trials=3, workers=1,
                          storage=str(path), study=STUDY, seed=0)
    run_search(config, evaluator=MacsEvaluator(), out=lambda line: None)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(*dirs: Path) -> dict:
    return {str(d): sorted(p.name for p in d.iterdir()) for d in dirs}


# ---------------------------------------------------------------- bad space files
def _resnet(old: str, new: str) -> str:
    assert old in RESNET, old
    return RESNET.replace(old, new, 1)


def _alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n" + RESNET


TINY = """\
name: tiny
builder: resnet_like
parameters:
  block: {type: categorical, choices: [basic]}
  depth1: {type: int, low: 1, high: 2}
  depth2: {type: int, low: 1, high: 2}
  depth3: {type: int, low: 1, high: 2}
  depth4: {type: int, low: 1, high: 2}
  width1: {type: int, low: 32, high: 64, step: 32}
  width2: {type: int, low: 64, high: 128, step: 64}
  width3: {type: int, low: 128, high: 256, step: 128}
  width4: {type: int, low: 256, high: 512, step: 256}
"""
DEPTH1 = "depth1: {type: int, low: 1, high: 6}"
SE_RED = "se_reduction: {type: categorical, choices: [4, 8, 16, 32], cheapest: 32, when: {se: true}}"
SPACE_FILES = {  # name -> (file content (str or bytes), words the one line must contain)
    "alias bomb (3 KB, 10^9 nodes)": (_alias_bomb(), "alias bomb"),
    "recursive alias": ("a: &a [1, *a]\n" + RESNET, "refers to itself"),
    "nesting 5,000 deep": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32"),
    "binary file": (bytes(range(256)) * 8, "not UTF-8"),
    "latin-1 text": (RESNET.replace("ResNet/", "Résumé/").encode("latin-1"), "not UTF-8"),
    "NUL byte": (RESNET.encode() + b"\x00\n", "NUL byte"),
    "over 1 MB": ("# " + "x" * (1 << 20) + "\n" + RESNET, "larger than 1024 KB"),
    "empty file": ("", "a space file is a YAML mapping"),
    "top level list": ("- 1\n- 2\n", "a space file is a YAML mapping"),
    "two documents": (RESNET + "\n---\nname: other\n", "YAML syntax error"),
    "duplicate key": (RESNET + "name: again\n", "appears twice"),
    "YAML syntax": (_resnet("choices: [classic, deep]", "choices: [classic, deep"), "YAML syntax error"),
    "high 1e11 (MemoryError before)": (_resnet(DEPTH1, "depth1: {type: int, low: 1, high: 100000000000}"),
                                       "within +-1,000,000"),
    "range of 1,000,000 values": (_resnet(DEPTH1, "depth1: {type: int, low: 1, high: 1000000}"),
                                  "more than 100,000"),
    "step 0": (_resnet("width1: {type: int, low: 32, high: 128, step: 16",
                       "width1: {type: int, low: 32, high: 128, step: 0"), "step: must be a positive"),
    "low .nan": (_resnet(DEPTH1, "depth1: {type: float, low: .nan, high: 6}"), "finite"),
    "high .inf": (_resnet(DEPTH1, "depth1: {type: float, low: 1, high: .inf}"), "finite"),
    "negative depth range": (_resnet(DEPTH1, "depth1: {type: int, low: -2, high: 6}"),
                             "-2 is not accepted by builder 'resnet_like'"),
    "depth 0": (_resnet(DEPTH1, "depth1: {type: int, low: 0, high: 6}"), "depth1 must be an int >= 1"),
    "depth 1000": (_resnet(DEPTH1, "depth1: {type: int, low: 1, high: 1000}"), "<= 256"),
    "mistyped stem": (_resnet("choices: [classic, deep]", "choices: [classic, dep]"),
                      "stem must be one of classic, deep"),
    "mistyped block": (_resnet("choices: [basic, bottleneck]}", "choices: [basic, bottlenek]}"),
                       "block must be one of basic, bottleneck"),
    "fixed bad stem": (TINY.replace("builder: resnet_like\n", "builder: resnet_like\nfixed: {stem: deeep}\n"),
                       "fixed.stem: 'deeep' is not accepted"),
    "fixed depth -1": (TINY.replace("builder: resnet_like\n", "builder: resnet_like\nfixed: {groups: -1}\n"),
                       "fixed.groups: -1 is not accepted"),
    "when value never taken": (_resnet("when: {block: bottleneck}", "when: {block: bottlenek}"),
                               "never takes 'bottlenek'"),
    "when wrong type": (_resnet(SE_RED, SE_RED.replace("when: {se: true}", "when: {se: 'true'}")),
                        "never takes 'true'"),
    "when contradicts": (_resnet(SE_RED, SE_RED.replace("when: {se: true}", "when: {groups: 2, block: basic}")),
                         "can never hold"),
    "when unknown parameter": (_resnet(SE_RED, SE_RED.replace("when: {se: true}", "when: {sse: true}")),
                               "unknown parameter 'sse'"),
    "choice .nan": (_resnet("choices: [1, 2, 4]\n    cheapest: 4", "choices: [1, 2, .nan]\n    cheapest: 1"),
                    "finite"),
    "unknown builder": (_resnet("builder: resnet_like", "builder: resnet_lik"), "unknown space builder"),
    "negative input shape": (_resnet("input_shape: [3, 224, 224]", "input_shape: [3, -224, 224]"),
                             "positive ints"),
    "seed genotype /dev/zero": (TINY + "seeds:\n  - {name: z, genotype: /dev/zero, params: {block: basic, "
                                "depth1: 1, depth2: 1, depth3: 1, depth4: 1, width1: 32, width2: 64, "
                                "width3: 128, width4: 256}}\n", "/dev/zero is not a file"),
    "seed genotype not JSON": (TINY + "seeds:\n  - {name: z, genotype: " + str(ROOT / "README.md") + ", params: "
                               "{block: basic, depth1: 1, depth2: 1, depth3: 1, depth4: 1, width1: 32, "
                               "width2: 64, width3: 128, width4: 256}}\n", "not valid JSON"),
    "unknown parameter type": (_resnet(DEPTH1, "depth1: {type: integer, low: 1, high: 6}"),
                               "unknown parameter type"),
}


# ---------------------------------------------------------------- CLI cases
SEARCH = ["--space", "resnet_like", "--budget", "2GFLOPs", "--workers", "1", "--study", STUDY,
          "--storage", "DB"]
CASES = {  # id -> (cli, argv with DB for the database path, words the one line must contain)
    # nas.search: flag values (issue 13's tracebacks and exit-0 runs among them)
    "search seed -1": ("search", [*SEARCH, "--seed", "-1"], "--seed"),
    "search seed 2**32": ("search", [*SEARCH, "--seed", "4294967296"], "0..4294967295"),
    "search seed 2**70": ("search", [*SEARCH, "--seed", "2**70"], "expected an integer"),
    "search seed 1.5": ("search", [*SEARCH, "--seed", "1.5"], "expected an integer"),
    "search lr -1": ("search", [*SEARCH, "--lr", "-1"], "--lr: must be a finite number > 0"),
    "search lr nan": ("search", [*SEARCH, "--lr", "nan"], "finite"),
    "search lr 1e309": ("search", [*SEARCH, "--lr", "1e309"], "finite"),
    "search lr inf": ("search", [*SEARCH, "--lr", "inf"], "finite"),
    "search lr 0": ("search", [*SEARCH, "--lr", "0"], "> 0"),
    "search resolution 100000": ("search", [*SEARCH, "--resolution", "100000"], "4..512 pixels"),
    "search resolution 2": ("search", [*SEARCH, "--resolution", "2"], "4..512 pixels"),
    "search limit 1": ("search", [*SEARCH, "--limit", "1"], "--limit"),
    "search limit -3": ("search", [*SEARCH, "--limit", "-3"], "--limit"),
    "search batch-size 1": ("search", [*SEARCH, "--batch-size", "1"], ">= 2"),
    "search epochs 0": ("search", [*SEARCH, "--epochs", "0"], "--epochs"),
    "search trials 0": ("search", [*SEARCH, "--trials", "0"], "--trials"),
    "search trials x": ("search", [*SEARCH, "--trials", "x"], "expected an integer"),
    "search workers 0": ("search", [*SEARCH, "--workers", "0"], "1..1024"),
    "search workers 100000": ("search", [*SEARCH, "--workers", "100000"], "1..1024"),
    "search threads 0": ("search", [*SEARCH, "--threads", "0"], "--threads"),
    "search timeout 0": ("search", [*SEARCH, "--timeout", "0"], "--timeout"),
    "search timeout -5": ("search", [*SEARCH, "--timeout=-5"], "invalid duration"),
    "search timeout 10 parsecs": ("search", [*SEARCH, "--timeout", "10 parsecs"], "invalid duration"),
    "search gpus-per-trial -1": ("search", [*SEARCH, "--gpus-per-trial", "-1"], ">= 0"),
    "search cpus-per-trial 0": ("search", [*SEARCH, "--cpus-per-trial", "0"], "> 0"),
    "search budget -1GFLOPs": ("search", [*SEARCH, "--budget", "-1GFLOPs"], "budget"),
    "search budget parsecs": ("search", [*SEARCH, "--budget", "2 parsecs"], "cannot parse budget"),
    "search params-budget abc": ("search", [*SEARCH, "--params-budget", "abc"], "budget"),
    "search objectives macs": ("search", [*SEARCH, "--objectives", "macs"], "--objectives"),
    "search objectives twice": ("search", [*SEARCH, "--objectives", "accuracy,accuracy"], "--objectives"),
    "search sampler typo": ("search", [*SEARCH, "--sampler", "tpee"], "tpe"),
    "search proxy typo": ("search", [*SEARCH, "--proxy", "synflo"], "unknown proxy"),
    "search backend spark": ("search", [*SEARCH, "--backend", "spark"], "invalid choice"),
    "search device quantum": ("search", [*SEARCH, "--device", "quantum"], "unknown device"),
    "search dataset typo": ("search", [*SEARCH, "--dataset", "mnsit"], "unknown dataset"),
    "search cifar missing": ("search", [*SEARCH, "--dataset", "cifar10:/nonexistent"], "no such folder"),
    "search space typo": ("search", ["--space", "resnet_lik", "--workers", "1"], "did you mean resnet_like"),
    "search no space": ("search", ["--budget", "2GFLOPs"], "required: --space"),
    "search unknown flag": ("search", [*SEARCH, "--bogus"], "unrecognized arguments: --bogus"),
    "search default storage, dataset typo": ("search", ["--space", "resnet_like", "--dataset", "mnsit"],
                                             "unknown dataset"),   # and no nas.db in the folder
    "search budget below cheapest": ("search", [*SEARCH[:2], "--budget", "1KFLOPs", "--workers", "1"],
                                     "cheapest architecture"),
    # nas.spaces
    "spaces no command": ("spaces", [], "required"),
    "spaces bogus command": ("spaces", ["shoe"], "invalid choice"),
    "spaces show no name": ("spaces", ["show"], "required: name"),
    "spaces unknown space": ("spaces", ["show", "resnet_lik"], "did you mean resnet_like"),
    "spaces samples -1": ("spaces", ["show", "resnet_like", "--samples", "-1"], "0..1000000"),
    "spaces samples 10**7": ("spaces", ["show", "resnet_like", "--samples", "10000000"], "0..1000000"),
    "spaces seed -1": ("spaces", ["show", "resnet_like", "--seed", "-1"], "--seed"),
    "spaces budget abc": ("spaces", ["show", "resnet_like", "--budget", "abc"], "cannot parse budget"),
    "spaces directory": ("spaces", ["show", "DIR"], "no such space file"),
    # nas.zoo
    "zoo no command": ("zoo", [], "required"),
    "zoo show no name": ("zoo", ["show"], "required: name"),
    "zoo show unknown": ("zoo", ["show", "resnet5O"], "resnet50"),
    "zoo list no match": ("zoo", ["list", "zzzz"], "no zoo entry matches"),
    "zoo export format pdf": ("zoo", ["export", "resnet18", "--format", "pdf", "-o", "x.pdf"], "invalid choice"),
    "zoo export no output": ("zoo", ["export", "resnet18"], "required: -o/--output"),
    "zoo export missing dir": ("zoo", ["export", "lenet5", "-o", "/nonexistent/x.json"], "does not exist"),
    "zoo golden missing dir": ("zoo", ["golden", "-o", "/nonexistent/g.json"], "cannot write"),
    # nas.dashboard
    "dashboard no args": ("dashboard", [], "required: --storage"),
    "dashboard missing file": ("dashboard", ["--storage", "/nonexistent/nas.db"], "does not exist"),
    "dashboard unknown study": ("dashboard", ["--storage", "DB", "--study", "nope"], "unknown study 'nope'"),
    "dashboard output under a file": ("dashboard", ["--storage", "DB", "-o", "DB/x.html"], "cannot write"),
    "dashboard unknown flag": ("dashboard", ["--storage", "DB", "--bogus"], "unrecognized arguments"),
    # nas.export
    "export weights without onnx": ("export", ["--storage", "DB", "--best", "--weights", "w.pt"],
                                    "add --onnx"),
    "export no trial or best": ("export", ["--storage", "DB", "--study", STUDY], "required"),
    "export trial and best": ("export", ["--storage", "DB", "--study", STUDY, "--trial", "0", "--best"],
                              "not allowed with"),
    "export trial -1": ("export", ["--storage", "DB", "--study", STUDY, "--trial", "-1"], ">= 0"),
    "export trial abc": ("export", ["--storage", "DB", "--study", STUDY, "--trial", "abc"], "expected an integer"),
    "export unknown study": ("export", ["--storage", "DB", "--study", "nope", "--best"], "no study 'nope'"),
    "export trial 999": ("export", ["--storage", "DB", "--study", STUDY, "--trial", "999"], "no trial 999"),
    "export out under a file": ("export", ["--storage", "DB", "--study", STUDY, "--best", "--out", "DB/x.json"],
                                "cannot write"),
    "export missing database": ("export", ["--storage", "/nonexistent/nas.db", "--study", STUDY, "--best"],
                                "no database"),
}
MODULES = {"search": "nas.search", "spaces": "nas.spaces", "zoo": "nas.zoo",
           "dashboard": "nas.dashboard", "export": "nas.export"}


def _main(cli: str):
    if cli == "search":
        from nas.search import main
    elif cli == "spaces":
        from nas.spaces.__main__ import main
    elif cli == "zoo":
        from nas.zoo.__main__ import main
    elif cli == "dashboard":
        from nas.dashboard.cli import main
    else:
        from nas.export import main
    return main


def _argv(argv: list, db: Path, tmp: Path) -> list:
    return [a.replace("DB", str(db)) if a.startswith("DB") or a.endswith("DB") else
            str(tmp) if a == "DIR" else a for a in argv]


def _check_one_line(code: int, out: str, err: str, words: str) -> None:
    assert code == 2, (code, out, err)
    assert out == "", out
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and words in err, err


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """Run in an empty folder; keep this process's SIGTERM handler (nas.search sets one)."""
    monkeypatch.chdir(tmp_path)
    handler = signal.getsignal(signal.SIGTERM)
    yield tmp_path
    signal.signal(signal.SIGTERM, handler)


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_bad_input(case, db, clean_cwd, capsys):
    cli, argv, words = CASES[case]
    before, files = _digest(db), _files(db.parent, clean_cwd)
    code = _main(cli)(_argv(argv, db, clean_cwd))
    out, err = capsys.readouterr()
    _check_one_line(code, out, err, words)
    assert _digest(db) == before and _files(db.parent, clean_cwd) == files


@pytest.mark.parametrize("name", sorted(SPACE_FILES))
def test_bad_space_file(name, db, clean_cwd, tmp_path_factory, capsys):
    """The same one line from ``nas.spaces show FILE`` and ``nas.search --space FILE``."""
    from nas.search import main as search
    from nas.spaces.__main__ import main as spaces

    content, words = SPACE_FILES[name]
    path = tmp_path_factory.mktemp("space") / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before, files = _digest(db), _files(db.parent, clean_cwd)
    lines = []
    for main, argv in ((spaces, ["show", str(path), "--samples", "5"]),
                       (search, ["--space", str(path), "--storage", str(db), "--workers", "1"])):
        code = main(argv)
        out, err = capsys.readouterr()
        _check_one_line(code, out, err, words)
        assert str(path) in err
        lines.append(err)
    assert lines[0] == lines[1]
    assert _digest(db) == before and _files(db.parent, clean_cwd) == files


# ---------------------------------------------------------------- real processes
SUBPROCESS = ["search lr nan", "search seed 2**70", "spaces samples -1", "zoo show unknown",
              "dashboard unknown study", "export trial abc"]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_real_process_bad_input(case, db, tmp_path):
    """``python -m nas.<cli>`` itself: exit 2, one stderr line, no traceback, db unchanged."""
    cli, argv, words = CASES[case]
    before = _digest(db)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    r = subprocess.run([sys.executable, "-m", MODULES[cli], *_argv(argv, db, tmp_path)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    _check_one_line(r.returncode, r.stdout, r.stderr, words)
    assert _digest(db) == before and list(tmp_path.iterdir()) == []


def test_alias_bomb_fails_fast_as_a_process(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    r = subprocess.run([sys.executable, "-m", "nas.spaces", "show", str(path)], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    _check_one_line(r.returncode, r.stdout, r.stderr, "alias bomb")


# ---------------------------------------------------------------- leaks
def test_onnx_export_raises_no_warning(tmp_path):
    """The legacy ONNX exporter's deprecation notices are silenced even when every warning is
    shown (``python -m nas.export`` runs as __main__, where Python shows DeprecationWarning)."""
    import warnings

    from nas import zoo
    from nas.export import write_onnx

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        write_onnx(zoo.build("lenet5"), tmp_path / "lenet5.onnx")
    assert [str(w.message)[:80] for w in seen] == [] and (tmp_path / "lenet5.onnx").stat().st_size > 0


@pytest.mark.slow
def test_onnx_export_prints_no_warning(db, tmp_path):
    """The same through the real command line (a 224x224 ResNet: ~25 s)."""
    r = subprocess.run([sys.executable, "-m", "nas.export", "--storage", str(db), "--study", STUDY,
                        "--best", "--out", str(tmp_path / "best.json"), "--onnx"], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    # the one line on stderr is the untrained-weights note, never a torch warning
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: ") and "UNTRAINED" in lines[0], r.stderr
    assert "warn" not in r.stderr.lower() and "deprecat" not in r.stderr.lower(), r.stderr
    assert r.stdout.split() == [str(tmp_path / "best.json"), str(tmp_path / "best.onnx")]


# ---------------------------------------------------------------- nas.cli itself
def test_guarded_main_turns_errors_ctrl_c_and_usage_into_statuses(capsys):
    from nas import cli
    from nas.errors import NasError

    @cli.guarded
    def main(argv=None):
        p = cli.ArgumentParser(prog="prog")
        p.add_argument("--n", type=cli.positive_int, required=True)
        n = p.parse_args(argv).n
        if n == 1:
            raise NasError("first line\nsecond line")
        raise KeyboardInterrupt

    assert main(["--n", "1"]) == 2
    assert capsys.readouterr().err == "error: first line second line\n"
    assert main(["--n", "2"]) == 130 and capsys.readouterr().err == "interrupted\n"
    assert main(["--n", "0"]) == 2
    assert capsys.readouterr().err == "prog: error: argument --n: must be an integer >= 1, got '0' (see --help)\n"
    assert main(["--help"]) == 0 and capsys.readouterr().out.startswith("usage: prog")


@pytest.mark.parametrize("check, good, bad", [
    ("seed", {"0": 0, "4294967295": 2**32 - 1, "1_000": 1000}, ["-1", "4294967296", "1e3", "x"]),
    ("positive_float", {"0.05": 0.05, "1e-3": 0.001}, ["0", "-1", "nan", "inf", "-inf", "1e309", ""]),
    ("resolution", {"4": 4, "512": 512}, ["3", "513", "100000", "28.5"]),
    ("duration", {"90": 90.0, "10m": 600.0, "1.5h": 5400.0}, ["0", "-5", "1e400", "10 parsecs", "9" * 400]),
    ("image_limit", {"0": 0, "2": 2}, ["1", "-1"]),
    ("count", {"1": 1, "1024": 1024}, ["0", "1025"]),
])
def test_validators(check, good, bad):
    import argparse

    from nas import cli

    fn = getattr(cli, check)
    assert {text: fn(text) for text in good} == good
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)
