"""Search-space parameters: int, float, categorical and bool, each with an optional condition.

A parameter is plain data read from YAML. It knows how to check a value, draw one with a
``random.Random``, suggest one through an Optuna trial, describe itself as a Ray Tune
domain, and how many values it has. ``when: {block: bottleneck}`` makes a parameter active
only when the named (earlier) parameters take the given value(s).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from nas.errors import NasError

TYPES = ("int", "float", "categorical", "bool")
SCALARS = (bool, int, float, str)


class SpaceError(NasError):
    """A bad search space (file, key and the fix in the message) or an impossible request."""


#: Largest magnitude of a numeric range bound: widths, depths, counts and ratios of real
#: architectures are far below it (the widest layers have a few thousand channels).
VALUE_MAX = 10**6
#: Most values one finite parameter may have (its grid is materialised when sampling).
VALUES_MAX = 100_000


@dataclass(frozen=True)
class Domain:
    """What a space builder accepts for one argument: one of ``choices``, or a number in
    ``low .. high`` (``open_low``: strictly above ``low``), an int when ``integer``, a multiple
    of ``multiple`` when given. The loader checks every value a space file allows against it."""

    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    integer: bool = False
    open_low: bool = False
    multiple: int | None = None

    def accepts(self, value: Any) -> bool:
        """Whether the builder accepts ``value`` for this argument."""
        if self.choices:
            return any(type(c) is type(value) and c == value for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (self.integer and not isinstance(value, int)) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        if self.high is not None and value > self.high:
            return False
        return self.multiple is None or value % self.multiple == 0

    def describe(self) -> str:
        """E.g. 'one of classic, deep' or 'an int >= 1'."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        text = "an int" if self.integer else "a number"
        if self.low is not None:
            text += f" {'>' if self.open_low else '>='} {_clean(self.low)}"
        if self.high is not None:
            text += f"{' and' if self.low is not None else ''} <= {_clean(self.high)}"
        return text + (f", a multiple of {self.multiple}" if self.multiple else "")


def one_of(*values: Any) -> Domain:
    """A closed set of values (a categorical builder argument)."""
    return Domain(choices=tuple(values))


def ints(low: int = 1, high: int | None = None, multiple: int | None = None) -> Domain:
    """Integers in ``low .. high`` (default: positive ints)."""
    return Domain(low=low, high=high, integer=True, multiple=multiple)


def numbers(low: float, high: float | None = None, open_low: bool = False) -> Domain:
    """Finite numbers in ``low .. high`` (``open_low``: excluding ``low``)."""
    return Domain(low=low, high=high, open_low=open_low)


BOOL = one_of(False, True)


