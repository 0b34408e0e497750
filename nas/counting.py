"""Counting without building: a builder's cost through the op registry, with no networkx graph.

    cost = count_call(builder, **params)     # == nas.cost.count(builder(**params))

Inside :func:`counting`, every ``GraphBuilder(...)`` a builder creates is a
:class:`CountingBuilder`: its ``node`` resolves the attributes, checks the arity, infers the
shape and takes the cost from the same :class:`~nas.ops.OpSpec` rules as
:func:`nas.genotype.Genotype.analyse` and :func:`nas.cost.count` (memoised on op,
attributes and input shapes), and its ``build`` returns a :class:`CountedGraph`, a small
record of the nodes. Block helpers decorated with :func:`countable` (residual blocks,
inverted residuals, dense layers, ...) are memoised too: a block seen before with the same
arguments and input shapes is added as one node carrying the block's summed cost and output
shape, so a net of 16 identical blocks is counted once per distinct block.

The counted figures are exactly those of :func:`nas.cost.count` on the built genotype (params
of every node; MACs and activations of the nodes the main output depends on), and an
invalid point raises as building it would (:class:`~nas.errors.GenotypeError`). A builder
that does something a counting builder cannot (reads ``b.graph``, edits the built genotype
beyond what :class:`CountedGraph` offers) makes :func:`count_call` fall back to building
and counting.
"""
from __future__ import annotations

import contextvars
import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from nas.builder import GraphBuilder
from nas.cost import Cost, count
from nas.errors import GenotypeError
from nas.ops import OPS, OpError, Shape

#: The op name of a memoised block inside a counting builder (never a registry op).
BLOCK = "<counted block>"
#: Most memoised node and block costs kept (the memo is cleared when it grows past this).
MEMO_MAX = 50_000

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("nas_counting", default=False)
_NODE_MEMO: dict = {}
_BLOCK_MEMO: dict = {}


def active() -> bool:
    """Whether ``GraphBuilder(...)`` currently makes counting builders."""
    return _ACTIVE.get()


@contextmanager
def counting() -> Iterator[None]:
    """Inside the block, ``GraphBuilder(...)`` makes a :class:`CountingBuilder`."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _freeze(v: Any) -> Any:
    """A hashable stand-in for an attribute value (lists become tuples, dicts sorted items)."""
    t = type(v)
    if t is int or t is str or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, *(_freeze(x) for x in v))
    if isinstance(v, dict):
        return ("dict", *sorted((k, _freeze(x)) for k, x in v.items()))
    return (type(v).__name__, v)   # 1, 1.0 and True hash alike: keep their types apart


class CountingBuilder(GraphBuilder):
    """A :class:`GraphBuilder` that records each node's shape and cost, not a graph."""

    def __init__(self, input_shape, name: str = ""):
        self.name = name
        self.shapes: dict[str, Shape] = {}
        self.records: dict[str, tuple[str, list[str], dict, tuple[int, int, int]]] = {}
        self._scopes: list[str] = []
        self.blocks = 0
        self.order: list[str] = []   # node ids in insertion order
        self.input = self.node("input", "input", [], shape=list(input_shape))

    def node(self, name: str, op: str, inputs: list[str], **attrs) -> str:
        """Add a node: same checks and shape as :meth:`GraphBuilder.node` (plus the
        collapsed-shape check that validation would make), cost from the op registry."""
        nid = ".".join((*self._scopes, name)) if self._scopes else name
        shapes = self.shapes
        if nid in shapes:
            raise GenotypeError("id already used; give the node another name", nid)
        try:
            ins = tuple(shapes[i] for i in inputs)
        except KeyError:
            missing = next(i for i in inputs if i not in shapes)
            raise GenotypeError(f"input {missing!r} does not exist", nid) from None
        if op == BLOCK:
            shape, cost = attrs["shape"], attrs["cost"]
        else:
            key = (op, ins, *[(k, _freeze(v)) for k, v in attrs.items()])
            hit = _NODE_MEMO.get(key)
            if hit is None:
                spec = OPS.get(op)
                ins = list(ins)
                try:
                    resolved = spec.resolve(attrs)
                    spec.check_arity(len(inputs))
                    shape = tuple(spec.shape(resolved, ins))
                except OpError as e:
                    raise GenotypeError(str(e), nid) from None
                if any(d < 1 for d in shape):
                    raise GenotypeError(f"output shape {shape} collapses below 1; use fewer "
                                        "downsampling steps or a larger input", nid)
                cost = tuple(spec.cost(resolved, ins, shape))
                if len(_NODE_MEMO) >= MEMO_MAX:
                    _NODE_MEMO.clear()
                hit = _NODE_MEMO[key] = (shape, cost)
            shape, cost = hit
        self.records[nid] = (op, inputs, attrs, cost)
        self.order.append(nid)
        shapes[nid] = shape
        return nid

    def scope(self, name: str) -> "_Scope":
        """Prefix node names added inside the block with ``name.`` (as GraphBuilder)."""
        return _Scope(self._scopes, str(name))

    def build(self, output: str, *, aux_outputs=(), classifiers=(), meta=None) -> "CountedGraph":
        """The counted network (the counting counterpart of a genotype)."""
        for out in (output, *aux_outputs):
            if out not in self.shapes:
                raise GenotypeError(f"output node {out!r} does not exist; name an existing node")
        return CountedGraph(self, output, tuple(aux_outputs), tuple(classifiers), dict(meta or {}))


