"""nas.store on SQLite and a real PostgreSQL server: 64-bit counts, name limits, strict JSON,
masked passwords, and read-only opening that leaves foreign databases untouched."""
import hashlib
import json
import sqlite3

import pytest

from nas.store import NAME_MAX, StoreError, TrialStore, mask_url

BIG = 2**31 + 12_345            # above a 32-bit INTEGER
HUGE = 20 * 10**9 + 7           # 20 GMACs, a real ImageNet-scale count


def _open(store, name="s", **kw):
    args = dict(space="tiny", budget_macs=4 * 10**9, params_budget=3 * 10**9,
                objectives=["accuracy", "macs"], config={"epochs": 1, "lr": 0.05})
    args.update(kw)
    return store.open_study(name, **args)


def test_counts_above_2_to_the_31_round_trip(storage_url):
    store = TrialStore(storage_url)
    _open(store)
    run = store.join("s")["id"]
    slot = store.claim("s", run, None, params={"w": 1}, genotype="{}", genotype_hash="h",
                       target_macs=HUGE, target_params=BIG).trial_id
    store.finish(slot, "COMPLETE", accuracy=0.5, proxy_macs=HUGE, proxy_params=BIG)
    st = store.study("s")
    assert (st["budget_macs"], st["params_budget"]) == (4 * 10**9, 3 * 10**9)
    (t,) = store.trials("s")
    assert (t["target_macs"], t["target_params"], t["proxy_macs"], t["proxy_params"]) == \
        (HUGE, BIG, HUGE, BIG)
    assert _open(store) is True  # the stored 64-bit budget compares equal on resume
    store.close()


def test_long_names_are_stored_or_refused_in_one_line(storage_url):
    store = TrialStore(storage_url)
    longest = "n" * NAME_MAX
    _open(store, longest, space="s" * 5000)
    assert store.study(longest)["space"] == "s" * 5000
    with pytest.raises(StoreError) as e:
        _open(store, "n" * (NAME_MAX + 1))
    assert str(e.value) == f"study name is {NAME_MAX + 1} characters long; the limit is " \
                           f"{NAME_MAX}: pass a shorter --study"
    run = store.join(longest, "h" * 300 + ":1")["id"]     # hostnames of any length
    slot = store.claim(longest, run, None, params={}, genotype=None, genotype_hash=None,
                       target_params=None, target_macs=None, seed_name="x" * 1000,
                       worker="h" * 300 + ":1").trial_id
    store.finish(slot, "FAIL", error="bad\x00byte " + "e" * 10_000)
    (t,) = store.trials(longest)
    assert t["seed_name"] == "x" * 1000 and t["error"].startswith("bad\\x00byte e")
    store.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_never_reach_stored_json(storage_url, bad):
    store = TrialStore(storage_url)
    with pytest.raises(StoreError, match=r"cannot store config.lr = .*JSON has no NaN or infinity"):
        _open(store, config={"lr": bad})
    assert store.studies() == []
    _open(store)
    run = store.join("s")["id"]
    with pytest.raises(StoreError, match=r"params.deep.0"):
        store.claim("s", run, None, params={"deep": [bad]}, genotype=None, genotype_hash=None,
                    target_params=None, target_macs=None)
    store.close()


def test_stored_json_is_strict(tmp_path):
    db = tmp_path / "s.db"
    store = TrialStore(db)
    _open(store, config={"lr": 0.05, "nested": {"x": [1.5, None]}})
    store.close()
    (text,) = sqlite3.connect(db).execute("SELECT config FROM nas_studies").fetchone()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg2://nas:s3cret@db.example:5432/runs",
     "postgresql+psycopg2://nas:***@db.example:5432/runs"),
    ("postgresql://nas@db/runs?password=s3cret&sslmode=require",
     "postgresql://nas@db/runs?password=***&sslmode=require"),
    ("mysql+pymysql://u:p%40ss@h/d", "mysql+pymysql://u:***@h/d"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
    ("runs/nas.db", "runs/nas.db"),
    ("redis://user:s3cret@[bad", "redis://user:***@[bad"),
])
def test_mask_url_hides_passwords(url, shown):
    assert mask_url(url) == shown


def test_config_urls_are_stored_masked_and_errors_never_show_the_password(storage_url):
    store = TrialStore(storage_url)
    secret_url = "postgresql+psycopg2://nas:s3cret@db.example/runs"
    _open(store, config={"storage": secret_url, "hosts": [secret_url]})
    assert store.study("s")["config"] == {"storage": mask_url(secret_url),
                                          "hosts": [mask_url(secret_url)]}
    assert "s3cret" not in store.display_url or "s3cret" not in storage_url
    store.close()


def test_postgres_errors_mask_the_password(postgres_url):
    from sqlalchemy.engine import make_url

    wrong = make_url(postgres_url).set(password="wrong-s3cret", database="no_such_db")
    with pytest.raises(StoreError) as e:
        TrialStore(wrong.render_as_string(hide_password=False))
    assert "wrong-s3cret" not in str(e.value) and "cannot open storage" in str(e.value)
    assert "\n" not in str(e.value)


# -- read-only opening --------------------------------------------------------------------------
def _digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name)}


def _optuna_db(path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name="foreign")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return path


