"""Where search results live: one record per trial in SQLAlchemy tables (``nas_*``).

The ``nas_*`` tables are the single source of truth of a search: studies, runs (one row per
search process, with its heartbeat), the queue of fixed points still to try (seeds, retries),
trials and per-epoch metrics. Each fact about a trial is written once, here. Optuna's own
tables in the same database are an export derived from these (see
:func:`nas.strategies.optuna_backend.export`), so ``optuna.load_study`` and optuna-dashboard
work on a study without the two records having to be kept in step trial by trial.

Concurrency: every write that depends on what other processes did (a new trial number, the
trial limit, the queue, the check for an architecture already trained or training) runs in
one transaction holding the study's lock: ``BEGIN IMMEDIATE`` on SQLite (WAL journal, busy
timeout), ``SELECT ... FOR UPDATE`` on the study row elsewhere (PostgreSQL). A process is
alive while its run's heartbeat is fresh (or, on its own host, while its pid exists); the
trials of a dead run are marked interrupted and queued again by whoever notices first.
"""
from __future__ import annotations

import json
import math
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence

from sqlalchemy import (JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, Text,
                        UniqueConstraint, create_engine, event, func, inspect, select, text, update)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, mapped_column

from nas.errors import NasError

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
BUSY_TIMEOUT_MS = 30_000
#: Seconds between two heartbeats of a live run, and the age after which a run on another
#: host counts as dead (a run on this host is dead as soon as its process is gone).
HEARTBEAT_S = 5.0
STALE_S = 30.0
#: Longest study name (characters); a unique index needs a bounded column on some databases.
NAME_MAX = 255


class StoreError(NasError):
    """A storage URL that cannot be opened, or a study that does not match its stored definition."""


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    """One search: the space, budget and objectives it was started with."""

    __tablename__ = "nas_studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    space: Mapped[str] = mapped_column(Text)
    budget_macs: Mapped[int | None] = mapped_column(BigInteger)
    params_budget: Mapped[int | None] = mapped_column(BigInteger)
    objectives: Mapped[list] = mapped_column(JSON)
    config: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class RunRow(Base):
    """One search process working on a study (a command, a host): liveness and identity."""

    __tablename__ = "nas_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("nas_studies.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)          # 0 for the study's first run, then 1...
    worker: Mapped[str] = mapped_column(Text)            # host:pid
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class QueueRow(Base):
    """A fixed point waiting to be tried: a seed architecture or the retry of an interrupted trial."""

    __tablename__ = "nas_queue"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("nas_studies.id"), index=True)
    params: Mapped[dict] = mapped_column(JSON)
    seed_name: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[int | None] = mapped_column(Integer)


