"""What a trial's quality is, which trial is best, and which trials form the Pareto front.

The one place that knows how to score a trial record (a dict as
:meth:`nas.store.TrialStore.trials` returns it, or an evaluator's metrics dict):

==================  ==========  ================================================================
metric              direction   value read from
==================  ==========  ================================================================
``accuracy``        maximize    ``trial["accuracy"]`` (last epoch's validation accuracy)
``val_loss``        minimize    ``trial["val_loss"]`` (mean validation cross-entropy)
``train_val_loss``  minimize    ``sqrt(trial["val_loss"] * trial["train_loss"])``: the geometric
                                mean of the validation loss and the last epoch's mean training
                                loss (from ``trial["epochs"]`` when the trial has no train_loss)
a proxy name        maximize    ``trial["proxy_score"]`` (zero-cost proxy, e.g. ``naswot``)
==================  ==========  ================================================================

The search's progress and summary, ``nas.export --best`` and the dashboards all go through
:func:`metric`, :func:`best` and :func:`front`, so they agree on what "best" means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

MAX, MIN = "max", "min"


def is_number(x: Any) -> bool:
    """True for a finite int or float (not bool, None or NaN)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Metric:
    """A quality measure: its name, the trial key holding it and whether higher is better."""

    name: str
    key: str
    sense: str       # MAX or MIN
    label: str       # axis title / table header
    derive: Callable[[dict], Any] | None = None   # the value from the trial, when not one key

    @property
    def direction(self) -> str:
        """Optuna's word for :attr:`sense`: ``maximize`` or ``minimize``."""
        return "maximize" if self.sense == MAX else "minimize"

    def value(self, trial: dict) -> float | None:
        """The trial's quality as a finite float, or None when it has none."""
        v = self.derive(trial) if self.derive is not None else trial.get(self.key)
        return float(v) if is_number(v) else None

    def better(self, a: float, b: float) -> bool:
        """True when quality ``a`` is strictly better than ``b``."""
        return a > b if self.sense == MAX else a < b

    def rank(self, v: float) -> float:
        """A key that sorts better qualities first (smaller is better)."""
        return -v if self.sense == MAX else v

    def fmt(self, v: float | None) -> str:
        """``v`` as the console and dashboards print it."""
        return "n/a" if v is None else f"{v:.4f}"


ACCURACY = Metric("accuracy", "accuracy", MAX, "validation accuracy")
VAL_LOSS = Metric("val_loss", "val_loss", MIN, "validation loss")


def train_loss(trial: dict) -> float | None:
    """The last epoch's mean training loss: ``trial["train_loss"]``, else its last epoch's."""
    v = trial.get("train_loss")
    if not is_number(v):
        epochs = trial.get("epochs") or []
        v = epochs[-1].get("train_loss") if epochs else None
    return float(v) if is_number(v) else None


def train_val_loss(trial: dict) -> float | None:
    """The geometric mean of the validation loss and the last epoch's mean training loss.

    The training loss, averaged over every step of the epoch, is how fast the network learns
    and barely depends on the seed; the validation loss is where it ends; their geometric mean
    ranks ``resnet_like`` like a 10x longer training as well as the validation loss does, with
    less seed noise (README, "Proxy protocol")."""
    v, t = trial.get("val_loss"), train_loss(trial)
    return math.sqrt(v * t) if is_number(v) and t is not None and v >= 0 and t >= 0 else None


TRAIN_VAL_LOSS = Metric("train_val_loss", "val_loss", MIN, "train-val loss (geometric mean)",
                        derive=train_val_loss)
BUILTIN = {m.name: m for m in (ACCURACY, VAL_LOSS, TRAIN_VAL_LOSS)}


def metric(name: str | Metric | None = None) -> Metric:
    """The metric called ``name``: accuracy (None), val_loss, or a zero-cost proxy's name."""
    if isinstance(name, Metric):
        return name
    if not name:
        return ACCURACY
    return BUILTIN.get(name) or Metric(name, "proxy_score", MAX, f"{name} score (zero-cost proxy)")


def study_metric(study: dict | None, trials: Sequence[dict] = ()) -> Metric:
    """The metric a stored study ranks by, from its config (``metric``, ``proxy`` or
    ``signal``); for a study stored without one, the metric its trials carry."""
    config = (study or {}).get("config") or {}
    for key in ("metric", "proxy", "signal"):
        if config.get(key):
            return metric(config[key])
    if not any(is_number(t.get("accuracy")) for t in trials) \
            and any(is_number(t.get("proxy_score")) for t in trials):
        return metric("proxy")
    return ACCURACY