class _Scope:
    """A light context manager for :meth:`CountingBuilder.scope`."""

    __slots__ = ("scopes", "name")

    def __init__(self, scopes: list, name: str):
        self.scopes, self.name = scopes, name

    def __enter__(self) -> None:
        self.scopes.append(self.name)

    def __exit__(self, *exc) -> None:
        self.scopes.pop()


class CountedGraph:
    """What a counting builder built: nodes with their inputs, shapes and costs. Offers the
    read-only part of :class:`~nas.genotype.Genotype` that builders use to rework a built
    net (``op``, ``attrs``, ``inputs``, ``topological_order``, ``in graph``...)."""

    def __init__(self, b: CountingBuilder, output: str, aux_outputs: tuple, classifiers: tuple,
                 meta: dict):
        self.name = b.name
        self.records = b.records
        self.shapes = b.shapes
        self.input = b.input
        self.output = output
        self.aux_outputs = aux_outputs
        self.classifiers = classifiers
        self.meta = meta

    @property
    def graph(self):
        """The node ids (supports ``in``, ``len`` and iteration)."""
        return self.records

    @property
    def input_shape(self) -> Shape:
        """The per-sample input shape."""
        return self.shapes[self.input]

    def op(self, node: str) -> str:
        """The op of ``node``."""
        return self.records[node][0]

    def attrs(self, node: str) -> dict:
        """The attributes given to ``node``."""
        return self.records[node][2]

    def inputs(self, node: str) -> list[str]:
        """The input node ids of ``node``."""
        return list(self.records[node][1])

    def topological_order(self) -> list[str]:
        """Node ids in insertion order (a builder adds a node after its inputs)."""
        return list(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def cost(self) -> Cost:
        """params of every node; MACs and activations of the main output's ancestors."""
        params = macs = acts = 0
        if self.aux_outputs:
            main = _ancestors(self.records, self.output)
            for n, (_, _, _, (p, m, a)) in self.records.items():
                params += p
                if n in main:
                    macs += m
                    acts += a
        else:
            for _, _, _, (p, m, a) in self.records.values():
                params += p
                macs += m
                acts += a
        return Cost(params, macs, acts)


def _ancestors(records: dict, node: str) -> set[str]:
    seen = {node}
    stack = [node]
    while stack:
        for i in records[stack.pop()][1]:
            if i not in seen:
                seen.add(i)
                stack.append(i)
    return seen


def countable(*nodes: str) -> Callable:
    """Memoise a block helper under a counting builder: ``nodes`` names its parameters that
    take node ids (or lists of them). A call whose other arguments and whose input nodes'
    shapes were seen before adds one :data:`BLOCK` node with the block's summed cost and
    output shape; with a :class:`GraphBuilder`, the helper runs unchanged."""
    def decorate(fn: Callable) -> Callable:
        import inspect

        params = list(inspect.signature(fn).parameters)
        node_positions = {i for i, name in enumerate(params) if name in nodes}

        @functools.wraps(fn)
        def wrapper(b, *args, **kwargs):
            if type(b) is not CountingBuilder:
                return fn(b, *args, **kwargs)
            ins: list[str] = []
            key: list = [fn]
            for i, value in enumerate(args, 1):
                key.append(_arg_key(b, value, ins) if i in node_positions else _freeze(value))
            for name in sorted(kwargs):
                value = kwargs[name]
                key.append((name, _arg_key(b, value, ins) if name in nodes else _freeze(value)))
            key_t = tuple(key)
            hit = _BLOCK_MEMO.get(key_t)
            if hit is not None:
                shape, cost = hit
                b.blocks += 1   # a unique id: helpers that take a name may share one scope
                return b.node(f"<{fn.__name__} {b.blocks}>", BLOCK, ins, shape=shape, cost=cost)
            start = len(b.order)
            out = fn(b, *args, **kwargs)
            added = b.order[start:]
            if isinstance(out, str) and out in added and _closed(b.records, added, out, ins):
                totals = [0, 0, 0]
                for n in added:
                    for k, v in enumerate(b.records[n][3]):
                        totals[k] += v
                if len(_BLOCK_MEMO) >= MEMO_MAX:
                    _BLOCK_MEMO.clear()
                _BLOCK_MEMO[key_t] = (b.shapes[out], tuple(totals))
            return out

        return wrapper
    return decorate


def _arg_key(b: CountingBuilder, value, ins: list[str]):
    """The shapes of a node argument (a node id or a list of them); collects the ids."""
    if isinstance(value, str):
        ins.append(value)
        return ("node", b.shapes[value])
    ins.extend(value)
    return ("nodes", *(b.shapes[v] for v in value))


def _closed(records: dict, added: list[str], out: str, ins: list[str]) -> bool:
    """Whether the block's new nodes all feed ``out`` and read only new nodes or ``ins``."""
    new = set(added)
    allowed = new | set(ins)
    if any(i not in allowed for n in added for i in records[n][1]):
        return False
    seen = {out}
    stack = [out]
    while stack:
        for i in records[stack.pop()][1]:
            if i in new and i not in seen:
                seen.add(i)
                stack.append(i)
    return seen == new


def count_call(fn: Callable, /, **kwargs) -> Cost:
    """``count(fn(**kwargs))`` without building the genotype when ``fn`` builds through
    :class:`GraphBuilder` (falls back to building and counting otherwise)."""
    try:
        with counting():
            counted = fn(**kwargs)
        if isinstance(counted, CountedGraph):
            return counted.cost()
    except GenotypeError:
        raise
    except Exception:  # noqa: BLE001 - a builder the counting pass cannot follow: build it
        pass
    return count(fn(**kwargs))
