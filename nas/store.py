"""Where search results live: SQLAlchemy tables for studies, trials and per-epoch metrics.

SQLite by default (WAL journal, busy timeout, eager write locks so that several worker
processes can share one file); any SQLAlchemy URL works. Every write goes through
:meth:`TrialStore._write`, the one place that commits or rolls back. Table names carry a
``nas_`` prefix so Optuna's own RDB tables can live in the same database.
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import math

from sqlalchemy import (JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, Text,
                        UniqueConstraint, create_engine, event, func, inspect, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from nas.errors import NasError

STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
BUSY_TIMEOUT_MS = 30_000
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
    trials: Mapped[list["TrialRow"]] = relationship(back_populates="study")


class TrialRow(Base):
    """One evaluated (or running, or failed) architecture of a study."""

    __tablename__ = "nas_trials"
    __table_args__ = (UniqueConstraint("study_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("nas_studies.id"), index=True)
    number: Mapped[int | None] = mapped_column(Integer)  # None while a slot is claimed, not asked
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
    proxy_score: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    interrupted: Mapped[bool] = mapped_column(default=False)
    feasible: Mapped[bool] = mapped_column(default=True)
    retry_of: Mapped[int | None] = mapped_column(Integer)
    duplicate_of: Mapped[int | None] = mapped_column(Integer)  # same genotype hash, reused result
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(Text)
    study: Mapped[StudyRow] = relationship(back_populates="trials")
    epochs: Mapped[list["EpochRow"]] = relationship(order_by="EpochRow.epoch",
                                                    cascade="all, delete-orphan")


class EpochRow(Base):
    """Validation accuracy and loss after one training epoch of a trial."""

    __tablename__ = "nas_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "epoch"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("nas_trials.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)


def normalize_url(url: str | os.PathLike) -> str:
    """A SQLAlchemy URL from ``url``; a plain file path becomes an absolute ``sqlite:///`` URL."""
    text = os.fspath(url)
    if "://" in text:
        try:
            make_url(text)
        except (ArgumentError, ValueError) as e:
            raise StoreError(f"cannot parse storage URL {text!r}: {e}; use a SQLAlchemy URL such "
                             "as sqlite:///runs/nas.db or a plain file path") from None
        return _default_driver(text)
    return "sqlite:///" + str(Path(text).expanduser().resolve())


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