class TrialRow(Base):
    """One proposed architecture of a study: trained, training, repeated or over budget."""

    __tablename__ = "nas_trials"
    __table_args__ = (UniqueConstraint("study_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("nas_studies.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("nas_runs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict | None] = mapped_column(JSON)
    genotype: Mapped[str | None] = mapped_column(Text)
    genotype_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    seed_name: Mapped[str | None] = mapped_column(Text)
    target_params: Mapped[int | None] = mapped_column(BigInteger)
    target_macs: Mapped[int | None] = mapped_column(BigInteger)
    proxy_params: Mapped[int | None] = mapped_column(BigInteger)
    proxy_macs: Mapped[int | None] = mapped_column(BigInteger)
    accuracy: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)  # last epoch's mean training loss
    proxy_score: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    interrupted: Mapped[bool] = mapped_column(default=False)
    feasible: Mapped[bool] = mapped_column(default=True)
    retry_of: Mapped[int | None] = mapped_column(Integer)
    duplicate_of: Mapped[int | None] = mapped_column(Integer)  # same genotype hash: result reused
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(Text)


class EpochRow(Base):
    """Validation accuracy and loss after one training epoch of a trial."""

    __tablename__ = "nas_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "epoch"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("nas_trials.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)


#: Metric columns a finished trial may carry (and a repeat copies from the trial it repeats).
METRICS = ("accuracy", "val_loss", "train_loss", "proxy_score", "latency_ms", "proxy_params",
           "proxy_macs")


@dataclass
class Claim:
    """The answer to :meth:`TrialStore.claim`.

    status: "new" (train it: ``trial_id``/``number`` are yours), "repeat" (the same
    architecture is trial ``owner``: finished already, so this trial was recorded with its
    result, or still running elsewhere, so this RUNNING trial waits for it), "full" (the
    trial limit is reached) or "taken" (another process took the queued point first).
    """

    status: str
    trial_id: int | None = None
    number: int | None = None
    owner: dict | None = None


def normalize_url(url: str | os.PathLike) -> str:
    """A SQLAlchemy URL from ``url``; a plain file path becomes an absolute ``sqlite:///`` URL."""
    text_ = os.fspath(url)
    if "://" in text_:
        try:
            make_url(text_)
        except (ArgumentError, ValueError) as e:
            raise StoreError(f"cannot parse storage URL {text_!r}: {e}; use a SQLAlchemy URL such "
                             "as sqlite:///runs/nas.db or a plain file path") from None
        return _default_driver(text_)
    return "sqlite:///" + str(Path(text_).expanduser().resolve())


def _default_driver(url: str) -> str:
    """``postgresql://`` names SQLAlchemy's default driver (psycopg 3); when only psycopg2
    is installed (the dev extra's psycopg2-binary), use it instead of failing."""
    u = make_url(url)
    if u.drivername != "postgresql":
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return u.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return url


_SECRET_KEYS = {"password", "passwd", "pass", "pwd", "secret", "token", "sslpassword",
                "access_token", "api_key", "apikey"}


def mask_url(url: str | os.PathLike | None) -> str | None:
    """``url`` fit to print or store: the password (and any password-like query parameter)
    replaced by ``***``. Plain paths and text that is not a URL come back unchanged."""
    if url is None:
        return None
    text = os.fspath(url)
    if "://" not in text:
        return text
    try:
        u = make_url(text)
    except (ArgumentError, ValueError):  # not a SQLAlchemy URL: hide whatever sits before '@'
        head, sep, tail = text.partition("://")
        cred, at, rest = tail.rpartition("@")
        if at and ":" in cred:
            return f"{head}{sep}{cred.split(':', 1)[0]}:***@{rest}"
        return text
    secret_query = [k for k in u.query if k.lower() in _SECRET_KEYS]
    if u.password is None and not secret_query:
        return text                  # nothing to hide: keep the text as the user typed it
    if secret_query:
        u = u.set(query={k: ("***" if k in secret_query else v) for k, v in u.query.items()})
    return u.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def mask_secrets(value: Any) -> Any:
    """``value`` (plain data) with every URL string in it passed through :func:`mask_url`."""
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value


def _non_finite(value: Any, where: str) -> str | None:
    """The path of the first NaN/inf number in ``value`` (JSON has no such numbers), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} = {value!r}"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}")
        if found:
            return found
    return None


def check_json(value: Any, where: str) -> Any:
    """Raise StoreError when ``value`` holds NaN or infinity (stored JSON would be invalid)."""
    found = _non_finite(value, where)
    if found:
        raise StoreError(f"cannot store {found}: JSON has no NaN or infinity; pass a finite number")
    return value


def _json_dumps(value: Any) -> str:
    """The JSON columns' serializer: strict JSON only (a NaN that slipped past check_json
    fails here instead of writing text no JSON reader accepts)."""
    return json.dumps(value, allow_nan=False)


def check_name(name: str, what: str = "study name") -> str:
    """Raise StoreError for a name the store cannot hold (too long, or a NUL character)."""
    if len(name) > NAME_MAX:
        raise StoreError(f"{what} is {len(name)} characters long; the limit is {NAME_MAX}: "
                         "pass a shorter --study")
    if "\x00" in name:
        raise StoreError(f"{what} {name!r} contains a NUL character; pass another --study")
    return name


def sqlite_path(url: str) -> Path | None:
    """The database file behind a ``sqlite:///`` URL (None for other back ends or :memory:)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def is_memory(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database (private to one connection)."""
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and (not u.database or u.database == ":memory:"
                                                 or "mode=memory" in str(u))


def check_writable(url: str) -> None:
    """Raise StoreError unless a SQLite database file can be created or written at ``url``."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.is_dir():
        raise StoreError(f"cannot create database {path}: folder {path.parent} does not exist; "
                         "create it or pass --storage with another path or URL")
    if path.exists():  # never open and close it: that drops this process's SQLite locks on it
        if not path.is_file():
            raise StoreError(f"database {path} is not writable (Is a directory); pass --storage "
                             "with a file path or URL" if path.is_dir() else
                             f"database {path} is not a regular file; pass --storage with a "
                             "file path or URL")
        if not os.access(path, os.W_OK):
            raise StoreError(f"database {path} is not writable (permission denied or a "
                             "read-only file system); pass --storage with a writable path or URL")
        return
    try:  # permission bits alone mislead (root, read-only mounts, /proc): try for real
        with open(path, "ab"):
            pass
    except OSError as e:
        raise StoreError(f"database {path} is not writable ({e.strerror}); pass --storage with "
                         "a writable path or URL") from None
    path.unlink()


def worker_id() -> str:
    """This process's identity in the store: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str | None) -> bool | None:
    """Whether the process ``worker`` (``host:pid``) runs: True/False on this host, None when
    it runs elsewhere (only its heartbeat can tell)."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return None
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_SHIELD = {"depth": 0, "pending": False}


@contextmanager
def shielded() -> Iterator[None]:
    """Hold back a Ctrl-C/SIGTERM delivered through :func:`interrupt` until the block ends, so
    a database call is never cut in half (a transaction begun but not ended would keep the
    database locked). Main thread only (signal handlers run there)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SHIELD["depth"] += 1
    try:
        yield
    finally:
        _SHIELD["depth"] -= 1
        if _SHIELD["depth"] == 0 and _SHIELD["pending"]:
            _SHIELD["pending"] = False
            raise KeyboardInterrupt


