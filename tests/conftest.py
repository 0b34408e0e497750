"""Shared fixtures: PostgreSQL databases for the store and search tests, a small MNIST and a
tiny ResNet for the trainer tests; the ``cuda`` marker.

``.ci/postgres`` (sourced by ``.ci/run``) starts a server on 127.0.0.1 and exports
``NAS_TEST_POSTGRES_URL``. Without it the PostgreSQL tests are skipped with a loud reason and
the run ends with a line saying they did not run.

Tests marked ``cuda`` need a CUDA device: where ``torch.cuda.is_available()`` is false they are
skipped with a reason starting "needs CUDA:", and the run ends with a line saying how many did
not run. ``python -m pytest -m cuda`` runs only them (on a machine with a GPU).
"""
from __future__ import annotations

import os
import uuid

import pytest

ENV = "NAS_TEST_POSTGRES_URL"
SKIP_REASON = (f"POSTGRESQL TESTS NOT RUN: {ENV} is not set; `source .ci/postgres` (or run "
               ".ci/run) to start a server on 127.0.0.1")
_skipped: list[str] = []
_cuda_skipped: list[str] = []


def _admin_url() -> str:
    url = os.environ.get(ENV)
    if not url:
        _skipped.append(ENV)
        pytest.skip(SKIP_REASON)
    return url


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test: on a shared machine one is faster than contended two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist():
    """1,500 images of the embedded MNIST at 16 px (1,200 train + 300 validation)."""
    from nas.evaluate.data import load_dataset

    return load_dataset(limit=1500, resolution=16)


@pytest.fixture(scope="module")
def tiny_resnet():
    """A one-block-per-stage ResNet (widths 16-128): trains in seconds on ``mnist``."""
    from nas.zoo.resnet import resnet

    return resnet("basic", (1, 1, 1, 1), widths=(16, 32, 64, 128), name="tiny_resnet")


def experiment(name: str):
    """The script ``experiments/<name>.py`` imported as a module (experiments are not a
    package: they run as scripts)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: a two-to-four-block resnet_like space with widths 8-16 (32 px target): sampled and trained
#: in seconds by the calibrate and experiment tests
TINY_SPACE = """
name: tiny
target: {input_shape: [3, 32, 32], num_classes: 10}
builder: resnet_like
parameters:
  block: {type: categorical, choices: [basic]}
  depth1: {type: int, low: 1, high: 2}
  depth2: {type: int, low: 1, high: 1}
  depth3: {type: int, low: 1, high: 1}
  depth4: {type: int, low: 1, high: 1}
  width1: {type: int, low: 8, high: 16, step: 8}
  width2: {type: int, low: 8, high: 16, step: 8}
  width3: {type: int, low: 8, high: 16, step: 8}
  width4: {type: int, low: 8, high: 16, step: 8}
  se: {type: bool}
"""


@pytest.fixture
def tiny_space(tmp_path):
    """The path of a YAML file holding :data:`TINY_SPACE`."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def postgres_url():
    """The URL of a fresh, empty PostgreSQL database (dropped afterwards); skips loudly when
    no server is configured."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(_admin_url())
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A fresh store URL: a SQLite file, then a PostgreSQL database (skipped loudly without a
    server). Tests taking this run on both back ends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nas.db'}"
    return request.getfixturevalue("postgres_url")


def no_cuda_reason() -> str | None:
    """Why CUDA tests cannot run here (None when a CUDA device is usable)."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device: "
            "torch.cuda.is_available() is False")


def pytest_collection_modifyitems(config, items):
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items:
        return
    reason = no_cuda_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs CUDA: {reason}")
    for item in cuda_items:
        item.add_marker(skip)
        _cuda_skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _cuda_skipped:
        terminalreporter.write_sep("-", f"{len(_cuda_skipped)} CUDA test(s) did not run: no CUDA "
                                        "device here (run them where there is one: pytest -m cuda)")
    if _skipped:
        terminalreporter.write_sep("!", f"{len(_skipped)} PostgreSQL test(s) did NOT run: {ENV} "
                                        "is not set (source .ci/postgres)", red=True, bold=True)
