"""Storage-related bad inputs for the search, export and dashboard CLIs: each exits 2 with one
line on stderr, no traceback, no password shown, and leaves every file it was pointed at
byte for byte as it was."""
import hashlib

import pytest

from nas.dashboard import main as dashboard_main
from nas.export import main as export_main
from nas.search import main as search_main

SECRET = "hunter2-s3cret"


def _files(tmp_path):
    """Things a user may point --storage at by mistake."""
    (tmp_path / "text.db").write_text("hello, not a database\n")
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()


def _digest(tmp_path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(tmp_path.iterdir())}


# (storage, what the one line must say); {tmp} is the test's folder
BAD_STORAGE = [
    ("bogus://x", "cannot open storage 'bogus://x': Can't load plugin"),
    ("nope://::", "cannot parse storage URL"),
    (f"mysql://nas:{SECRET}@db.example/runs", "database driver is not installed"),
    (f"postgresql+psycopg2://nas:{SECRET}@127.0.0.1:1/runs", "Connection refused"),
    (f"postgresql://nas:{SECRET}@[bad/runs", "cannot open storage 'postgresql"),
    ("{tmp}/missing-folder/nas.db", "missing-folder"),
]
READ_ONLY_FILES = [
    ("{tmp}/text.db", "no nas study in {tmp}/text.db: not a SQLite database"),
    ("{tmp}/empty.db", "no nas study in {tmp}/empty.db"),
    ("{tmp}/other.db", "no nas study in {tmp}/other.db"),
]


def _check(capfd, rc, says, tmp_path, before):
    out, err = capfd.readouterr()
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and says.format(tmp=tmp_path) in lines[0], lines[0]
    assert "Traceback" not in out + err and SECRET not in out + err
    assert _digest(tmp_path) == before


@pytest.mark.parametrize("storage, says", BAD_STORAGE + READ_ONLY_FILES)
def test_export_refuses_bad_storage(tmp_path, capfd, storage, says):
    _files(tmp_path)
    before = _digest(tmp_path)
    rc = export_main(["--storage", storage.format(tmp=tmp_path), "--study", "s", "--best",
                      "--out", str(tmp_path / "out.json")])
    if "missing-folder" in storage:
        says = "no database at"
    _check(capfd, rc, says, tmp_path, before)


@pytest.mark.parametrize("storage, says", BAD_STORAGE + READ_ONLY_FILES)
def test_dashboard_refuses_bad_storage(tmp_path, capfd, storage, says):
    _files(tmp_path)
    before = _digest(tmp_path)
    rc = dashboard_main(["--storage", storage.format(tmp=tmp_path), "-o", str(tmp_path / "d.html")])
    if "missing-folder" in storage:
        says = "does not exist"
    _check(capfd, rc, says, tmp_path, before)


SEARCH = ["--space", "resnet_like", "--trials", "1", "--proxy", "naswot", "--limit", "100",
          "--workers", "1"]


@pytest.mark.parametrize("storage, says", BAD_STORAGE + [
    ("{tmp}/text.db", "file is not a database"),
    ("{tmp}/adir", "is not writable (Is a directory)"),
])
def test_search_refuses_bad_storage(tmp_path, capfd, storage, says):
    _files(tmp_path)
    before = _digest(tmp_path)
    rc = search_main([*SEARCH, "--storage", storage.format(tmp=tmp_path),
                      "--dashboard", str(tmp_path / "d.html")])
    if "missing-folder" in storage:
        says = "folder {tmp}/missing-folder does not exist"
    _check(capfd, rc, says, tmp_path, before)


@pytest.mark.parametrize("study, says", [
    ("s" * 256, "study name is 256 characters long; the limit is 255: pass a shorter --study"),
])
def test_search_refuses_a_study_name_the_store_cannot_hold(tmp_path, capfd, study, says):
    (tmp_path / "runs").mkdir()
    before = _digest(tmp_path)
    rc = search_main([*SEARCH, "--storage", str(tmp_path / "runs" / "nas.db"), "--study", study,
                      "--dashboard", str(tmp_path / "d.html")])
    out, err = capfd.readouterr()
    assert rc == 2 and err.strip() == f"error: {says}" and "Traceback" not in out + err
    assert _digest(tmp_path) == before
    from nas.store import TrialStore

    db = tmp_path / "runs" / "nas.db"
    assert not db.exists() or TrialStore(db, readonly=True).studies() == []