def check_writable(url: str) -> None:
    """Raise StoreError unless a SQLite database file can be created or written at ``url``."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.is_dir():
        raise StoreError(f"cannot create database {path}: folder {path.parent} does not exist; "
                         "create it or pass --storage with another path or URL")
    existed = path.exists()
    try:  # permission bits alone mislead (root, read-only mounts, /proc): try for real
        with open(path, "ab"):
            pass
    except OSError as e:
        raise StoreError(f"database {path} is not writable ({e.strerror}); pass --storage with "
                         "a writable path or URL") from None
    if not existed:
        path.unlink()


def worker_id() -> str:
    """This process's identity in the store: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str | None) -> bool:
    """Whether the process named by ``worker`` (``host:pid``) still runs on this host."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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
        # with SQLITE_BUSY at once in WAL mode instead of waiting out the busy timeout.
        immediate = conn.get_execution_options().get("nas_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _sqlite_readonly_engine(path: Path) -> Engine:
    """An engine that opens ``path`` with SQLite's read-only flag: no table is created, no
    journal mode changed, nothing written (only the per-connection busy timeout is set)."""
    import sqlite3

    uri = path.as_uri() + "?mode=ro"

    def connect():
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


class TrialStore:
    """Read and write studies and trials in one SQLAlchemy database.

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
        backend = make_url(self.url).get_backend_name()
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
            else:
                Base.metadata.create_all(self._write_engine)
                _widen_counts(self._write_engine)
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

    # -- the one place that commits or rolls back --------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Session]:
        if self.readonly:
            raise StoreError(f"{self.display_url} was opened read-only")
        with Session(self._write_engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    # -- studies ------------------------------------------------------------------------------
    def open_study(self, name: str, *, space: str, budget_macs: int | None,
                   params_budget: int | None, objectives: list[str], config: dict) -> bool:
        """Create study ``name`` or check that the stored one has the same definition.

        Returns True when the study already existed. Raises StoreError naming the fields that
        differ (a changed space, budget or objectives would mix incomparable trials).
        """
        check_name(name)
        config = check_json(mask_secrets(dict(config)), "config")
        with self._write() as s:
            row = s.scalar(select(StudyRow).where(StudyRow.name == name))
            if row is None:
                s.add(StudyRow(name=name, space=space, budget_macs=budget_macs,
                               params_budget=params_budget, objectives=list(objectives),
                               config=config, created_at=_now()))
                return False
            want = {"space": space, "budget_macs": budget_macs, "params_budget": params_budget,
                    "objectives": list(objectives)}
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
            raise StoreError(f"no study {name!r} in {self.display_url}; known: "
                             f"{', '.join(st['name'] for st in self.studies()) or 'none'}")
        return sid

    # -- trial life cycle ---------------------------------------------------------------------
    def claim(self, study: str, limit: int | None, worker: str) -> int | None:
        """Reserve a slot for one more trial unless ``limit`` trials are done or running.

        Counting and reserving happen in one write transaction, so parallel workers never
        overshoot ``limit``. Returns the slot id for :meth:`start`, or None when full.
        """
        with self._write() as s:
            sid = self._study_id(s, study)
            if limit is not None and self._count(s, sid) >= limit:
                return None
            row = TrialRow(study_id=sid, state="RUNNING", worker=worker, started_at=_now())
            s.add(row)
            s.flush()
            return row.id

    @staticmethod
    def _count(s: Session, sid: int) -> int:
        """Trials that use up the trial limit: running or evaluated (stopped early by a
        pruner included), not over budget, not interrupted."""
        q = select(func.count()).select_from(TrialRow).where(
            TrialRow.study_id == sid, TrialRow.interrupted.is_(False), TrialRow.feasible.is_(True),
            TrialRow.duplicate_of.is_(None))
        return s.scalar(q) or 0

    def evaluated(self, slot: int, genotype_hash: str) -> dict | None:
        """The first COMPLETE trial of ``slot``'s study with this genotype hash (an isomorphic
        architecture already evaluated under the study's fixed settings), or None."""
        with self._read() as s:
            sid = s.get(TrialRow, slot).study_id
            row = s.scalars(select(TrialRow).where(
                TrialRow.study_id == sid, TrialRow.genotype_hash == genotype_hash,
                TrialRow.state == "COMPLETE", TrialRow.duplicate_of.is_(None), TrialRow.id != slot)
                .order_by(TrialRow.id).limit(1)).first()
            return None if row is None else _trial_dict(row, [])

    def release(self, slot: int) -> None:
        """Drop a claimed slot that never became a trial."""
        with self._write() as s:
            row = s.get(TrialRow, slot)
            if row is not None and row.number is None:
                s.delete(row)

    def start(self, slot: int, number: int, *, params: dict, genotype: str | None = None,
              genotype_hash: str | None = None, seed_name: str | None = None,
              retry_of: int | None = None, **costs: int | None) -> None:
        """Record that trial ``number`` (Optuna's number) runs in ``slot`` with these params
        and costs (target_params, target_macs, proxy_params, proxy_macs)."""
        check_json(params, "params")
        with self._write() as s:
            row = s.get(TrialRow, slot)
            row.number, row.params, row.seed_name, row.retry_of = number, params, seed_name, retry_of
            row.genotype, row.genotype_hash = genotype, genotype_hash
            for k, v in costs.items():
                setattr(row, k, v)
            row.started_at = _now()

    def finish(self, slot: int, state: str, *, accuracy: float | None = None,
               proxy_score: float | None = None, latency_ms: float | None = None,
               error: str | None = None, interrupted: bool = False, feasible: bool = True,
               epochs: list[dict] | None = None, **fields: Any) -> None:
        """Close a trial: COMPLETE with its metrics and per-epoch rows, PRUNED, or FAIL with
        its error text; ``fields`` sets further columns (e.g. proxy_macs)."""
        if state not in FINISHED:
            raise ValueError(f"finish state must be one of {FINISHED}, got {state!r}")
        with self._write() as s:
            row = s.get(TrialRow, slot)
            row.state, row.accuracy, row.proxy_score = state, accuracy, proxy_score
            if error is not None:  # PostgreSQL text cannot hold NUL characters
                error = error.replace("\x00", "\\x00")
            row.latency_ms, row.error, row.interrupted = latency_ms, error, interrupted
            row.feasible = feasible
            for k, v in fields.items():
                setattr(row, k, v)
            for e in epochs or []:
                s.add(EpochRow(trial_id=slot, epoch=int(e["epoch"]),
                               val_accuracy=e.get("val_accuracy"), train_loss=e.get("train_loss"),
                               seconds=e.get("seconds")))
            row.finished_at = _now()
            row.duration_s = (row.finished_at - row.started_at).total_seconds()

    def recover(self, study: str) -> list[dict]:
        """Mark RUNNING trials whose worker process is gone as interrupted FAILs.

        Returns the recovered trials (plain data) so the caller can retry them; claimed slots
        that never got a trial number are deleted.
        """
        with self._write() as s:
            sid = self._study_id(s, study)
            rows = s.scalars(select(TrialRow).where(TrialRow.study_id == sid,
                                                    TrialRow.state == "RUNNING")).all()
            stale = []
            for row in rows:
                if worker_alive(row.worker) and row.worker != worker_id():
                    continue
                if row.number is None:
                    s.delete(row)
                    continue
                row.state, row.interrupted, row.finished_at = "FAIL", True, _now()
                row.error = f"interrupted: worker {row.worker} stopped while the trial ran; retried"
                stale.append(_trial_dict(row, []))
            return stale

    # -- reading ------------------------------------------------------------------------------
    def trials(self, study_name: str) -> list[dict]:
        """Every trial of a study as plain data, by trial number (contract in the briefing)."""
        with self._read() as s:
            sid = self._study_id(s, study_name)
            rows = s.scalars(select(TrialRow).where(TrialRow.study_id == sid,
                                                    TrialRow.number.is_not(None))
                             .order_by(TrialRow.number)).all()
            epochs: dict[int, list[dict]] = {}
            ids = [r.id for r in rows]
            if ids:
                for e in s.scalars(select(EpochRow).where(EpochRow.trial_id.in_(ids))
                                   .order_by(EpochRow.trial_id, EpochRow.epoch)):
                    epochs.setdefault(e.trial_id, []).append(
                        {"epoch": e.epoch, "val_accuracy": e.val_accuracy,
                         "train_loss": e.train_loss, "seconds": e.seconds})
            return [_trial_dict(r, epochs.get(r.id, [])) for r in rows]

    def trial(self, study_name: str, number: int) -> dict:
        """One trial by number; StoreError when absent."""
        for t in self.trials(study_name):
            if t["number"] == number:
                return t
        raise StoreError(f"study {study_name!r} has no trial {number}")

    def count(self, study: str) -> int:
        """Trials that count toward a trial limit (see :meth:`claim`)."""
        with self._read() as s:
            return self._count(s, self._study_id(s, study))


_FIELDS = ("number", "state", "params", "genotype", "genotype_hash", "seed_name", "target_params",
           "target_macs", "proxy_params", "proxy_macs", "accuracy", "proxy_score", "latency_ms",
           "error", "interrupted", "feasible", "retry_of", "duplicate_of", "started_at", "finished_at", "duration_s", "worker")


def _trial_dict(row: TrialRow, epochs: list[dict]) -> dict:
    out = {k: getattr(row, k) for k in _FIELDS}
    out["params"] = dict(row.params or {})
    out["epochs"] = epochs
    return out


def dumps(trials: list[dict]) -> str:
    """Trials as JSON text (datetimes in ISO format), for exports and debugging."""
    return json.dumps(trials, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o))
