"""``python -m nas.baselines``: classic nets trained under a study's own protocol.

    python -m nas.baselines --storage nas.db --study resnet_like-600MFLOPs-val_loss+macs

A search's accuracies are proxy-training accuracies (a few epochs on small images), not
ImageNet top-1: the only fair comparison for a found architecture is a classic net trained
the same way. This command takes zoo nets (by default the classics within a band around the
study's MAC budget, the one nearest the budget from each family), gives each the treatment a
search trial gets (the target-spec genotype, handed to the study's own evaluator, which
applies the proxy transform and the study's dataset, resolution, epochs, batch size,
learning rate and seed) and stores the results as the study's baselines. Dashboards draw
them on the Pareto charts and say, in one line, whether the best found net beats the best
baseline at no more MACs.

Baselines live in their own table, ``nas_baselines`` (one row per study, net and training
seed), beside the study's trials: they never count toward ``--trials``, never reach the
sampler and never appear in Optuna's view of the study. Re-running the command skips the
(net, seed) pairs already trained. ``--seeds 2`` trains each net on two seeds, which also
measures the protocol's seed-to-seed noise.
"""
from __future__ import annotations

import sys
import time
from dataclasses import fields
from datetime import datetime, timezone
from typing import Callable, Sequence

from sqlalchemy import (JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, Text,
                        UniqueConstraint, inspect, select)
from sqlalchemy.orm import Mapped, Session, mapped_column

from nas import cli
from nas.errors import NasError
from nas.store import Base

#: Default band of MACs around the study's budget, as fractions of it.
BAND = (0.5, 1.1)


class BaselineError(NasError):
    """A baseline request that cannot work (no such study or net, no budget, wrong input)."""