def interrupt(signum=None, frame=None) -> None:  # noqa: ANN001 - signal handler signature
    """A SIGINT/SIGTERM handler: KeyboardInterrupt now, or at the end of a :func:`shielded`
    database call."""
    if _SHIELD["depth"]:
        _SHIELD["pending"] = True
        return
    raise KeyboardInterrupt


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def sqlite_pragmas(dbapi_conn, foreign_keys: bool = True) -> None:
    """WAL journal (readers never block the writer), busy timeout, no fsync per commit
    (synchronous=NORMAL is durable against process crashes in WAL mode), foreign keys on."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    if foreign_keys:
        cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sqlite_connect(path: Path):
    """A sqlite3 connection to ``path`` with :func:`sqlite_pragmas` applied (for Optuna)."""
    import sqlite3

    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    sqlite_pragmas(conn, foreign_keys=False)  # Optuna's schema, Optuna's rules
    return conn


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
                           json_serializer=_json_dumps)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # noqa: ANN001 - SQLAlchemy event signature
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's is lazy)
        sqlite_pragmas(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        # Writers take the lock up front: a deferred transaction that upgrades later fails
        # with SQLITE_BUSY at once in WAL mode instead of waiting out the busy timeout. This
        # also makes every write transaction a critical section of the whole database.
        immediate = conn.get_execution_options().get("nas_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _sqlite_readonly_engine(path: Path) -> Engine:
    """An engine that opens ``path`` with SQLite's read-only flag: no table is created, no
    journal mode changed, nothing written (only the per-connection busy timeout is set)."""
    import sqlite3

    def connect():
        # A WAL database with no -wal file has no writer: opening it read-only would create
        # -wal/-shm files it cannot remove, so read it as immutable (nothing created).
        idle = not Path(f"{path}-wal").exists()
        uri = path.as_uri() + ("?mode=ro&immutable=1" if idle else "?mode=ro")
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    return create_engine("sqlite://", creator=connect)


#: Count columns created as 32-bit INTEGER by versions before they became BIGINT.
_WIDE = {"nas_studies": ("budget_macs", "params_budget"),
         "nas_trials": ("target_params", "target_macs", "proxy_params", "proxy_macs")}


def _widen_counts(engine: Engine) -> None:
    """ALTER 32-bit count columns of an existing PostgreSQL/MySQL store to BIGINT (SQLite
    integers are 64-bit whatever the declared type)."""
    if engine.dialect.name not in ("postgresql", "mysql", "mariadb"):
        return
    insp = inspect(engine)
    with engine.begin() as conn:
        for table, cols in _WIDE.items():
            types = {c["name"]: c["type"] for c in insp.get_columns(table)}
            for col in cols:
                if isinstance(types.get(col), Integer) and not isinstance(types[col], BigInteger):
                    kind = "TYPE BIGINT" if engine.dialect.name == "postgresql" else "BIGINT"
                    verb = "ALTER COLUMN" if engine.dialect.name == "postgresql" else "MODIFY"
                    conn.exec_driver_sql(f"ALTER TABLE {table} {verb} {col} {kind}")


#: Columns added after a table's first release: a writer adds them to an older store in place
#: (nullable, so older rows read as "not measured"); a reader reads them as None.
_ADDED = {"nas_trials": ("train_loss",)}
#: How an added column is filled for the rows already there: a trial's training loss is its
#: last epoch's; a repeat's, that of the trial it repeats (as for the other metrics).
_BACKFILL = {("nas_trials", "train_loss"): (
    "UPDATE nas_trials SET train_loss = (SELECT e.train_loss FROM nas_epochs e "
    "WHERE e.trial_id = nas_trials.id ORDER BY e.epoch DESC LIMIT 1)",
    "UPDATE nas_trials SET train_loss = (SELECT o.train_loss FROM nas_trials o "
    "WHERE o.study_id = nas_trials.study_id AND o.number = nas_trials.duplicate_of) "
    "WHERE duplicate_of IS NOT NULL")}


def _add_columns(engine: Engine) -> None:
    """ALTER an older store's tables to add the columns of :data:`_ADDED` they lack."""
    with engine.begin() as conn:
        insp = inspect(conn)
        for table, cols in _ADDED.items():
            if not insp.has_table(table):
                continue
            have = {c["name"] for c in insp.get_columns(table)}
            for col in cols:
                if col not in have:
                    kind = Base.metadata.tables[table].c[col].type.compile(engine.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
                    for sql in _BACKFILL.get((table, col), ()):
                        conn.exec_driver_sql(sql)


def _check_schema(engine: Engine, where: str, *, all_tables: bool) -> list[str]:
    """The columns of :data:`_ADDED` the store lacks (an older store: a writer adds them, a
    reader reads them as None); raise StoreError when the database's nas tables lack other
    columns this version reads (a store written by another nas), instead of failing later
    with a SQL traceback. Missing
    tables are created by writers; ``all_tables`` (readers) requires those of this module
    (tables other modules add, e.g. nas_baselines, are optional)."""
    insp = inspect(engine)
    have_tables = set(insp.get_table_names())
    absent: list[str] = []
    own = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == __name__}
    lacking = []
    for table in Base.metadata.sorted_tables:
        if table.name not in have_tables:
            if all_tables and table.name in own:
                lacking.append(f"table {table.name}")
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        added = _ADDED.get(table.name, ())
        lacking += [f"{table.name}.{c.name}" for c in table.columns
                    if c.name not in have and c.name not in added]
        absent += [c for c in added if c not in have]
    if lacking:
        raise StoreError(f"{where} was written by another version of nas (it has no "
                         f"{', '.join(lacking[:4])}{', ...' if len(lacking) > 4 else ''}); "
                         "pass --storage with a new database")
    return absent


