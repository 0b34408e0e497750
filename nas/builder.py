"""GraphBuilder: assemble a genotype node by node, with scoped names and shapes known as you go."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import networkx as nx

from nas.errors import GenotypeError
from nas.genotype import Genotype
from nas.ops import OPS, OpError, Shape


class GraphBuilder:
    """Adds nodes to a genotype under construction; every node is checked when added.

    ``with b.scope("layer1.0"):`` prefixes the names of the nodes added inside it, so a
    builder reads like the paper's table and the compiled module's names follow it.
    """

    def __new__(cls, *args, **kwargs):
        if cls is GraphBuilder:
            from nas import counting  # imports this module: resolved at call time

            if counting.active():   # counting a builder's cost: no graph (nas.counting)
                return super().__new__(counting.CountingBuilder)
        return super().__new__(cls)

    def __init__(self, input_shape: Shape | list[int], name: str = ""):
        self.name = name
        self.graph = nx.DiGraph()
        self.shapes: dict[str, Shape] = {}
        self._scopes: list[str] = []
        self.input = self.node("input", "input", [], shape=list(input_shape))

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefix node names added inside the block with ``name.``."""
        self._scopes.append(str(name))
        try:
            yield
        finally:
            self._scopes.pop()

    def qualify(self, name: str) -> str:
        """The full id that ``name`` gets in the current scope."""
        return ".".join([*self._scopes, name])

    def node(self, name: str, op: str, inputs: list[str], **attrs) -> str:
        """Add a node (its id is ``name`` in the current scope) and return its id."""
        nid = self.qualify(name)
        if nid in self.graph:
            raise GenotypeError("id already used; give the node another name", nid)
        spec = OPS.get(op)
        for i in inputs:
            if i not in self.graph:
                raise GenotypeError(f"input {i!r} does not exist", nid)
        try:
            resolved = spec.resolve(attrs)
            spec.check_arity(len(inputs))
            shape = tuple(spec.shape(resolved, [self.shapes[i] for i in inputs]))
        except OpError as e:
            raise GenotypeError(str(e), nid) from None
        self.graph.add_node(nid, op=op, inputs=list(inputs), attrs=dict(attrs))
        for i in inputs:
            self.graph.add_edge(i, nid)
        self.shapes[nid] = shape
        return nid

    def shape(self, node: str) -> Shape:
        """The per-sample output shape of ``node``."""
        return self.shapes[node]

    def channels(self, node: str) -> int:
        """The output channels (or features) of ``node``."""
        return self.shapes[node][0]

    def build(self, output: str, *, aux_outputs=(), classifiers=(), meta=None) -> Genotype:
        """The finished genotype, validated (every node was checked when added; what is left
        is the graph's structure: outputs, dangling nodes, names)."""
        g = Genotype(self.graph.copy(), output, name=self.name, aux_outputs=tuple(aux_outputs),
                     classifiers=tuple(classifiers), meta=dict(meta or {}))
        g.check_structure()
        return g
