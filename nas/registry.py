"""A generic name -> object registry: raises on duplicates, suggests close names on a miss."""
from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from nas.errors import UnknownNameError

T = TypeVar("T")


def closest(name: str, known: list[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (case-insensitive), best first."""
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


class Registry(Generic[T]):
    """Named objects of one kind (ops, zoo entries, space builders...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o)
                return o
            return decorator
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The object registered under ``name``; an unknown name lists the closest known ones."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.miss_message(name)) from None

    def miss_message(self, name: str) -> str:
        """The error text for an unknown ``name``."""
        near = closest(str(name), list(self._items))
        hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(sorted(self._items))}"
        return f"unknown {self.kind} {name!r}; {hint}"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def items(self):
        """(name, object) pairs in registration order."""
        return self._items.items()

