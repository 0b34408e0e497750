"""The search, export and dashboard against a real PostgreSQL server (``.ci/postgres``), at a
budget above 2^31 MACs; skipped loudly when ``NAS_TEST_POSTGRES_URL`` is not set."""
import json

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nas.search import main, run_search
from nas.store import TrialStore, mask_url
from tests.test_search import FakeEvaluator, TinySpace, _config, evaluated

SEARCH = ["--space", "resnet_like", "--budget", "4GFLOPs", "--proxy", "naswot", "--workers", "1",
          "--limit", "200", "--study", "pg4g"]


def test_search_export_and_dashboard_at_4gflops(postgres_url, tmp_path, capsys):
    password = make_url(postgres_url).password
    assert password
    rc = main([*SEARCH, "--trials", "3", "--storage", postgres_url,
               "--dashboard", str(tmp_path / "d.html")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert password not in out.out + out.err
    assert f"database {mask_url(postgres_url)}" in out.out

    store = TrialStore(postgres_url, readonly=True)
    study = store.study("pg4g")
    trials = store.trials("pg4g")
    store.close()
    assert study["budget_macs"] == 4_000_000_000
    assert study["config"]["storage"] == mask_url(postgres_url)
    assert len(evaluated(trials)) == 3
    assert max(t["target_macs"] for t in trials) > 2**31     # e.g. resnet34's 3.66 GMACs
    assert all(t["target_macs"] <= 4_000_000_000 for t in evaluated(trials))

    # resume: one more trial, nothing rewritten
    assert main([*SEARCH, "--trials", "4", "--storage", postgres_url,
                 "--dashboard", str(tmp_path / "d.html")]) == 0
    capsys.readouterr()
    again = TrialStore(postgres_url).trials("pg4g")
    assert again[:len(trials)] == trials and len(evaluated(again)) == 4

    from nas.export import main as export_main
    assert export_main(["--storage", postgres_url, "--study", "pg4g", "--best",
                        "--out", str(tmp_path / "best.json")]) == 0
    from nas import quality
    best = quality.best(again, "naswot")
    assert json.loads((tmp_path / "best.json").read_text()) == json.loads(best["genotype"])

    from nas.dashboard import main as dashboard_main
    assert dashboard_main(["--storage", postgres_url, "--study", "pg4g",
                           "-o", str(tmp_path / "dash.html")]) == 0
    out = capsys.readouterr()
    page = (tmp_path / "dash.html").read_text()
    assert "Pareto fronts" in page and "No finished trials yet" not in page
    assert password not in page + out.out + out.err


def test_loop_resume_and_interruption_on_postgres(postgres_url, tmp_path):
    cfg = dict(storage=postgres_url, budget="300K")
    run_search(_config(tmp_path, trials=3, **cfg), evaluator=FakeEvaluator(), space=TinySpace(),
               out=lambda s: None)
    first = TrialStore(postgres_url).trials("t")
    ev = FakeEvaluator(fail_on={1}, exc=KeyboardInterrupt())
    result = run_search(_config(tmp_path, trials=5, **cfg), evaluator=ev, space=TinySpace(),
                        out=lambda s: None)
    assert result["summary"]["interrupted"]
    run_search(_config(tmp_path, trials=5, **cfg), evaluator=FakeEvaluator(), space=TinySpace(),
               out=lambda s: None)
    trials = TrialStore(postgres_url).trials("t")
    assert trials[:len(first)] == first
    assert len(evaluated(trials)) == 5
    assert "RUNNING" not in {t["state"] for t in trials}
    assert [t["seed_name"] for t in trials].count("small") == 1


def test_export_and_dashboard_never_write_to_a_foreign_postgres_database(postgres_url, tmp_path):
    engine = create_engine(postgres_url)
    with engine.begin() as conn:            # another program's table in the same database
        conn.execute(text("CREATE TABLE notes (id SERIAL PRIMARY KEY, body TEXT)"))
    from nas.dashboard import main as dashboard_main
    from nas.export import main as export_main

    assert export_main(["--storage", postgres_url, "--study", "x", "--best"]) == 2
    assert dashboard_main(["--storage", postgres_url, "-o", str(tmp_path / "d.html")]) == 2
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables "
                                   "WHERE schemaname = 'public'")).scalars().all()
    engine.dispose()
    assert tables == ["notes"]


@pytest.mark.slow
def test_trained_search_with_two_workers_at_4gflops(postgres_url, tmp_path, capsys):
    rc = main(["--space", "resnet_like", "--budget", "4GFLOPs", "--trials", "3", "--workers", "2",
               "--limit", "200", "--resolution", "16", "--storage", postgres_url, "--study", "w",
               "--dashboard", str(tmp_path / "d.html")])
    assert rc == 0, capsys.readouterr().err
    trials = TrialStore(postgres_url).trials("w")
    assert len(evaluated(trials)) == 3 and "RUNNING" not in {t["state"] for t in trials}
    assert max(t["target_macs"] for t in evaluated(trials)) > 2**31