class TrialStore:
    """Read and write studies, runs and trials in one SQLAlchemy database.

    ``readonly=True`` (export, dashboards) opens an existing store without writing anything:
    no tables are created, SQLite's journal mode is left alone, and a database without nas
    tables (an Optuna database, an empty file, another program's) is refused with "no nas
    study in ..." and stays byte for byte as it was.
    """

    def __init__(self, url: str | os.PathLike, *, create: bool = True, readonly: bool = False):
        """Open the store at ``url``; ``create=False`` refuses to create a new SQLite file."""
        self.url = normalize_url(url)
        #: The URL with its password masked: the only form to print, log or store.
        self.display_url = mask_url(self.url)
        self.readonly = readonly
        self._absent: list[str] = []  # added columns an older store lacks (readers only)
        self.backend = backend = make_url(self.url).get_backend_name()
        if backend == "sqlite" and is_memory(self.url):
            raise StoreError("an in-memory SQLite database lives in one connection and is lost "
                             "at exit; pass --storage with a file path (e.g. nas.db)")
        path = sqlite_path(self.url) if backend == "sqlite" else None
        where = str(path) if path is not None else self.display_url
        if readonly and path is not None:
            if not path.is_file():
                raise StoreError(f"no database at {path}; pass the --storage of a search")
            self.engine = _sqlite_readonly_engine(path)
            self._write_engine = self.engine
        elif backend == "sqlite":
            if not create and path is not None and not path.is_file():
                raise StoreError(f"no database at {path}; pass the --storage of a search")
            if create:
                check_writable(self.url)
            self.engine = _sqlite_engine(self.url)
            self._write_engine = self.engine.execution_options(nas_write=True)
        else:
            try:
                self.engine = create_engine(self.url, pool_pre_ping=True,
                                            json_serializer=_json_dumps)
            except ImportError as e:
                raise StoreError(f"cannot open storage {self.display_url!r}: its database driver "
                                 f"is not installed ({e}); install it or use a sqlite:/// URL") from None
            except (ArgumentError, ValueError) as e:
                raise StoreError(f"cannot open storage {self.display_url!r}: {e}; use a SQLAlchemy "
                                 "URL such as sqlite:///runs/nas.db or a plain file path") from None
            self._write_engine = self.engine
            if readonly and self.engine.dialect.name == "postgresql":
                self.engine = self.engine.execution_options(postgresql_readonly=True)
        try:
            if readonly:
                if not inspect(self.engine).has_table(StudyRow.__tablename__):
                    raise StoreError(f"no nas study in {where}; pass the --storage of a search")
                self._absent = _check_schema(self.engine, where, all_tables=True)
            else:
                _check_schema(self._write_engine, where, all_tables=False)
                with self.lock():  # concurrent CREATE TABLEs race on PostgreSQL's catalog
                    Base.metadata.create_all(self._write_engine)
                    _widen_counts(self._write_engine)
                    _add_columns(self._write_engine)
        except StoreError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as e:
            self.engine.dispose()
            reason = mask_url(str(getattr(e, "orig", None) or e).splitlines()[0])
            if readonly and path is not None and "not a database" in reason:
                raise StoreError(f"no nas study in {where}: not a SQLite database") from None
            raise StoreError(f"cannot open storage {self.display_url!r}: {reason}") from None

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- transactions and locks -----------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Session]:
        """The one place that commits or rolls back."""
        if self.readonly:
            raise StoreError(f"{self.display_url} was opened read-only")
        with shielded(), Session(self._write_engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with shielded(), Session(self.engine) as session:
            yield session

    @contextmanager
    def lock(self, name: str = "nas") -> Iterator[None]:
        """A lock across processes and hosts on this database, held for the block: an
        advisory lock on PostgreSQL, ``flock`` on the SQLite file (local file systems only,
        as SQLite itself), nothing elsewhere. For work outside the ``nas_*`` transactions,
        such as creating Optuna's tables."""
        if self.backend == "postgresql":
            with self.engine.connect() as conn:
                key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big") & (2**63 - 1)
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        path = sqlite_path(self.url)
        if path is None:
            yield
            return
        import fcntl

        fd, guard = _lock_handle(path)
        with guard:  # flock does not exclude threads sharing one open file
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _locked_study(self, s: Session, name: str) -> StudyRow:
        """The study row, locked for this write transaction (claims of a study serialise)."""
        row = s.scalar(select(StudyRow).where(StudyRow.name == name).with_for_update())
        if row is None:
            self._no_study(name)
        return row

    def _no_study(self, name: str) -> NoReturn:
        raise StoreError(f"no study {name!r} in {self.display_url}; known: "
                         f"{', '.join(st['name'] for st in self.studies()) or 'none'}")

    # -- studies ------------------------------------------------------------------------------
    def open_study(self, name: str, *, space: str, budget_macs: int | None,
                   params_budget: int | None, objectives: list[str], config: dict,
                   seeds: list[dict] = ()) -> bool:
        """Create study ``name`` (queueing ``seeds``, dicts with ``params`` and ``seed_name``)
        or check that the stored one has the same definition.

        Returns True when the study already existed: its seeds were queued when it was
        created, once. Raises StoreError naming the fields that differ (a changed space,
        budget or objectives would mix incomparable trials).
        """
        check_name(name)
        config = check_json(mask_secrets(dict(config)), "config")
        want = {"space": space, "budget_macs": budget_macs, "params_budget": params_budget,
                "objectives": list(objectives)}
        for attempt in range(2):
            try:
                with self._write() as s:
                    row = s.scalar(select(StudyRow).where(StudyRow.name == name))
                    if row is None:
                        row = StudyRow(name=name, config=dict(config), created_at=_now(), **want)
                        s.add(row)
                        s.flush()
                        for seed in seeds:
                            check_json(seed["params"], "params")
                            s.add(QueueRow(study_id=row.id, params=dict(seed["params"]),
                                           seed_name=seed.get("seed_name")))
                        return False
                    break
            except IntegrityError:  # another process created it at the same moment
                if attempt:
                    raise
        diff = [f"{k} {getattr(row, k)!r} (now {v!r})" for k, v in want.items()
                if getattr(row, k) != v]
        if diff:
            raise StoreError(f"study {name!r} in {self.display_url} was created with different "
                             f"settings: {', '.join(diff)}; pass --study with a new name, or "
                             "repeat the original settings to resume it")
        return True

    def study(self, name: str) -> dict | None:
        """One study as plain data (see :meth:`studies`), or None."""
        return next((st for st in self.studies() if st["name"] == name), None)

    def studies(self) -> list[dict]:
        """Every study as plain data, oldest first."""
        with self._read() as s:
            rows = s.scalars(select(StudyRow).order_by(StudyRow.id)).all()
            return [{"name": r.name, "space": r.space, "budget_macs": r.budget_macs,
                     "params_budget": r.params_budget, "objectives": list(r.objectives),
                     "config": dict(r.config), "created_at": r.created_at} for r in rows]

    def _study_id(self, s: Session, name: str) -> int:
        sid = s.scalar(select(StudyRow.id).where(StudyRow.name == name))
        if sid is None:
            self._no_study(name)
        return sid

    # -- runs: one per search process ----------------------------------------------------------
    def join(self, study: str, worker: str | None = None) -> dict:
        """Register a run of this process on ``study``; returns ``{"id", "index", "others"}``
        (``others``: the workers of the other live runs)."""
        worker = worker or worker_id()
        with self._write() as s:
            st = self._locked_study(s, study)
            runs = s.scalars(select(RunRow).where(RunRow.study_id == st.id)).all()
            now = _now()
            row = RunRow(study_id=st.id, index=len(runs), worker=worker, started_at=now,
                         heartbeat_at=now)
            s.add(row)
            s.flush()
            others = [r.worker for r in runs if r.finished_at is None and _alive(r, now)]
            return {"id": row.id, "index": row.index, "others": others}

    def heartbeat(self, run_id: int) -> None:
        """Say that run ``run_id`` is alive."""
        with self._write() as s:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(heartbeat_at=_now()))

    def leave(self, run_id: int) -> None:
        """Mark run ``run_id`` finished."""
        with self._write() as s:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(finished_at=_now()))

    def live_runs(self, study: str) -> list[str]:
        """Workers of the study's runs that are alive now."""
        with self._read() as s:
            sid = self._study_id(s, study)
            now = _now()
            return [r.worker for r in s.scalars(select(RunRow).where(
                RunRow.study_id == sid, RunRow.finished_at.is_(None))) if _alive(r, now)]

    def recover(self, study: str) -> list[dict]:
        """Mark RUNNING trials of dead runs as interrupted FAILs and queue each again.

        A run is dead when it finished, when its process is gone (same host) or when its
        heartbeat is older than ``STALE_S``. Returns the recovered trials (plain data).
        A repeat that waited for a dead run's trial is failed too, without a retry (the
        retried original will carry the result).
        """
        with self._read() as s:  # the common case, nothing to recover, takes no write lock
            sid = self._study_id(s, study)
            if not self._stale(s, sid):
                return []
        with self._write() as s:
            st = self._locked_study(s, study)
            stale = self._stale(s, st.id)
            out = []
            for row in s.scalars(select(TrialRow).where(
                    TrialRow.study_id == st.id, TrialRow.state == "RUNNING",
                    TrialRow.run_id.in_(stale)).order_by(TrialRow.number)):
                row.state, row.interrupted, row.finished_at = "FAIL", True, _now()
                row.error = (f"interrupted: run {row.worker} stopped while the trial ran; "
                             f"{'retried' if row.duplicate_of is None else 'not retried (a repeat)'}")
                _requeue(s, row)
                out.append(_trial_dict(row, []))
            s.execute(update(RunRow).where(RunRow.id.in_(stale), RunRow.finished_at.is_(None))
                      .values(finished_at=_now()))
            return out

    @staticmethod
    def _stale(s: Session, sid: int) -> list[int]:
        """Ids of the runs that own RUNNING trials of study ``sid`` but are dead."""
        now = _now()
        runs = s.scalars(select(RunRow).where(RunRow.id.in_(
            select(TrialRow.run_id).where(TrialRow.study_id == sid, TrialRow.state == "RUNNING")))).all()
        return [r.id for r in runs if r.finished_at is not None or not _alive(r, now)]

    # -- trial life cycle ---------------------------------------------------------------------
    def queued(self, study: str) -> list[dict]:
        """The fixed points waiting to be tried, oldest first (``id``, ``params``,
        ``seed_name``, ``retry_of``)."""
        with self._read() as s:
            sid = self._study_id(s, study)
            return [{"id": q.id, "params": dict(q.params), "seed_name": q.seed_name,
                     "retry_of": q.retry_of}
                    for q in s.scalars(select(QueueRow).where(QueueRow.study_id == sid)
                                       .order_by(QueueRow.id))]

    def claim(self, study: str, run_id: int, limit: int | None, *, params: dict, genotype: str,
              genotype_hash: str, target_params: int, target_macs: int,
              seed_name: str | None = None, retry_of: int | None = None,
              queue_id: int | None = None, worker: str | None = None) -> Claim:
        """Atomically turn a proposed architecture into a trial (see :class:`Claim`).

        In one transaction holding the study's lock: take the queued point ``queue_id``
        (if given), refuse when ``limit`` trials are done or running, reuse the trial of an
        identical architecture (``genotype_hash``) when one is done or running, else start a
        new RUNNING trial with the next number.
        """
        check_json(params, "params")
        with self._write() as s:
            st = self._locked_study(s, study)
            if not _take(s, queue_id):
                return Claim("taken")
            owner = s.scalars(select(TrialRow).where(
                TrialRow.study_id == st.id, TrialRow.genotype_hash == genotype_hash,
                TrialRow.duplicate_of.is_(None), TrialRow.interrupted.is_(False))
                .order_by(TrialRow.number).limit(1)).first()
            if owner is None and limit is not None and self._count(s, st.id) >= limit:
                if queue_id is not None:
                    s.rollback()  # the point stays queued for a later run with a higher limit
                return Claim("full")
            row = _new_trial(s, st.id, run_id, "RUNNING", params=params, genotype=genotype,
                             genotype_hash=genotype_hash, seed_name=seed_name, retry_of=retry_of,
                             target_params=target_params, target_macs=target_macs, worker=worker)
            if owner is not None:
                row.duplicate_of = owner.number
                if owner.state != "RUNNING":
                    _copy_result(owner, row, row.started_at)
            s.flush()
            return Claim("repeat" if owner is not None else "new", row.id, row.number,
                         _trial_dict(owner, []) if owner is not None else None)

    def record_over_budget(self, study: str, run_id: int, *, params: dict, target_params: int,
                           target_macs: int, error: str, seed_name: str | None = None,
                           retry_of: int | None = None, queue_id: int | None = None,
                           worker: str | None = None) -> int | None:
        """Record a proposal over the budget (never built nor trained) as PRUNED with
        ``feasible`` False; returns its number (None: the queued point was taken)."""
        check_json(params, "params")
        with self._write() as s:
            st = self._locked_study(s, study)
            if not _take(s, queue_id):
                return None
            row = _new_trial(s, st.id, run_id, "PRUNED", feasible=False, params=params,
                             error=error, seed_name=seed_name, retry_of=retry_of,
                             target_params=target_params, target_macs=target_macs,
                             worker=worker, duration_s=0.0)
            row.finished_at = row.started_at
            s.flush()
            return row.number

    def finish(self, trial_id: int, state: str, *, error: str | None = None,
               interrupted: bool = False, epochs: list[dict] | None = None,
               duplicate_of: int | None = None, requeue: bool = False, **metrics: Any) -> dict:
        """Close a RUNNING trial: COMPLETE with its metrics (:data:`METRICS`) and per-epoch
        rows, PRUNED, or FAIL with its error text; ``requeue`` queues its point again (an
        interrupted trial). A trial already closed (e.g. recovered by another process after
        a long stall) is left as it is. Returns the trial as plain data."""
        if state not in FINISHED:
            raise ValueError(f"finish state must be one of {FINISHED}, got {state!r}")
        bad = set(metrics) - set(METRICS) - {"worker"}
        if bad:
            raise ValueError(f"unknown trial fields {sorted(bad)}")
        with self._write() as s:
            row = s.get(TrialRow, trial_id)
            if row.state != "RUNNING":
                return _trial_dict(row, [])
            if error is not None:  # PostgreSQL text cannot hold NUL characters
                error = error.replace("\x00", "\\x00")
            row.state, row.error, row.interrupted = state, error, interrupted
            for k, v in metrics.items():
                setattr(row, k, v)
            for e in epochs or []:
                s.add(EpochRow(trial_id=trial_id, epoch=int(e["epoch"]),
                               val_accuracy=e.get("val_accuracy"), val_loss=e.get("val_loss"),
                               train_loss=e.get("train_loss"), seconds=e.get("seconds")))
            row.finished_at = _now()
            row.duration_s = (row.finished_at - row.started_at).total_seconds()
            if requeue:
                _requeue(s, row)
            return _trial_dict(row, [])

    def resolve_repeat(self, trial_id: int) -> dict | None:
        """Close a repeat whose original has finished by copying its outcome; None while
        the original still runs. Returns the closed trial as plain data."""
        with self._write() as s:
            row = s.get(TrialRow, trial_id)
            if row.state != "RUNNING":
                return _trial_dict(row, [])
            owner = s.scalar(select(TrialRow).where(TrialRow.study_id == row.study_id,
                                                    TrialRow.number == row.duplicate_of))
            if owner.state == "RUNNING":
                return None
            _copy_result(owner, row, _now())
            return _trial_dict(row, [])

    @staticmethod
    def _count(s: Session, sid: int, finished: bool = False) -> int:
        """Trials that use up the trial limit: trained or training (stopped early by a
        pruner, or failed, included); not over budget, not interrupted, not repeats."""
        q = select(func.count()).select_from(TrialRow).where(
            TrialRow.study_id == sid, TrialRow.interrupted.is_(False), TrialRow.feasible.is_(True),
            TrialRow.duplicate_of.is_(None))
        if finished:
            q = q.where(TrialRow.state != "RUNNING")
        return s.scalar(q) or 0

    # -- reading ------------------------------------------------------------------------------
    def trials(self, study_name: str, *, since: int = -1) -> list[dict]:
        """Every trial of a study as plain data, by trial number (``since``: only numbers
        above it). Keys: the columns of ``nas_trials`` but the ids, plus ``epochs``."""
        with self._read() as s:
            sid = self._study_id(s, study_name)
            rows = s.scalars(select(TrialRow).where(TrialRow.study_id == sid,
                                                    TrialRow.number > since)
                             .order_by(TrialRow.number)
                             .options(*[defer(getattr(TrialRow, c)) for c in self._absent])).all()
            epochs: dict[int, list[dict]] = {}
            ids = [r.id for r in rows]
            if ids:
                for e in s.scalars(select(EpochRow).where(EpochRow.trial_id.in_(ids))
                                   .order_by(EpochRow.trial_id, EpochRow.epoch)):
                    epochs.setdefault(e.trial_id, []).append(
                        {"epoch": e.epoch, "val_accuracy": e.val_accuracy, "val_loss": e.val_loss,
                         "train_loss": e.train_loss, "seconds": e.seconds})
            return [_trial_dict(r, epochs.get(r.id, []), self._absent) for r in rows]

    def trial(self, study_name: str, number: int) -> dict:
        """One trial by number; StoreError when absent."""
        for t in self.trials(study_name, since=number - 1):
            if t["number"] == number:
                return t
        raise StoreError(f"study {study_name!r} has no trial {number}")

    def count(self, study: str, *, finished: bool = False) -> int:
        """Trials that count toward a trial limit (see :meth:`_count`); ``finished``: only
        those that ended."""
        with self._read() as s:
            return self._count(s, self._study_id(s, study), finished)