class BaselineRow(Base):
    """One classic net trained under a study's protocol with one training seed."""

    __tablename__ = "nas_baselines"
    __table_args__ = (UniqueConstraint("study_id", "name", "seed"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("nas_studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    family: Mapped[str | None] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))            # COMPLETE | FAIL
    genotype: Mapped[str | None] = mapped_column(Text)
    genotype_hash: Mapped[str | None] = mapped_column(String(128))
    target_params: Mapped[int | None] = mapped_column(BigInteger)
    target_macs: Mapped[int | None] = mapped_column(BigInteger)
    proxy_params: Mapped[int | None] = mapped_column(BigInteger)
    proxy_macs: Mapped[int | None] = mapped_column(BigInteger)
    accuracy: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    proxy_score: Mapped[float | None] = mapped_column(Float)
    published_top1: Mapped[float | None] = mapped_column(Float)
    epochs: Mapped[list | None] = mapped_column(JSON)
    evaluation: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)


_FIELDS = ("name", "family", "seed", "state", "genotype", "genotype_hash", "target_params",
           "target_macs", "proxy_params", "proxy_macs", "accuracy", "val_loss", "proxy_score",
           "published_top1", "epochs", "evaluation", "error", "duration_s", "created_at")


def _as_trial(row: BaselineRow) -> dict:
    """A baseline as a trial-shaped dict (so the dashboard's trial functions read it)."""
    out = {k: getattr(row, k) for k in _FIELDS}
    out.update(baseline=True, seed_name=row.name, number=None, params={},
               epochs=list(row.epochs or []), feasible=True, duplicate_of=None)
    return out


def _study_id(store, s: Session, study: str) -> int:
    from nas.store import StudyRow

    sid = s.scalar(select(StudyRow.id).where(StudyRow.name == study))
    if sid is None:
        known = ", ".join(st["name"] for st in store.studies()) or "none"
        raise BaselineError(f"no study {study!r} in {store.url}; known: {known}")
    return sid


def read(store, study: str) -> list[dict]:
    """The study's baselines (trial-shaped dicts with ``baseline`` True), by MACs then name;
    [] when the store has no baselines table (nothing was ever trained, or an older store)."""
    if not inspect(store.engine).has_table(BaselineRow.__tablename__):
        return []
    with Session(store.engine) as s:
        sid = _study_id(store, s, study)
        rows = s.scalars(select(BaselineRow).where(BaselineRow.study_id == sid)).all()
        return sorted((_as_trial(r) for r in rows),
                      key=lambda t: (t["target_macs"] or 0, t["name"], t["seed"]))


def write(store, study: str, result: dict) -> None:
    """Store one baseline result (keys of ``nas_baselines``), replacing the same (net, seed)."""
    BaselineRow.__table__.create(store.engine, checkfirst=True)
    with Session(store.engine) as s, s.begin():
        sid = _study_id(store, s, study)
        old = s.scalar(select(BaselineRow).where(BaselineRow.study_id == sid,
                                                 BaselineRow.name == result["name"],
                                                 BaselineRow.seed == result["seed"]))
        if old is not None:
            s.delete(old)
            s.flush()
        s.add(BaselineRow(study_id=sid, created_at=datetime.now(timezone.utc).replace(tzinfo=None),
                          **{k: result.get(k) for k in _FIELDS if k != "created_at"}))


# ---------------------------------------------------------------- choosing nets
def candidates(input_shape: Sequence[int], num_classes: int, budget_macs: int | None, *,
               band: tuple[float, float] = BAND, per_family: int = 1,
               names: Sequence[str] | None = None) -> list[dict]:
    """Zoo nets to train: ``names`` if given, else the nets with the space's input shape and
    class count whose counted MACs lie in [band[0], band[1]] x budget, the ``per_family``
    nearest the budget from each family. Rows: name, family, macs, params, top1."""
    from nas.cost import count
    from nas.zoo import ZOO

    if names:
        rows = []
        for n in names:
            e = ZOO.get(n)  # unknown names: a RegistryError naming the closest entries
            c = count(e.builder())
            rows.append({"name": n, "family": e.family, "macs": c.macs, "params": c.params,
                         "top1": e.top1, "input_shape": tuple(e.input_shape),
                         "num_classes": e.num_classes})
        return rows
    if budget_macs is None:
        raise BaselineError("the study has no MAC budget, so no band to choose nets from; "
                            "name them with --nets (e.g. --nets resnet18,mobilenet_v2)")
    lo, hi = band[0] * budget_macs, band[1] * budget_macs
    by_family: dict[str, list[dict]] = {}
    for name, e in ZOO.items():
        if tuple(e.input_shape) != tuple(input_shape) or e.num_classes != num_classes:
            continue
        if e.published_macs is not None and not lo / 1.5 <= e.published_macs <= hi * 1.5:
            continue  # far outside the band: skip counting it
        c = count(e.builder())
        if lo <= c.macs <= hi:
            by_family.setdefault(e.family, []).append(
                {"name": name, "family": e.family, "macs": c.macs, "params": c.params,
                 "top1": e.top1, "input_shape": tuple(e.input_shape), "num_classes": e.num_classes})
    out = []
    for fam in sorted(by_family):
        out += sorted(by_family[fam], key=lambda r: (abs(r["macs"] - budget_macs), r["name"]))[:per_family]
    return sorted(out, key=lambda r: (r["macs"], r["name"]))


# ---------------------------------------------------------------- training
def study_config(store, study: str):
    """The study's stored search settings as a :class:`nas.search.SearchConfig`."""
    from nas.search import SearchConfig

    st = store.study(study)
    if st is None:
        known = ", ".join(s["name"] for s in store.studies()) or "none"
        raise BaselineError(f"no study {study!r} in {store.url}; known: {known}")
    stored = dict(st.get("config") or {})
    names = {f.name for f in fields(SearchConfig)}
    if "space" not in stored:
        raise BaselineError(f"study {study!r} stores no search settings (not written by "
                            "nas.search); cannot repeat its protocol")
    from nas.search import legacy_config

    # a setting the study predates: the value it was trained with, not today's default
    kw = {k: v for k, v in legacy_config(stored).items() if k in names}
    if stored.get("space_path"):
        kw["space"] = stored["space_path"]
    return st, SearchConfig(**kw)


def train_baselines(storage: str, study: str, *, nets: Sequence[str] | None = None,
                    band: tuple[float, float] = BAND, per_family: int = 1, seeds: int = 1,
                    device: str = "auto", threads: int = 1, evaluator=None,
                    out: Callable[[str], None] = print) -> list[dict]:
    """Train the chosen nets under the study's protocol and store them; returns the study's
    baselines (all of them, earlier ones included). ``evaluator`` replaces the study's
    evaluator (tests)."""
    from nas.cost import count, human
    from nas.spaces import load_space
    from nas.store import TrialStore
    from nas.zoo import ZOO

    reader = TrialStore(storage, readonly=True)  # a missing study must leave the file untouched
    try:
        study_config(reader, study)
    finally:
        reader.close()
    store = TrialStore(storage, create=False)
    try:
        st, config = study_config(store, study)
        space = load_space(config.space)
        target = tuple(space.input_shape)
        classes = getattr(space, "num_classes", None) or 1000
        chosen = candidates(target, classes, st.get("budget_macs"), band=band,
                            per_family=per_family, names=nets)
        wrong = [r["name"] for r in chosen
                 if r["input_shape"] != target or r["num_classes"] != classes]
        if wrong:
            raise BaselineError(f"{', '.join(wrong)}: input or classes differ from the space's "
                                f"target ({'x'.join(map(str, target))}, {classes} classes); "
                                "a baseline must be costed at the space's target spec")
        if not chosen:
            lo, hi = (f * st["budget_macs"] for f in band)
            raise BaselineError(f"no zoo net with input {'x'.join(map(str, target))} between "
                                f"{human(lo)}MACs and {human(hi)}MACs; widen --band or name "
                                "--nets")
        done = {(b["name"], b["seed"]) for b in read(store, study) if b["state"] == "COMPLETE"}
        seed_list = [config.seed + k for k in range(seeds)]
        todo = [(r, sd) for r in chosen for sd in seed_list if (r["name"], sd) not in done]
        out(f"study {study!r}: {len(chosen)} baseline net(s) x {seeds} seed(s), "
            f"{len(todo)} to train ({len(chosen) * seeds - len(todo)} already stored); "
            f"protocol: {_protocol_text(config)}")
        if todo and evaluator is None:
            import torch

            from nas.search import TrainEvaluator, resolve_device
            torch.set_num_threads(threads)
            dev = resolve_device(device)
        for r, sd in todo:
            g = ZOO.get(r["name"]).builder()
            c = count(g)
            ev = evaluator
            if ev is None:
                cfg = _with_seed(config, sd)
                ev = TrainEvaluator(cfg, target, dev)
            t0 = time.monotonic()
            result = {"name": r["name"], "family": r["family"], "seed": sd, "genotype": g.to_json(),
                      "genotype_hash": g.canonical_hash(), "target_params": c.params,
                      "target_macs": c.macs, "published_top1": r["top1"],
                      "evaluation": {**config.evaluation(), "seed": sd}}
            try:
                m = dict(ev(g, lambda epoch, acc: None))
                result.update(state="COMPLETE", epochs=m.pop("epochs", None),
                              **{k: m.get(k) for k in ("accuracy", "val_loss", "proxy_score",
                                                       "proxy_params", "proxy_macs")})
                what = (f"accuracy {m['accuracy']:.4f}" if m.get("accuracy") is not None
                        else f"{config.proxy} {m.get('proxy_score')}")
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - a net that fails is a result, the rest go on
                result.update(state="FAIL", error=f"{type(e).__name__}: {e}")
                what = "FAIL " + cli.one_line(result["error"], 100)
            result["duration_s"] = time.monotonic() - t0
            write(store, study, result)
            out(f"  {r['name']:<22} seed {sd}: {what}, {human(c.macs)}MACs "
                f"({result['duration_s']:.0f}s)")
        return read(store, study)
    finally:
        store.close()


def _with_seed(config, seed: int):
    from dataclasses import replace
    return replace(config, seed=seed)


def _protocol_text(config) -> str:
    ev = config.evaluation()
    return ", ".join(f"{k} {v}" for k, v in ev.items() if v is not None) + f", seed {config.seed}"


# ---------------------------------------------------------------- CLI
@cli.guarded
def main(argv: Sequence[str] | None = None) -> int:
    """CLI; 0 on success, 2 on bad input."""
    from nas.dashboard import compute as C

    p = cli.ArgumentParser(prog="python -m nas.baselines",
                           description="Train classic nets under a study's protocol and store "
                                       "them as its baselines.")
    p.add_argument("--storage", required=True, help="SQLAlchemy URL or SQLite file of the study")
    p.add_argument("--study", required=True, help="the study whose protocol the nets are trained with")
    p.add_argument("--nets", help="comma-separated zoo names (default: the classics in --band, "
                                  "the one nearest the budget per family)")
    p.add_argument("--band", default=f"{BAND[0]},{BAND[1]}",
                   help="MACs band as fractions of the budget, LOW,HIGH")
    p.add_argument("--per-family", type=cli.positive_int, default=1,
                   help="nets per family from the band")
    p.add_argument("--seeds", type=cli.positive_int, default=1,
                   help="training seeds per net (the study's seed, +1, ...); 2 or more also "
                        "measures seed-to-seed noise")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    p.add_argument("--threads", type=cli.positive_int, default=1, help="torch threads")
    p.add_argument("--list", action="store_true", help="list the chosen nets and stop")
    a = p.parse_args(argv)
    band = _band(a.band)
    nets = [n.strip() for n in a.nets.split(",") if n.strip()] if a.nets else None
    if a.list:
        from nas.cost import human
        from nas.spaces import load_space
        from nas.store import TrialStore

        store = TrialStore(a.storage, readonly=True)
        try:
            st, config = study_config(store, a.study)
        finally:
            store.close()
        space = load_space(config.space)
        for r in candidates(tuple(space.input_shape), getattr(space, "num_classes", None) or 1000,
                            st.get("budget_macs"), band=band, per_family=a.per_family, names=nets):
            print(f"{r['name']:<22} {r['family']:<16} {human(r['macs'])}MACs {human(r['params'])} params")
        return 0
    baselines = train_baselines(a.storage, a.study, nets=nets, band=band, per_family=a.per_family,
                                seeds=a.seeds, device=a.device, threads=a.threads)
    from nas.store import TrialStore

    store = TrialStore(a.storage, readonly=True)
    try:
        trials = store.trials(a.study)
        study = store.study(a.study)
    finally:
        store.close()
    print(C.baseline_verdict(trials, baselines, study)["text"])
    return 0


def _band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise BaselineError(f"--band {text!r} is not LOW,HIGH (fractions of the budget, e.g. "
                            "0.5,1.1)") from None
    if not 0 <= lo < hi or hi != hi or hi == float("inf"):
        raise BaselineError(f"--band {text!r}: need 0 <= LOW < HIGH, finite (e.g. 0.5,1.1)")
    return lo, hi


if __name__ == "__main__":
    sys.exit(main())
