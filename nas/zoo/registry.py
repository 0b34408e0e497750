"""ZooEntry and the ZOO registry of classic networks."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from nas.genotype import Genotype
from nas.registry import Registry, closest

# "library:builder(kwargs)" -- e.g. "torchvision:googlenet(aux_logits=False)", "timm:seresnet50"
_TWIN = re.compile(r"^(torchvision|timm):([A-Za-z0-9_]+)(\(.*\))?$")
LIBRARIES = ("torchvision", "timm")


@dataclass(frozen=True)
class ZooEntry:
    """A classic network: how to build it and the figures it should reproduce.

    ``twins`` names the networks of other libraries that are the same network (same layers,
    same arithmetic), as ``"library:builder(kwargs)"``: the first one's state-dict keys and
    shapes are the compiled module's, exactly (``tests/data/zoo_twins.json`` holds them);
    a timm twin listed after a torchvision one loads through
    :func:`nas.zoo.weights.load_weights` (``source="timm"``). A timm twin's builder name is
    also an alias of the entry: ``zoo.build("seresnet50")``.
    """

    name: str
    family: str
    builder: Callable[[], Genotype]
    source: str
    input_shape: tuple[int, ...] = (3, 224, 224)
    num_classes: int = 1000
    published_params: int | None = None
    published_macs: int | None = None
    exact: bool = False          # published figures are torchvision's: match to the integer
    top1: float | None = None    # documented ImageNet top-1 (%), reference only
    note: str = ""
    tags: tuple[str, ...] = field(default=())
    twins: tuple[str, ...] = field(default=())

    def __post_init__(self):
        for twin in self.twins:
            if not _TWIN.match(twin):
                raise ValueError(f"zoo entry {self.name!r}: twin {twin!r} is not "
                                 "'torchvision:NAME[(kwargs)]' or 'timm:NAME[(kwargs)]'")

    def twin(self, library: str) -> str | None:
        """This entry's twin in ``library`` ("torchvision" or "timm"), or None."""
        return next((t for t in self.twins if t.startswith(library + ":")), None)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names of this entry: its timm twins' builder names that differ from it."""
        names = [_TWIN.match(t).group(2) for t in self.twins if t.startswith("timm:")]
        return tuple(n for n in names if n != self.name)

    @property
    def definition(self) -> str:
        """Which definition this entry is: its twins, or its source when it has none."""
        return "; ".join(t.replace(":", " ", 1) for t in self.twins) or "-"


class ZooRegistry(Registry[ZooEntry]):
    """The zoo: entries by name, and timm's names of them as aliases."""

    def __init__(self):
        super().__init__("zoo network")
        self._aliases: dict[str, str] = {}

    def register(self, name: str, obj: ZooEntry | None = None):
        """Register entry ``obj`` under ``name`` and its aliases (see :class:`ZooEntry`)."""
        if obj is None:
            return super().register(name)
        taken = [a for a in (name, *obj.aliases) if a in self._aliases or a in self._items]
        if taken:
            raise ValueError(f"{self.kind} {taken[0]!r} is already registered")
        super().register(name, obj)
        for alias in obj.aliases:
            self._aliases[alias] = name
        return obj

    def resolve(self, name: str) -> str:
        """The entry name that ``name`` (an entry name or an alias) stands for."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> ZooEntry:
        """The entry registered under ``name`` or one of its aliases."""
        return super().get(self.resolve(name))

    def miss_message(self, name: str) -> str:
        """The error text for an unknown ``name``, with close names and aliases."""
        near = closest(str(name), [*self._items, *self._aliases])
        hint = (f"did you mean {', '.join(near)}?" if near
                else "run 'python -m nas.zoo list' to see every name")
        return f"unknown {self.kind} {name!r}; {hint}"

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def aliases(self) -> dict[str, str]:
        """alias -> entry name, for every alias."""
        return dict(self._aliases)


ZOO = ZooRegistry()


def entry(name: str, family: str, source: str, **figures):
    """Decorator registering a zero-argument genotype builder as zoo entry ``name``."""
    def register(fn: Callable[[], Genotype]) -> Callable[[], Genotype]:
        ZOO.register(name, ZooEntry(name, family, fn, source, **figures))
        return fn
    return register


def build(name: str) -> Genotype:
    """The genotype of zoo entry ``name`` (or of the entry an alias such as timm's
    ``seresnet50`` stands for)."""
    return ZOO.get(name).builder()


__all__ = ["LIBRARIES", "ZOO", "ZooEntry", "ZooRegistry", "build", "entry"]
