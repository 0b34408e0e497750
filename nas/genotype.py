"""The genotype: an architecture as plain data over a networkx DAG.

A node carries an op name (see :mod:`nas.ops`), the attributes the user gave and the
ordered list of its inputs. There is one ``input`` node whose ``shape`` attribute is the
per-sample input spec, one output node, and optionally auxiliary outputs (inception aux
heads: their params count, their MACs do not, as they run only in training).

Genotypes round-trip exactly through JSON, hash canonically (isomorphic genotypes hash
equal whatever their node names), and validate with a :class:`GenotypeError` that names the
node and the fix.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from nas.errors import GenotypeError
from nas.ops import OPS, OpError, OpSpec, Shape

FORMAT = "nas-genotype/1"
#: Deepest nesting of lists/objects inside ``meta`` and node ``attrs`` (a genotype needs 2-3;
#: deeper documents would make to_json/copy hit Python's recursion limit much later).
MAX_NESTING = 64
#: Largest integer magnitude in ``meta`` and ``attrs`` (64-bit, as stores hold them).
MAX_INT = 2**63 - 1
_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")  # '-': torchvision's block1-0


@dataclass(eq=False)
class Genotype:
    """An architecture: a DAG of ops with one input and one output node."""

    graph: nx.DiGraph
    output: str
    name: str = ""
    aux_outputs: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = ()   # nodes whose width is the number of classes
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------ structure
    @property
    def input(self) -> str:
        """The id of the input node."""
        cached = self.__dict__.get("_input")
        if cached in self.graph and self.graph.nodes[cached].get("op") == "input":
            return cached
        return self._find_input()

    def _find_input(self) -> str:
        found = [n for n, d in self.graph.nodes(data=True) if d.get("op") == "input"]
        if len(found) != 1:
            raise GenotypeError(f"a genotype needs exactly one 'input' node, found {len(found)}"
                                + (f" ({', '.join(found)})" if found else ""))
        self.__dict__["_input"] = found[0]
        return found[0]

    @property
    def input_shape(self) -> Shape:
        """The per-sample input shape, e.g. (3, 224, 224)."""
        return tuple(self.graph.nodes[self.input]["attrs"]["shape"])

    @property
    def outputs(self) -> tuple[str, ...]:
        """The main output followed by the auxiliary outputs."""
        return (self.output, *self.aux_outputs)

    def op(self, node: str) -> str:
        """The op name of ``node``."""
        return self.graph.nodes[node]["op"]

    def attrs(self, node: str) -> dict:
        """The attributes of ``node`` as given (without defaults)."""
        return self.graph.nodes[node]["attrs"]

    def inputs(self, node: str) -> list[str]:
        """The ordered inputs of ``node``."""
        return self.graph.nodes[node]["inputs"]

    def spec(self, node: str) -> OpSpec:
        """The op registry entry of ``node``."""
        return OPS.get(self.op(node))

    def resolved_attrs(self, node: str) -> dict:
        """The attributes of ``node`` with defaults filled in."""
        return self.spec(node).resolve(self.attrs(node))

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __iter__(self) -> Iterator[str]:
        return iter(self.graph.nodes)

    def topological_order(self) -> list[str]:
        """Node ids in an order where every node follows its inputs (stable: insertion order)."""
        order = list(self.graph.nodes)
        rank = {n: i for i, n in enumerate(order)}
        if all(rank[i] < rank[n] for n in order for i in self.inputs(n) if i in rank):
            return order
        return list(nx.lexicographical_topological_sort(self.graph, key=rank.__getitem__))

    def main_path(self) -> set[str]:
        """Nodes the main output depends on (what runs at inference)."""
        return nx.ancestors(self.graph, self.output) | {self.output}

    # ------------------------------------------------------------ validation
    def infer_shapes(self) -> dict[str, Shape]:
        """Validate the genotype and return every node's per-sample output shape."""
        return self.analyse()[1]

    def analyse(self) -> tuple[dict[str, dict], dict[str, Shape]]:
        """Validate the genotype; return every node's resolved attributes and output shape,
        both in topological order."""
        self.check_structure()
        resolved: dict[str, dict] = {}
        shapes: dict[str, Shape] = {}
        nodes = self.graph.nodes
        for n in self.topological_order():
            data = nodes[n]
            spec = OPS.get(data["op"])
            try:
                attrs = spec.resolve(data["attrs"])
                spec.check_arity(len(data["inputs"]))
                shape = tuple(spec.shape(attrs, [shapes[i] for i in data["inputs"]]))
            except OpError as e:
                raise GenotypeError(str(e), n) from None
            if any(d < 1 for d in shape):
                raise GenotypeError(f"output shape {shape} collapses below 1; use fewer "
                                    "downsampling steps or a larger input", n)
            resolved[n] = attrs
            shapes[n] = shape
        return resolved, shapes

    def validate(self) -> "Genotype":
        """Raise :class:`GenotypeError` if the genotype is invalid; return it otherwise."""
        self.infer_shapes()
        return self

    def check_structure(self) -> None:
        """Raise :class:`GenotypeError` for structural faults: input count, unknown ops, missing
        inputs or outputs, cycles, dangling nodes, badly formed or nesting node ids."""
        g = self.graph
        src = self._find_input()
        for n, d in g.nodes(data=True):
            if not isinstance(n, str) or not _NAME.match(n):
                raise GenotypeError("node ids are dotted names of letters, digits, '_' and '-' "
                                    "(e.g. 'layer1.0.conv1'); rename it", n)
            if d.get("op") not in OPS:
                raise GenotypeError(OPS.miss_message(d.get("op")), n)
            for i in d["inputs"]:
                if i not in g:
                    raise GenotypeError(f"input {i!r} does not exist; add that node or fix the "
                                        "input list", n)
        for out in self.outputs:
            if out not in g:
                raise GenotypeError(f"output node {out!r} does not exist; name an existing node")
            if out == src:
                raise GenotypeError("the output cannot be the input node; add ops between them", out)
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            path = " -> ".join([u for u, _ in cycle] + [cycle[-1][1]])
            raise GenotypeError(f"the graph has a cycle ({path}); a genotype must be acyclic",
                                cycle[0][0])
        live = set(self.outputs)
        for out in self.outputs:
            live |= nx.ancestors(g, out)
        for n in g:
            if n not in live:
                raise GenotypeError("dangling node: its output reaches no output node; connect "
                                    "it or remove it", n)
        names = sorted(g)
        for a, b in zip(names, names[1:]):
            if b.startswith(a + "."):
                raise GenotypeError(f"id {a!r} is a prefix of {b!r}, so their modules would "
                                    "nest; rename one of them", b)

    # ------------------------------------------------------------ transforms
    def retarget(self, in_channels: int | None = None, num_classes: int | None = None) -> "Genotype":
        """A copy with a new number of input channels and/or classes (the proxy task)."""
        g = self.copy()
        if in_channels is not None:
            shape = list(g.input_shape)
            shape[0] = int(in_channels)
            g.graph.nodes[g.input]["attrs"] = {**g.attrs(g.input), "shape": shape}
        if num_classes is not None:
            heads = g.classifiers or (g._infer_classifier(),)
            for n in heads:
                width = g.spec(n).width_attr
                g.graph.nodes[n]["attrs"] = {**g.attrs(n), width: int(num_classes)}
        return g

    def _infer_classifier(self) -> str:
        n = self.output
        while self.spec(n).width_attr is None:
            if not self.inputs(n):
                raise GenotypeError("no classifier found on the path to the output; name it in "
                                    "'classifiers'")
            n = self.inputs(n)[0]
        return n

    def copy(self) -> "Genotype":
        """A deep copy (graph and attributes)."""
        return Genotype.from_dict(self.to_dict())

    # ------------------------------------------------------------ plain data
    def to_dict(self) -> dict:
        """The genotype as JSON-serialisable plain data."""
        return {
            "format": FORMAT,
            "name": self.name,
            "nodes": [{"id": n, "op": d["op"], "inputs": list(d["inputs"]), "attrs": _plain(d["attrs"])}
                      for n, d in self.graph.nodes(data=True)],
            "output": self.output,
            "aux_outputs": list(self.aux_outputs),
            "classifiers": list(self.classifiers),
            "meta": _plain(self.meta),
        }

    def to_json(self, indent: int | None = None) -> str:
        """The genotype as a JSON string (``from_json`` restores it exactly)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> "Genotype":
        """Build a genotype from plain data; malformed data raises :class:`GenotypeError`."""
        return _parse(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Genotype":
        """Parse a genotype from JSON; anything malformed raises :class:`GenotypeError`."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise GenotypeError(f"malformed genotype: nested deeper than {MAX_NESTING} levels "
                                "(too deep to read)") from None
        except (ValueError, TypeError) as e:
            raise GenotypeError(f"not valid JSON: {e}") from None
        return _parse(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genotype) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Genotype({self.name or 'unnamed'}: {len(self)} nodes, output {self.output!r})"

    # ------------------------------------------------------------ identity
    def canonical_hash(self) -> str:
        """A hash that is equal for isomorphic genotypes (same ops, attributes, wiring and
        input order, whatever the node names) and differs otherwise. Attributes that do not
        change what the net computes (``Attr.structural`` False: init hints such as a BN's
        ``zero_init``) are left out."""
        self.check_structure()
        index: dict[str, int] = {}
        rows: list[list] = []

        def visit(root: str) -> None:  # post-order DFS from the outputs, inputs in order
            stack = [(root, 0)]
            while stack:
                n, k = stack.pop()
                if n in index:
                    continue
                ins = self.inputs(n)
                if k < len(ins):
                    stack.append((n, k + 1))
                    stack.append((ins[k], 0))
                else:
                    index[n] = len(rows)
                    try:
                        attrs = _canonical_attrs(self.spec(n), self.attrs(n))
                    except OpError as e:
                        raise GenotypeError(str(e), n) from None
                    rows.append([self.op(n), attrs, [index[i] for i in ins]])

        for out in self.outputs:
            visit(out)
        payload = json.dumps([rows, [index[o] for o in self.outputs]], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _canonical_attrs(spec: OpSpec, attrs: dict) -> dict:
    full = spec.resolve(attrs)
    out = {}
    for a in spec.attrs:
        if not a.structural:   # how the op is initialised, not what it computes
            continue
        v = full[a.name]
        if a.kind in ("pair", "optional_pair") and v is not None:
            v = list(v) if isinstance(v, (list, tuple)) else [v, v]
        elif a.kind == "float" and v is not None:
            v = float(v)
        out[a.name] = v
    return out


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so that to_dict() equals its JSON round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _parse(data: Any) -> Genotype:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise GenotypeError(f"malformed genotype: {msg}")

    need(isinstance(data, dict), "expected a JSON object with 'nodes' and 'output'")
    need(data.get("format", FORMAT) == FORMAT, f"unsupported format {data.get('format')!r}; "
         f"expected {FORMAT!r}")
    nodes, output = data.get("nodes"), data.get("output")
    need(isinstance(nodes, list) and nodes, "'nodes' must be a non-empty list")
    need(isinstance(output, str), "'output' must be a node id (string)")
    for key in ("aux_outputs", "classifiers"):
        need(isinstance(data.get(key, []), list) and all(isinstance(x, str) for x in data.get(key, [])),
             f"'{key}' must be a list of node ids")
    need(isinstance(data.get("name", ""), str), "'name' must be a string")
    need(isinstance(data.get("meta", {}), dict), "'meta' must be an object")
    _check_plain(data.get("meta", {}), "'meta'")
    unknown = set(data) - {"format", "name", "nodes", "output", "aux_outputs", "classifiers", "meta"}
    need(not unknown, f"unknown key(s) {sorted(unknown)}")
    g = nx.DiGraph()
    for i, nd in enumerate(nodes):
        need(isinstance(nd, dict), f"node #{i} must be an object with id, op, inputs, attrs")
        nid, op, ins, attrs = nd.get("id"), nd.get("op"), nd.get("inputs", []), nd.get("attrs", {})
        need(isinstance(nid, str), f"node #{i} needs a string 'id'")
        need(nid not in g, f"node id {nid!r} is used twice")
        need(isinstance(op, str), f"node {nid!r} needs a string 'op'")
        need(isinstance(ins, list) and all(isinstance(x, str) for x in ins),
             f"node {nid!r}: 'inputs' must be a list of node ids")
        need(isinstance(attrs, dict), f"node {nid!r}: 'attrs' must be an object")
        _check_plain(attrs, f"node {nid!r}: 'attrs'")
        extra = set(nd) - {"id", "op", "inputs", "attrs"}
        need(not extra, f"node {nid!r} has unknown key(s) {sorted(extra)}")
        g.add_node(nid, op=op, inputs=list(ins), attrs=dict(attrs))
    for n, d in list(g.nodes(data=True)):
        for i in d["inputs"]:
            if i in g:
                g.add_edge(i, n)
    return Genotype(g, output, name=data.get("name", ""),
                    aux_outputs=tuple(data.get("aux_outputs", [])),
                    classifiers=tuple(data.get("classifiers", [])), meta=dict(data.get("meta", {})))


def _check_plain(value: Any, where: str) -> None:
    """Raise GenotypeError unless ``value`` is JSON data (objects with string keys, lists,
    strings, finite or non-finite floats, 64-bit ints, booleans, null) nested at most
    MAX_NESTING deep; checked without recursion."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            items = v.items()
            if any(not isinstance(k, str) for k in v):
                raise GenotypeError(f"malformed genotype: {where} has a non-string key")
        elif isinstance(v, (list, tuple)):
            items = ((None, x) for x in v)
        elif v is None or isinstance(v, (bool, str, float)):
            continue
        elif isinstance(v, int):
            if abs(v) > MAX_INT:
                raise GenotypeError(f"malformed genotype: {where} holds an integer beyond 64 bits")
            continue
        else:
            raise GenotypeError(f"malformed genotype: {where} holds a {type(v).__name__}; "
                                "only JSON values are allowed")
        if depth >= MAX_NESTING:
            raise GenotypeError(f"malformed genotype: {where} is nested deeper than "
                                f"{MAX_NESTING} levels")
        stack.extend((x, depth + 1) for _, x in items)
