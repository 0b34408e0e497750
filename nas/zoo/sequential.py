"""Node naming like ``torch.nn.Sequential``: ``features.0``, ``features.1``, ...

Classic nets that torchvision writes as Sequentials (AlexNet, VGG, SqueezeNet) number
their layers; naming genotype nodes the same way makes the compiled state dict read like
torchvision's (``features.0.weight``, ``classifier.6.bias``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from nas.builder import GraphBuilder


class Sequential:
    """Appends nodes to a chain under ``scope``, named by their position in it."""

    def __init__(self, b: GraphBuilder, scope: str, x: str):
        self.b, self.scope, self.x, self.index = b, scope, x, 0

    def add(self, op: str, **attrs) -> str:
        """Append one op on the current output; return its node id."""
        with self.b.scope(self.scope):
            self.x = self.b.node(str(self.index), op, [self.x], **attrs)
        self.index += 1
        return self.x

    @contextmanager
    def child(self) -> Iterator[None]:
        """Scope for a multi-node child (a Fire module): its nodes live under ``scope.N``.

        The caller sets :attr:`x` to the child's output inside the block.
        """
        with self.b.scope(self.scope), self.b.scope(str(self.index)):
            yield
        self.index += 1