@dataclass(frozen=True)
class Param:
    """One parameter of a space; ``kind`` is one of :data:`TYPES`."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()
    when: dict = field(default_factory=dict)   # {param: (allowed values...)}
    cheapest: Any = None                         # the value that minimises cost (sampling hint)
    doc: str = ""

    # ------------------------------------------------------------ values
    def values(self) -> tuple | None:
        """Every value of a finite parameter in order (None for a continuous float)."""
        if self.kind in ("categorical", "bool"):
            return self.choices
        if self.kind == "int" and not self.log:
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step)))
        if self.kind == "int":
            return tuple(range(int(self.low), int(self.high) + 1))
        if self.step is not None:
            n = int(round((self.high - self.low) / self.step))
            return tuple(_clean(self.low + i * self.step) for i in range(n + 1))
        return None

    def size(self) -> float:
        """The number of values (``math.inf`` for a continuous float)."""
        vals = self.values()
        return math.inf if vals is None else len(vals)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of this parameter's values (a float: within the range, on
        its step grid if it has one)."""
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            if self.step is None:
                return self.low <= value <= self.high
            return any(math.isclose(v, value, rel_tol=0, abs_tol=1e-9) for v in self.values())
        return any(type(v) is type(value) and v == value for v in self.values())

    def default_cheapest(self) -> Any:
        """The value assumed to cost least when completing a partial configuration."""
        if self.cheapest is not None:
            return self.cheapest
        if self.kind in ("categorical", "bool"):
            return self.choices[0]
        return int(self.low) if self.kind == "int" else self.low

    def active(self, params: dict) -> bool:
        """Whether this parameter applies given the values chosen so far."""
        return all(k in params and params[k] in allowed for k, allowed in self.when.items())

    def describe(self) -> str:
        """A one-line human description of the range, e.g. 'int 1..8 step 1'."""
        if self.kind in ("categorical", "bool"):
            text = f"{self.kind} {list(self.choices)}"
        else:
            text = f"{self.kind} {_clean(self.low)}..{_clean(self.high)}"
            text += f" step {_clean(self.step)}" if self.step is not None and self.step != 1 else ""
            text += " log" if self.log else ""
        if self.when:
            text += "  when " + ", ".join(f"{k} in {list(v)}" for k, v in self.when.items())
        return text

    # ------------------------------------------------------------ backends
    def draw(self, rng: random.Random) -> Any:
        """A uniformly random value (log-uniform for ``log`` ranges)."""
        if self.kind in ("categorical", "bool"):
            return rng.choice(self.choices)
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
            return min(max(int(round(x)), int(self.low)), int(self.high)) if self.kind == "int" else x
        vals = self.values()
        return rng.choice(vals) if vals is not None else rng.uniform(self.low, self.high)

    def suggest(self, trial) -> Any:
        """The value an Optuna trial suggests for this parameter."""
        if self.kind in ("categorical", "bool"):
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=1 if self.log else int(self.step), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def to_dict(self) -> dict:
        """Plain data (as in the YAML file)."""
        out: dict = {"type": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        elif self.kind != "bool":
            out.update(low=_clean(self.low), high=_clean(self.high))
            if self.step is not None:
                out["step"] = _clean(self.step)
            if self.log:
                out["log"] = True
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        if self.cheapest is not None:
            out["cheapest"] = self.cheapest
        if self.doc:
            out["doc"] = self.doc
        return out


def _clean(x: float | None) -> float | int | None:
    """Floats that are whole numbers print as ints; others keep 12 significant digits."""
    if x is None:
        return None
    if float(x).is_integer():
        return int(x)
    return float(f"{x:.12g}")


def parse_param(name: str, spec: Any, where: str, known: list[str]) -> Param:
    """A :class:`Param` from its YAML mapping; ``where`` prefixes error messages
    ('file.yaml: parameters.depth1'); ``known`` are the parameters declared before it."""
    def fail(key: str, msg: str) -> SpaceError:
        return SpaceError(f"{where}{'.' + key if key else ''}: {msg}")

    if not isinstance(spec, dict):
        raise fail("", "must be a mapping with 'type' and a range or choices, "
                       "e.g. {type: int, low: 1, high: 8}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise fail("type", f"unknown parameter type {kind!r}; use one of {', '.join(TYPES)}")
    allowed = {"type", "when", "cheapest", "doc"} | {
        "int": {"low", "high", "step", "log"}, "float": {"low", "high", "step", "log"},
        "categorical": {"choices"}, "bool": set()}[kind]
    extra = sorted(set(spec) - allowed)
    if extra:
        raise fail(extra[0], f"unknown key for a {kind} parameter; allowed: {', '.join(sorted(allowed))}")
    when = _parse_when(spec.get("when", {}), known, fail)
    doc = str(spec.get("doc", ""))
    if kind == "bool":
        p = Param(name, kind, choices=(False, True), when=when, doc=doc)
    elif kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail("choices", "must be a non-empty list of values, e.g. [1, 2, 4]")
        if any(not isinstance(c, SCALARS) or c is None for c in choices):
            raise fail("choices", "choices must be numbers, strings or booleans")
        if any(isinstance(c, float) and not math.isfinite(c) for c in choices):
            raise fail("choices", f"choices must be finite numbers, got {choices}")
        if len(choices) > VALUES_MAX:
            raise fail("choices", f"has {len(choices):,} values, more than {VALUES_MAX:,}")
        if len(set(map(repr, choices))) != len(choices):
            raise fail("choices", f"has duplicates: {choices}")
        p = Param(name, kind, choices=tuple(choices), when=when, doc=doc)
    else:
        p = _parse_range(name, kind, spec, when, doc, fail)
    if "cheapest" in spec:
        if not p.contains(spec["cheapest"]):
            raise fail("cheapest", f"{spec['cheapest']!r} is not a value of this parameter ({p.describe()})")
        p = Param(**{**p.__dict__, "cheapest": spec["cheapest"]})
    return p


def _parse_when(when: Any, known: list[str], fail) -> dict:
    if not isinstance(when, dict):
        raise fail("when", "must map earlier parameter names to a value or a list of values, "
                           "e.g. {block: bottleneck}")
    out = {}
    for k, v in when.items():
        if k not in known:
            raise fail(f"when.{k}", f"unknown parameter {k!r}; a condition may only name a "
                                    f"parameter declared above ({', '.join(known) or 'none'})")
        out[k] = tuple(v) if isinstance(v, list) else (v,)
    return out


def _parse_range(name: str, kind: str, spec: dict, when: dict, doc: str, fail) -> Param:
    num = (int,) if kind == "int" else (int, float)
    for key in ("low", "high"):
        v = spec.get(key)
        if isinstance(v, bool) or not isinstance(v, num):
            raise fail(key, f"must be {'an int' if kind == 'int' else 'a number'}, got {v!r}")
    low, high = spec["low"], spec["high"]
    for key, v in (("low", low), ("high", high)):
        if not math.isfinite(v) or abs(v) > VALUE_MAX:
            raise fail(key, f"must be a finite number within +-{VALUE_MAX:,} (no architecture "
                            f"parameter is larger), got {v!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail("log", f"must be true or false, got {log!r}")
    step = spec.get("step", 1 if kind == "int" and not log else None)
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, num) or not 0 < step < math.inf:
            raise fail("step", f"must be a positive {'int' if kind == 'int' else 'number'}, got {step!r}")
        if log and not (kind == "int" and step == 1):
            raise fail("step", "cannot be combined with log: true")
    if high < low:
        raise fail("high", f"empty range: high {high} is below low {low}; swap them")
    if log and low <= 0:
        raise fail("low", f"a log range needs low > 0, got {low}")
    if step is not None:
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9:
            raise fail("step", f"high - low ({high} - {low}) is not a multiple of step {step}; "
                               f"adjust high to {_clean(low + math.floor(n) * step)}")
        if n + 1 > VALUES_MAX:
            raise fail("step", f"the range has {int(n) + 1:,} values, more than {VALUES_MAX:,}; "
                               "use a larger step or a narrower range")
    elif kind == "int" and high - low + 1 > VALUES_MAX:
        raise fail("high", f"the range has {high - low + 1:,} values, more than {VALUES_MAX:,}; "
                           "use a narrower range")
    return Param(name, kind, low=low, high=high, step=step, log=log, when=when, doc=doc)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def check_conditions(params: list[Param], where: str) -> None:
    """Refuse ``when`` conditions that can never hold: a value the named parameter never
    takes, or values that contradict the conditions under which that parameter is itself
    active (``x when {groups: 2, block: basic}`` where ``groups`` exists only for bottleneck
    blocks). ``where`` prefixes the message ('file.yaml')."""
    by_name = {p.name: p for p in params}
    implied: dict[str, dict[str, tuple]] = {}   # parameter -> every value constraint it implies
    for p in params:
        need: dict[str, tuple] = {}
        for k, allowed in p.when.items():
            q = by_name[k]
            bad = [v for v in allowed if not q.contains(v)]
            if bad:
                raise SpaceError(f"{where}: parameters.{p.name}.when.{k}: {k} never takes "
                                 f"{bad[0]!r} ({q.describe()}), so the condition can never hold")
            need[k] = tuple(allowed)
        for k in p.when:   # a parameter is set only where its own conditions hold
            for k2, allowed2 in implied[k].items():
                if k2 in need:
                    both = tuple(v for v in need[k2] if any(_same(v, w) for w in allowed2))
                    if not both:
                        raise SpaceError(
                            f"{where}: parameters.{p.name}.when: can never hold: it needs {k2} in "
                            f"{list(need[k2])}, but {k} is only set when {k2} in {list(allowed2)}")
                    need[k2] = both
                else:
                    need[k2] = allowed2
        implied[p.name] = need