_LOCKS: dict = {}


def _lock_handle(path: Path):
    """This process's descriptor of ``path`` for ``flock``, opened once and never closed:
    closing any descriptor of a SQLite file drops the POSIX locks SQLite holds on it in this
    process (a documented SQLite pitfall)."""
    import threading

    key = (str(path), os.getpid())
    if key not in _LOCKS:
        _LOCKS[key] = (os.open(path, os.O_RDONLY | os.O_CREAT, 0o644), threading.Lock())
    return _LOCKS[key]


def _take(s: Session, queue_id: int | None) -> bool:
    """Take the queued point ``queue_id`` (if any); False when another process took it."""
    if queue_id is None:
        return True
    q = s.get(QueueRow, queue_id)
    if q is not None:
        s.delete(q)
    return q is not None


def _new_trial(s: Session, sid: int, run_id: int, state: str, *, params: dict,
               worker: str | None, **fields: Any) -> TrialRow:
    """A new trial of study ``sid`` with the next number, started now."""
    last = s.scalar(select(func.max(TrialRow.number)).where(TrialRow.study_id == sid))
    row = TrialRow(study_id=sid, run_id=run_id, number=0 if last is None else last + 1,
                   state=state, params=dict(params), started_at=_now(),
                   worker=worker or worker_id(), **fields)
    s.add(row)
    return row


