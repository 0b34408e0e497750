"""ZooEntry and the ZOO registry of classic networks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from nas.genotype import Genotype
from nas.registry import Registry


@dataclass(frozen=True)
class ZooEntry:
    """A classic network: how to build it and the figures it should reproduce."""

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


ZOO: Registry[ZooEntry] = Registry("zoo network")


def entry(name: str, family: str, source: str, **figures):
    """Decorator registering a zero-argument genotype builder as zoo entry ``name``."""
    def register(fn: Callable[[], Genotype]) -> Callable[[], Genotype]:
        ZOO.register(name, ZooEntry(name, family, fn, source, **figures))
        return fn
    return register


def build(name: str) -> Genotype:
    """The genotype of zoo entry ``name``."""
    return ZOO.get(name).builder()