def usable(trial: dict, m: Metric | str | None = None) -> bool:
    """True for a COMPLETE trial with a finite quality, not over a budget (``feasible``
    False) and not a repeat of an architecture evaluated earlier (``duplicate_of``)."""
    return (trial.get("state") == "COMPLETE" and metric(m).value(trial) is not None
            and trial.get("feasible", True) is not False and trial.get("duplicate_of") is None)


def finished(trials: Sequence[dict], m: Metric | str | None = None) -> list[dict]:
    """The trials that have a quality to compare (see :func:`usable`), in input order."""
    return [t for t in trials if usable(t, m)]


def best(trials: Sequence[dict], m: Metric | str | None = None,
         cost: str = "target_macs") -> dict | None:
    """The usable trial with the best quality; ties go to the smaller ``cost``, then to the
    earlier trial. None when no trial is usable."""
    m = metric(m)
    done = finished(trials, m)
    if not done:
        return None
    return min(done, key=lambda t: (m.rank(m.value(t)), _cost(t, cost), t.get("number") or 0))


def _cost(t: dict, cost: str) -> float:
    v = t.get(cost)
    return float(v) if is_number(v) else math.inf


def better(a: dict | None, b: dict | None, m: Metric | str | None = None) -> bool:
    """True when trial ``a`` is usable and strictly better than ``b`` (or ``b`` is None)."""
    m = metric(m)
    if a is None or not usable(a, m):
        return False
    return b is None or m.better(m.value(a), m.value(b))


# ------------------------------------------------------------------ Pareto fronts
def check_senses(senses: Sequence[str], n: int) -> list[int]:
    if len(senses) != n:
        raise ValueError(f"{len(senses)} senses given for {n}-objective points; give one "
                         f"'max' or 'min' per objective")
    signs = []
    for s in senses:
        if s not in (MAX, MIN):
            raise ValueError(f"objective sense {s!r} is not 'max' or 'min'")
        signs.append(-1 if s == MAX else 1)
    return signs


def minimized(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[tuple | None]:
    """Points turned into all-minimize form; points with a missing/non-finite value -> None."""
    out: list[tuple | None] = []
    for p in points:
        signs = check_senses(senses, len(p))
        out.append(tuple(s * v for s, v in zip(signs, p)) if all(is_number(v) for v in p) else None)
    return out


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """True if ``a`` is at least as good as ``b`` in every objective and better in one."""
    (ma, mb) = minimized([a, b], senses)
    if ma is None or mb is None:
        return False
    return all(x <= y for x, y in zip(ma, mb)) and any(x < y for x, y in zip(ma, mb))


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order.

    ``senses`` gives 'max' or 'min' per objective, e.g. ``("max", "min")`` for
    (accuracy, MACs). Points with a missing or non-finite value are never on the front;
    exact duplicates of a front point are all on the front.
    """
    mins = minimized(points, senses)
    valid = [(p, i) for i, p in enumerate(mins) if p is not None]
    if valid and len(valid[0][0]) == 2:
        return _pareto_front_2d(valid)
    return [i for p, i in valid
            if not any(all(x <= y for x, y in zip(q, p)) and q != p for q, _ in valid)]


def _pareto_front_2d(valid: list[tuple[tuple, int]]) -> list[int]:
    # sweep by the first objective; a point is on the front if its second objective beats
    # everything with a strictly smaller first objective (ties in both are kept)
    valid = sorted(valid)
    front: list[int] = []
    best_second = math.inf
    k = 0
    while k < len(valid):
        j = k
        while j < len(valid) and valid[j][0][0] == valid[k][0][0]:
            j += 1
        group_best = valid[k][0][1]            # smallest second objective at this first value
        if group_best < best_second:
            front += [i for p, i in valid[k:j] if p[1] == group_best]
            best_second = group_best
        k = j
    return sorted(front)


def front(trials: Sequence[dict], m: Metric | str | None = None,
          cost: str = "target_macs") -> list[dict]:
    """The usable trials on the (best quality, least ``cost``) Pareto front, cheapest first
    (equal cost: better quality, then the earlier trial first)."""
    m = metric(m)
    done = [t for t in finished(trials, m) if is_number(t.get(cost))]
    idx = pareto_front([(m.value(t), t[cost]) for t in done], (m.sense, MIN))
    return sorted((done[i] for i in idx),
                  key=lambda t: (t[cost], m.rank(m.value(t)), t.get("number") or 0))