def _requeue(s: Session, row: TrialRow) -> None:
    """Queue the interrupted trial ``row`` again (not a repeat: its original is retried)."""
    if row.duplicate_of is None:
        s.add(QueueRow(study_id=row.study_id, params=dict(row.params or {}),
                       seed_name=row.seed_name, retry_of=row.number))


def _alive(run: RunRow, now: datetime) -> bool:
    alive = worker_alive(run.worker)
    if alive is not None:
        return alive
    return now - run.heartbeat_at < timedelta(seconds=STALE_S)


def _copy_result(owner: TrialRow, row: TrialRow, now: datetime) -> None:
    """Give the repeat ``row`` the outcome of the finished trial ``owner``."""
    row.state = owner.state if owner.state != "FAIL" or not owner.interrupted else "FAIL"
    for k in METRICS:
        setattr(row, k, getattr(owner, k))
    if owner.interrupted:
        row.interrupted = True
        row.error = f"the trial it repeats (#{owner.number}) was interrupted"
    elif owner.state != "COMPLETE":
        row.error = f"same architecture as trial {owner.number}: {owner.error or owner.state}"
    row.finished_at = now
    row.duration_s = (now - row.started_at).total_seconds() if row.started_at else 0.0


_FIELDS = ("number", "state", "params", "genotype", "genotype_hash", "seed_name", "target_params",
           "target_macs", "proxy_params", "proxy_macs", "accuracy", "val_loss", "train_loss",
           "proxy_score", "latency_ms", "error", "interrupted", "feasible", "retry_of", "duplicate_of",
           "started_at", "finished_at", "duration_s", "worker")


def _trial_dict(row: TrialRow, epochs: list[dict], absent: Sequence[str] = ()) -> dict:
    out = {k: None if k in absent else getattr(row, k) for k in _FIELDS}
    out["params"] = dict(row.params or {})
    out["epochs"] = epochs
    out["trial_id"] = row.id
    return out