def _other_program_db(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()
    return path


FOREIGN = {
    "optuna": _optuna_db,
    "empty file": lambda p: (p.write_bytes(b""), p)[1],
    "other program": _other_program_db,
    "not sqlite": lambda p: (p.write_bytes(b"PK\x03\x04 a zip, not a database" * 40), p)[1],
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_readonly_refuses_foreign_sqlite_and_leaves_it_byte_for_byte(tmp_path, kind):
    path = FOREIGN[kind](tmp_path / "foreign.db")
    before = _digest(path)
    with pytest.raises(StoreError) as e:
        TrialStore(path, readonly=True)
    assert str(e.value).startswith(f"no nas study in {path}")
    assert _digest(path) == before


def test_readonly_reads_a_store_without_changing_it(tmp_path):
    path = tmp_path / "nas.db"
    store = TrialStore(path)
    _open(store)
    run = store.join("s")["id"]
    slot = store.claim("s", run, None, params={"w": 1}, genotype=None, genotype_hash="h",
                       target_params=1, target_macs=HUGE).trial_id
    store.finish(slot, "COMPLETE", accuracy=0.25)
    store.close()
    conn = sqlite3.connect(path)            # as a user might leave it: back to DELETE journal
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    before = _digest(path)
    ro = TrialStore(path, readonly=True)
    assert [t["target_macs"] for t in ro.trials("s")] == [HUGE]
    with pytest.raises(StoreError, match="read-only"):
        _open(ro, "other")
    ro.close()
    assert _digest(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_readonly_refuses_an_empty_postgres_database_without_creating_tables(postgres_url):
    from sqlalchemy import create_engine, inspect

    with pytest.raises(StoreError, match=r"^no nas study in postgresql\+psycopg2://nas:\*\*\*@"):
        TrialStore(postgres_url, readonly=True)
    engine = create_engine(postgres_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_existing_32_bit_postgres_columns_are_widened(postgres_url):
    from sqlalchemy import create_engine

    engine = create_engine(postgres_url)
    TrialStore(postgres_url).close()
    with engine.begin() as conn:        # a store created before the counts became BIGINT
        for col in ("budget_macs", "params_budget"):
            conn.exec_driver_sql(f"ALTER TABLE nas_studies ALTER COLUMN {col} TYPE INTEGER")
        conn.exec_driver_sql("ALTER TABLE nas_trials ALTER COLUMN target_macs TYPE INTEGER")
    store = TrialStore(postgres_url)
    _open(store)
    assert store.study("s")["budget_macs"] == 4 * 10**9
    store.close()
    engine.dispose()


def test_a_store_of_another_version_is_refused_in_one_line_and_left_alone(storage_url):
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(storage_url)
    with engine.begin() as conn:            # nas tables as an older nas wrote them
        conn.execute(text("CREATE TABLE nas_studies (id INTEGER PRIMARY KEY, name VARCHAR(255))"))
        conn.execute(text("CREATE TABLE nas_trials (id INTEGER PRIMARY KEY, study_id INTEGER, "
                          "number INTEGER, state VARCHAR(16))"))
        conn.execute(text("INSERT INTO nas_studies (id, name) VALUES (1, 'old')"))
    for readonly in (True, False):
        with pytest.raises(StoreError) as e:
            TrialStore(storage_url, readonly=readonly)
        msg = str(e.value)
        assert "was written by another version of nas (it has no nas_studies.space" in msg
        assert msg.endswith("pass --storage with a new database") and "\n" not in msg
    assert sorted(inspect(engine).get_table_names()) == ["nas_studies", "nas_trials"]
    engine.dispose()


def test_a_store_from_before_train_loss_is_read_as_is_and_upgraded_by_a_writer(storage_url):
    """Stores written before the train_loss column: readers see train_loss None and change
    nothing; the next writer adds the column in place, fills it from each trial's last epoch
    and keeps every trial."""
    from sqlalchemy import create_engine, inspect

    store = TrialStore(storage_url)
    _open(store)
    run = store.join("s")["id"]
    slot = store.claim("s", run, None, params={"w": 1}, genotype="{}", genotype_hash="h",
                       target_params=1, target_macs=2).trial_id
    store.finish(slot, "COMPLETE", accuracy=0.5, val_loss=0.4,
                 epochs=[{"epoch": 1, "val_accuracy": 0.5, "val_loss": 0.4, "train_loss": 0.9}])
    store.close()
    engine = create_engine(storage_url)
    with engine.begin() as conn:                 # as the previous nas wrote it
        conn.exec_driver_sql("ALTER TABLE nas_trials DROP COLUMN train_loss")
    columns = lambda: {c["name"] for c in inspect(engine).get_columns("nas_trials")}  # noqa: E731
    ro = TrialStore(storage_url, readonly=True)
    (t,) = ro.trials("s")
    assert (t["val_loss"], t["train_loss"], t["epochs"][0]["train_loss"]) == (0.4, None, 0.9)
    from nas import quality

    assert quality.metric("train_val_loss").value(t) == pytest.approx((0.4 * 0.9) ** 0.5)
    ro.close()
    assert "train_loss" not in columns()          # the reader wrote nothing
    writer = TrialStore(storage_url)
    assert "train_loss" in columns()
    slot = writer.claim("s", writer.join("s")["id"], None, params={"w": 2}, genotype="{}",
                        genotype_hash="h2", target_params=1, target_macs=2).trial_id
    writer.finish(slot, "COMPLETE", accuracy=0.6, val_loss=0.3, train_loss=0.7)
    # the trial stored before the column got its last epoch's training loss
    assert [(x["val_loss"], x["train_loss"]) for x in writer.trials("s")] == [(0.4, 0.9), (0.3, 0.7)]
    writer.close()
    engine.dispose()
