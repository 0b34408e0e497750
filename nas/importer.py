"""Bring your own network: turn a PyTorch ``nn.Module`` into a genotype.

    from nas.importer import from_module, load_weights
    g = from_module(model, (3, 224, 224))      # a Genotype over the op registry
    net = nas.compile(g)
    load_weights(net, model.state_dict())       # same outputs as ``model``

The module is traced with ``torch.fx`` (symbolic tracing). Every call on the traced path is
mapped to an op of the registry (:mod:`nas.ops`) with its attributes; modules keep their
paths as node ids (``layer1.0.conv1``), so the compiled module's state-dict keys equal the
original's. Calls without a registry op, modules called twice with shared weights,
parameters used directly in ``forward`` and control flow on tensor values raise
:class:`~nas.errors.GenotypeError` naming the module path, the call and what would make it
importable: nothing is dropped or approximated. Calls whose result is never used (and that
do not write into a tensor that is used) are left out, as they cannot change the output.
"""
from __future__ import annotations

import inspect
import itertools
import math
import operator
import re
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import networkx as nx

from nas.errors import GenotypeError
from nas.genotype import Genotype
from nas.ops import OPS, OpError, Shape

__all__ = ["from_module", "load_weights", "load_factory", "read_genotype", "input_shape_of",
           "architecture_hash"]


class _Batch:
    """The batch size: symbolic, it may only stand in the batch position of a view."""

    def __repr__(self) -> str:
        return "<batch>"


BATCH = _Batch()


@dataclass(frozen=True)
class _T:
    """A tensor: the genotype node producing it and its storage (for in-place writes)."""

    node: str
    storage: int


@dataclass(frozen=True)
class _Shuffle:
    """A stage of the channel-shuffle pattern: ``view(b, g, c // g, h, w)`` ('grouped') then
    ``transpose(1, 2)`` ('swapped'), waiting for the view back to ``(b, c, h, w)``."""

    src: _T
    groups: int
    swapped: bool


@dataclass(frozen=True)
class _View:
    """A view of ``src`` to a per-sample ``shape`` no registry op makes (e.g. (C,) -> (C, 1)):
    only a further view/reshape/flatten/squeeze back to a shape the registry has may use it."""

    src: _T
    shape: Shape
    where: str
    hint: str


@dataclass(frozen=True)
class _Parts:
    """The result of ``chunk``/``split`` along channels: parts are made when indexed."""

    src: _T
    parts: int


@dataclass(frozen=True)
class _Expanded:
    """``gate.expand_as(x)``: only valid as an operand of a multiplication."""

    src: _T


class _Fail(Exception):
    """Raised by a handler: the call cannot be imported (message: why; hint: the fix)."""

    def __init__(self, why: str, hint: str = ""):
        super().__init__(why)
        self.why, self.hint = why, hint


# ---------------------------------------------------------------- tracing
def _tracer_class():
    from torch import fx, nn

    class Proxy(fx.Proxy):
        """Records ``x += y`` and ``x *= y`` as in-place calls (fx's Proxy turns them into
        ``x = x + y``, which differs from eager code when another name holds ``x``)."""

        def __iadd__(self, other):
            return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

        def __imul__(self, other):
            return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

    class Tracer(fx.Tracer):
        """Leaves: the torch.nn modules (mapped or reported by name); the rest is traced."""

        def proxy(self, node):
            return Proxy(node, self)

        def __init__(self, stacks: bool):
            from nas.functional import channel_affine

            # nas's own channel_affine (GoogLeNet's transform_input) is one call, not traced into
            super().__init__(autowrap_functions=(channel_affine,))
            self.record_stack_traces = stacks  # slow (a third of tracing): for errors only

        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            if _module_handler(m) is not None:
                return True
            return super().is_leaf_module(m, qualname)

    return Tracer


def _module_handler(m):
    """The mapping of module ``m``: by its class, or by the torch.nn class it subclasses
    without changing forward (``class MyConv(nn.Conv2d)`` with a new __init__ only)."""
    for cls in type(m).__mro__:
        handler = _MODULES.get(cls)
        if handler is not None:
            return handler if type(m).forward is cls.forward else None
    return None


def _user_frame(tb) -> str:
    """The innermost frame of the traceback outside torch: 'file:line: code'."""
    frames = [f for f in traceback.extract_tb(tb)
              if "/torch/" not in f.filename.replace("\\", "/")
              and f.filename != __file__]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename}:{f.lineno}: {(f.line or '').strip()}"


def _defaults(model) -> dict | None:
    """forward's arguments after the input that have defaults: fixed at their defaults (a
    genotype has one input); one without a default is refused."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    fixed = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise GenotypeError(f"cannot import the top module ({type(model).__name__}): forward "
                                f"takes a second argument {p.name!r} without a default; a genotype "
                                "has one input (wrap the module so forward(x) takes one tensor)")
        fixed[p.name] = p.default
    return fixed or None


def _trace(model, stacks: bool = False):
    from torch import fx

    tracer = _tracer_class()(stacks)
    try:
        graph = tracer.trace(model, concrete_args=_defaults(model))
    except Exception as e:  # noqa: BLE001 - every tracing failure becomes one clear error
        stack = list(tracer.module_stack.values())
        where = (f"module {stack[-1][0]!r} ({stack[-1][1].__name__})" if stack
                 else f"the top module ({type(model).__name__})")
        frame = _user_frame(e.__traceback__)
        text = str(e).split("\n")[0]
        if isinstance(e, fx.proxy.TraceError) or "symbolically traced variables" in text:
            raise GenotypeError(
                f"cannot import {where}: its forward branches or loops on a tensor's value or "
                f"shape (data-dependent control flow) at {frame or '?'}; a genotype is one fixed "
                "graph: make the branch depend on constructor arguments (or compute it once "
                "outside forward)") from None
        raise GenotypeError(
            f"cannot import {where}: tracing failed at {frame or '?'}: {type(e).__name__}: "
            f"{text}; torch.fx symbolic tracing must be able to run forward on a proxy "
            "(no data-dependent Python, no .item()/.tolist(), no numpy)") from None
    return graph


# ---------------------------------------------------------------- public API
def from_module(model, input_shape, name: str | None = None) -> Genotype:
    """Trace ``model`` and return its genotype for per-sample ``input_shape`` ((C, H, W) or
    (F,)). Raises :class:`GenotypeError` for anything the registry cannot express.

    The module is traced in training mode (its training-time graph, so auxiliary heads
    returned in training become ``aux_outputs``); its mode is restored afterwards. Nothing
    is run: no weights are read or changed.
    """
    from nas.compiler import AuxNet

    shape = input_shape_of(input_shape)
    root = model
    if isinstance(model, AuxNet):  # a compiled net with aux heads: its training graph
        root = model._train_graph
    _check_hooks(root)
    modes = {m: m.training for m in root.modules()}
    root.train()
    try:
        graph = _trace(root)
        _check_dropout(root, graph)
        try:
            return _Importer(root, graph, shape, name or type(model).__name__).run()
        except GenotypeError:  # again with source lines, for the message
            graph = _trace(root, stacks=True)
            return _Importer(root, graph, shape, name or type(model).__name__).run()
    finally:
        for m, mode in modes.items():
            m.train(mode)


def _check_hooks(root) -> None:
    """Hooks and parametrizations change what a module computes (weight_norm recomputes the
    weight in a pre-hook) but torch.fx does not run them: refused, never ignored."""
    for path, m in root.named_modules():
        what = None
        if m._forward_pre_hooks or m._forward_hooks:
            what = "forward hooks (e.g. torch.nn.utils.weight_norm, spectral_norm)"
        elif getattr(m, "parametrizations", None):
            what = "parametrized weights (torch.nn.utils.parametrize)"
        if what:
            raise GenotypeError(
                f"cannot import module {path or '(top)'!r} ({type(m).__name__}): it has {what}, "
                "which tracing does not follow; remove them first (remove_weight_norm, "
                "parametrize.remove_parametrizations(..., leave_parametrized=True)) or import "
                "the module without them")


def _check_dropout(root, graph) -> None:
    """``F.dropout(x, p)`` (training=True by default) drops at inference too, which the
    registry's dropout does not: found by tracing again in eval mode (only when the graph
    calls F.dropout)."""
    import torch.nn.functional as F

    if not any(n.op == "call_function" and n.target is F.dropout for n in graph.nodes):
        return
    root.eval()
    try:
        again = _trace(root, stacks=True)
    finally:
        root.train()
    for n in again.nodes:
        if n.op == "call_function" and n.target is F.dropout:
            training = n.kwargs.get("training", n.args[2] if len(n.args) > 2 else True)
            if training is True:
                stack = list((n.meta.get("nn_module_stack") or {}).values())
                where = f"module {stack[-1][0]!r}" if stack else f"the top module ({type(root).__name__})"
                line = _stack_line(n.meta.get("stack_trace") or n.stack_trace or "")
                raise GenotypeError(
                    f"cannot import {where}, call torch.nn.functional.dropout()"
                    + (f" at {line}" if line else "") + ": it drops in eval mode too "
                    "(training=True), which the registry's dropout (active in training only) "
                    "does not; pass training=self.training or use nn.Dropout")


def load_weights(module, state_dict: dict, *, genotype: Genotype | None = None,
                 strict: bool = True) -> list[str]:
    """Load ``state_dict`` (the original module's) into ``module`` (the compiled genotype).

    Every parameter and buffer of ``module`` must be in ``state_dict`` with its shape; keys of
    ``state_dict`` that ``module`` lacks (weights of submodules the original's forward never
    used) are returned. Pass the imported ``genotype`` when some module paths were not valid
    node ids (its ``meta['module_paths']``: e.g. torchvision RegNet's ``block1-0``). With
    ``strict=False`` missing keys are allowed too.
    """
    paths = dict((genotype.meta.get("module_paths") or {}) if genotype is not None else {})
    to_node = {v: k for k, v in paths.items()}

    def rename(key: str) -> str:
        owner, _, leaf = key.rpartition(".")
        return f"{to_node[owner]}.{leaf}" if owner in to_node else key

    state_dict = {rename(k): v for k, v in state_dict.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    if missing and strict:
        raise GenotypeError(f"the state dict lacks {len(missing)} key(s) of the compiled module "
                            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                            "pass the state dict of the module the genotype was imported from"
                            + ("" if genotype is not None else " (and genotype= if it renamed "
                               "module paths)"))
    for k, v in own.items():
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape):
            raise GenotypeError(f"weight {k!r} has shape {tuple(state_dict[k].shape)} in the "
                                f"state dict but {tuple(v.shape)} in the compiled module")
    module.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=strict)
    return [paths.get(k.rpartition(".")[0], k.rpartition(".")[0]) + "." + k.rpartition(".")[2]
            for k in state_dict if k not in own]


def load_factory(spec: str):
    """Call ``MODULE:FACTORY`` (MODULE importable from the current directory or PYTHONPATH,
    FACTORY a callable, dotted for an attribute path) and return the ``nn.Module`` it makes."""
    import importlib
    import os
    import sys

    from torch import nn

    mod_name, sep, attr = str(spec).partition(":")
    if not sep or not mod_name or not attr:
        raise GenotypeError(f"{spec!r} is not MODULE:FACTORY, e.g. torchvision.models:resnet18 "
                            "or mynet:build")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise GenotypeError(f"cannot import module {mod_name!r}: {e}; run from the directory "
                            "that holds it or add that directory to PYTHONPATH") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while importing
        raise GenotypeError(f"importing module {mod_name!r} failed: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:12]
            raise GenotypeError(f"{mod_name!r} has no attribute {attr!r} (it has: "
                                f"{', '.join(public)}{', ...' if len(public) == 12 else ''})")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise GenotypeError(f"{spec!r} is neither an nn.Module nor a callable returning one")
    try:
        model = obj()
    except Exception as e:  # noqa: BLE001 - the user's factory failed
        raise GenotypeError(f"calling {spec}() failed: {type(e).__name__}: {e}; FACTORY must "
                            "take no arguments (wrap it, e.g. def build(): return Net(10))") from None
    if not isinstance(model, nn.Module):
        raise GenotypeError(f"{spec}() returned {type(model).__name__}, not an nn.Module")
    return model


#: Largest genotype JSON read (DenseNet-201 is ~0.2 MB).
MAX_GENOTYPE_BYTES = 64 << 20


def read_genotype(path) -> Genotype:
    """A genotype JSON file (as written by ``python -m nas.zoo import``/``export``), validated."""
    from pathlib import Path

    p = Path(path)
    try:
        if not p.is_file():  # a FIFO or a device such as /dev/zero would never end
            raise GenotypeError(f"cannot read genotype file {str(p)!r}: not a regular file")
        if p.stat().st_size > MAX_GENOTYPE_BYTES:
            raise GenotypeError(f"cannot read genotype file {str(p)!r}: larger than "
                                f"{MAX_GENOTYPE_BYTES >> 20} MB (a genotype JSON is a few MB)")
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise GenotypeError(f"cannot read genotype file {str(p)!r}: {e}") from None
    try:
        return Genotype.from_json(text).validate()
    except GenotypeError as e:
        raise GenotypeError(f"{p}: {e}") from None


def architecture_hash(genotype: Genotype) -> str:
    """The canonical hash of what ``genotype`` computes: implicit values spelled out (a conv's
    default padding, a pool's stride = its kernel), identities skipped and an adaptive pool
    to 1x1 written as 'gap', so a
    genotype and its import back from the compiled module hash equal (the canonical hash
    tells ``padding: null`` from ``padding: 1``)."""
    from nas.ops import pair

    data = genotype.to_dict()
    alias: dict[str, str] = {}
    keep = []
    for nd in data["nodes"]:
        nd["inputs"] = [alias.get(i, i) for i in nd["inputs"]]
        if genotype.spec(nd["id"]).passthrough:
            alias[nd["id"]] = nd["inputs"][0]
            continue
        a = genotype.resolved_attrs(nd["id"])
        if nd["op"] == "conv" and a["padding"] is None:
            (kh, kw), (dh, dw) = pair(a["kernel"]), pair(a["dilation"])
            nd["attrs"]["padding"] = [dh * (kh - 1) // 2, dw * (kw - 1) // 2]
        if "stride" in a and "kernel" in a and a["stride"] is None:
            nd["attrs"]["stride"] = a["kernel"]
        if nd["op"] == "adaptive_avgpool" and pair(a["output_size"]) == (1, 1):
            nd["op"], nd["attrs"] = "gap", {}
        keep.append(nd)
    data["nodes"] = keep
    data["output"] = alias.get(data["output"], data["output"])
    data["aux_outputs"] = [alias.get(o, o) for o in data["aux_outputs"]]
    data["classifiers"] = []
    return Genotype.from_dict(data).canonical_hash()


def input_shape_of(input_shape) -> Shape:
    """A per-sample input shape from a tuple or text like '3,224,224' (checked)."""
    if isinstance(input_shape, str):
        parts = [p.strip() for p in re.split(r"[,x]", input_shape.strip())]
        if not all(p.isdigit() for p in parts):
            raise GenotypeError(f"input shape {input_shape!r} must be integers like 3,224,224")
        input_shape = [int(p) for p in parts]
    shape = tuple(input_shape)
    if len(shape) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                          for d in shape):
        raise GenotypeError(f"input shape {input_shape!r} must be (C, H, W) or (F,) of one sample "
                            "(no batch dimension), positive ints, e.g. 3,224,224")
    return shape


# ---------------------------------------------------------------- the mapping
def _fqn(fn: Any) -> str:
    """A readable dotted name of a traced function."""
    import torch
    import torch.nn.functional as F

    name = getattr(fn, "__name__", None) or repr(fn)
    for prefix, ns in (("torch.nn.functional", F), ("torch", torch), ("operator", operator)):
        if getattr(ns, name, None) is fn:
            return f"{prefix}.{name}"
    mod = getattr(fn, "__module__", None)
    return f"{mod}.{getattr(fn, '__qualname__', name)}" if mod else name


_ID = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")  # a genotype node id (nas.genotype)


class _Importer:
    def __init__(self, root, graph, input_shape: Shape, name: str):
        self.root = root
        self.fx = graph
        self.name = name
        self.graph = nx.DiGraph()
        self.shapes: dict[str, Shape] = {}
        self.storage = itertools.count()
        self.env: dict[Any, Any] = {}
        self.calls: dict[str, int] = {}
        self.renamed: dict[str, str] = {}
        self.next_k: dict[str, int] = {}        # next free suffix per name stem
        self.by_storage: dict[int, list] = {}   # storage -> fx nodes whose value lives there
        self.reserved = {n for n, _ in root.named_modules() if n}
        self.node = None  # the fx node being mapped
        self.input_shape = input_shape

    # ------------------------------------------------------------ driver
    def run(self) -> Genotype:
        nodes = list(self.fx.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        fixed = set(placeholders[1:]) if _defaults(self.root) else set()  # options at defaults
        placeholders = [n for n in placeholders if n not in fixed]
        if len(placeholders) != 1:
            raise GenotypeError(f"cannot import {self.name}: forward takes {len(placeholders)} "
                                "tensor arguments; a genotype has one input (wrap the module so "
                                "forward(x) takes one tensor)")
        live = self._live(nodes)
        self.order = {n: i for i, n in enumerate(nodes)}
        for n in nodes:
            if n not in live:
                continue
            self.node = n
            if n in fixed:
                continue
            if n.op == "placeholder":
                self.env[n] = self._add(self._fresh("input"), "input", [],
                                        shape=list(self.input_shape))
                self.by_storage[self.env[n].storage] = [n]
                self.input_id = self.env[n].node
            elif n.op == "output":
                return self._finish(n)
            elif n.op == "get_attr":
                self._fail(f"reads {n.target!r} directly in forward",
                           "put the weight in a registry layer (nn.Conv2d, nn.Linear, "
                           "nn.BatchNorm2d) and call that module instead")
            else:
                try:
                    self.env[n] = value = self._map(n)
                except _Fail as f:
                    self._fail(f.why, f.hint)
                if isinstance(value, _T):
                    self.by_storage.setdefault(value.storage, []).append(n)
        raise GenotypeError(f"cannot import {self.name}: the traced graph has no output")

    def _live(self, nodes) -> set:
        """Nodes the output depends on, plus in-place writes into tensors and their inputs."""
        seeds = [n for n in nodes if n.op == "output" or self._inplace(n)]
        live: set = set()
        stack = list(seeds)
        while stack:
            n = stack.pop()
            if n in live:
                continue
            live.add(n)
            stack.extend(n.all_input_nodes)
        return live

    def _inplace(self, n) -> bool:
        """Whether fx node ``n`` writes into its first input."""
        if n.op == "call_method":
            return n.target.endswith("_") and not n.target.endswith("__")
        if n.op == "call_module":
            return getattr(self.root.get_submodule(n.target), "inplace", False) is True
        if n.op != "call_function":
            return False
        handler = _FUNCTIONS.get(n.target)
        if handler is None:
            return False
        _, sig, inplace = handler
        try:
            bound = sig.bind(*n.args, **n.kwargs)
        except TypeError:
            return False
        return inplace or bound.arguments.get("inplace") is True

    def _finish(self, n) -> Genotype:
        out = _substitute(n.args[0], self.env)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        values = [self._tensor(o, "the output") for o in outs]
        names = [v.node for v in values]
        if names[0] == self.input_id:
            self._fail("returns its input unchanged", "a genotype needs at least one op")
        keep = set(names)
        for o in names:
            keep |= nx.ancestors(self.graph, o)
        g = self.graph.subgraph([n for n in self.graph if n in keep]).copy()
        aux = tuple(dict.fromkeys(names[1:]))
        meta = {"imported_from": f"{type(self.root).__module__}.{type(self.root).__qualname__}"}
        renamed = {k: v for k, v in self.renamed.items() if k in g}
        if renamed:  # module paths that are not valid node ids: load_weights maps them
            meta["module_paths"] = renamed
        genotype = Genotype(g, names[0], name=self.name, aux_outputs=aux, meta=meta)
        if aux:
            genotype.classifiers = tuple(dict.fromkeys(
                _classifier(genotype, o) for o in genotype.outputs))
        genotype.check_structure()
        return genotype

    # ------------------------------------------------------------ errors and names
    def _where(self) -> str:
        n = self.node
        stack = list((n.meta.get("nn_module_stack") or {}).values())
        if n.op == "call_module":
            m = self.root.get_submodule(n.target)
            where = f"module {n.target!r} ({type(m).__module__}.{type(m).__name__})"
        elif stack:
            where = f"module {stack[-1][0]!r} ({stack[-1][1].__name__}), call {self._call_name()}"
        else:
            where = f"the top module ({self.name}), call {self._call_name()}"
        line = _stack_line(n.meta.get("stack_trace") or n.stack_trace or "")
        return where + (f" at {line}" if line else "")

    def _call_name(self) -> str:
        n = self.node
        if n.op == "call_method":
            return f"Tensor.{n.target}()"
        if n.op == "call_function":
            return _fqn(n.target) + "()"
        return str(n.target)

    def _fail(self, why: str, hint: str = "") -> None:
        raise GenotypeError(f"cannot import {self._where()}: {why}" + (f"; {hint}" if hint else ""))

    def _scope(self) -> str:
        stack = list((self.node.meta.get("nn_module_stack") or {}).values())
        return stack[-1][0] if stack else ""

    def _fresh(self, base: str, *, exact: str | None = None) -> str:
        """A new node id: ``exact`` (a module path) if unused, else ``scope.base[_k]``."""
        if exact is not None and exact not in self.graph and _ID.match(exact):
            return exact
        stem = exact if exact is not None else ".".join(p for p in (self._scope(), base) if p)
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
        for k in itertools.count(self.next_k.get(stem, 0)):
            nid = stem if k == 0 else f"{stem}_{k}"
            if nid not in self.graph and nid not in self.reserved:
                self.next_k[stem] = k + 1
                return nid
        raise AssertionError  # pragma: no cover

    def _add(self, nid: str, op: str, inputs: list[_T], *, storage: int | None = None,
             **attrs) -> _T:
        spec = OPS.get(op)
        ins = [i.node for i in inputs]
        try:
            resolved = spec.resolve(attrs)
            spec.check_arity(len(ins))
            shape = tuple(spec.shape(resolved, [self.shapes[i] for i in ins]))
        except OpError as e:
            raise _Fail(f"as op {op!r}: {e}") from None
        self.graph.add_node(nid, op=op, inputs=ins, attrs=dict(attrs))
        for i in ins:
            self.graph.add_edge(i, nid)
        self.shapes[nid] = shape
        return _T(nid, next(self.storage) if storage is None else storage)

    def _op(self, op: str, inputs: list[_T], base: str | None = None, *,
            storage: int | None = None, **attrs) -> _T:
        """Add a node for a functional call (named ``scope.base``)."""
        return self._add(self._fresh(base or op), op, inputs, storage=storage, **attrs)

    def shape(self, t: _T) -> Shape:
        return self.shapes[t.node]

    def _tensor(self, v: Any, what: str) -> _T:
        if isinstance(v, _T):
            return v
        if isinstance(v, _Shuffle):
            self._fail(f"{what} is a 5-D view (the start of a channel shuffle) used as a tensor",
                       "only view(b, g, c // g, h, w).transpose(1, 2).reshape(b, c, h, w) (or "
                       ".flatten(1, 2)) is importable")
        if isinstance(v, _View):
            self._fail(f"{what} is a view to per-sample shape {v.shape}, made at {v.where}, "
                       "which has no registry op (the registry reshapes only by flatten "
                       "(C, H, W) -> (C*H*W,) and the channel shuffle)", v.hint)
        if isinstance(v, _Expanded):
            self._fail(f"{what} is an expand_as() result used outside a multiplication",
                       "multiply by the (C, 1, 1) gate directly (broadcasting)")
        kind = "a tuple" if isinstance(v, tuple) else type(v).__name__
        self._fail(f"{what} must be a tensor (or a tuple of tensors for the output), got {kind}",
                   "return tensors only")
        raise AssertionError  # pragma: no cover

    # ------------------------------------------------------------ dispatch
    def _map(self, n):
        args = _substitute(n.args, self.env)
        kwargs = _substitute(n.kwargs, self.env)
        if n.op == "call_module":
            m = self.root.get_submodule(n.target)
            handler = _module_handler(m)
            if handler is None:
                raise _Fail(f"{type(m).__name__} has no op in the nas registry",
                            f"registry ops: {', '.join(o for o in OPS if o != 'input')}; replace "
                            "the module by layers with those ops (or leave it out of the model "
                            "you import)")
            has_state = any(True for _ in itertools.chain(m.parameters(recurse=False),
                                                          m.buffers(recurse=False)))
            self.calls[n.target] = self.calls.get(n.target, 0) + 1
            if has_state and self.calls[n.target] > 1:
                raise _Fail("the module is called more than once, sharing its weights; a "
                            "genotype node owns its weights",
                            "use one module instance per call")
            x = self._tensor(args[0] if args else kwargs.get("input"), "the module's input")
            if len(args) + len(kwargs) != 1:
                raise _Fail("the module is called with more than one argument")
            nid = self._fresh("", exact=n.target)
            if has_state and nid != n.target:
                self.renamed[nid] = n.target
            result = handler(self, m, x, nid)
            return self._written(x, result, getattr(m, "inplace", False) is True)
        key = n.target if n.op == "call_function" else ("method", n.target)
        handler = _FUNCTIONS.get(key)
        if handler is None:
            if n.op == "call_method" and any(isinstance(a, _T) for a in args[:1]):
                raise _Fail("it has no op in the nas registry",
                            "use the registry's ops (conv, linear, bn, activations, pools, add, "
                            "mul, cat, flatten/view, channel shuffle, dropout)")
            if n.op == "call_function" and isinstance(n.target, type) and issubclass(n.target, tuple):
                return tuple(args) + tuple(kwargs.values())  # a namedtuple of outputs
            if n.op == "call_function" and not _has_tensor(args, kwargs):
                return _python(n.target, args, kwargs, self)
            raise _Fail("it has no op in the nas registry",
                        "use the registry's ops (conv, linear, bn, activations, pools, add, mul, "
                        "cat, flatten/view, channel shuffle, dropout)")
        fn, sig, inplace = handler
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise _Fail(f"unexpected arguments ({e})") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        result = fn(self, *bound.args, **bound.kwargs)
        first = values.get(next(iter(sig.parameters)))
        writes = inplace or values.get("inplace") is True
        return self._written(first, result, writes) if isinstance(first, _T) else result

    def _written(self, x: _T, result: Any, inplace: bool) -> Any:
        """After an in-place write into ``x``: every name of that storage now sees ``result``
        (a view of another shape that is still used later cannot follow: refused)."""
        if not inplace or not isinstance(result, _T) or result.node == x.node:
            return result
        result = _T(result.node, x.storage)
        order = self.order
        here = order[self.node]
        later = []  # names of this storage still read after this call (the others are done)
        for k in self.by_storage.get(x.storage, []):
            v = self.env[k]
            if (not isinstance(v, _T) or v.storage != x.storage
                    or not any(order.get(u, -1) > here for u in k.users)):
                continue
            later.append(k)
            if self.shapes[v.node] == self.shapes[x.node]:
                self.env[k] = result
            else:
                self._fail("writes in place into a tensor that a view of another shape "
                           "(flatten/view/split) shares and that is used later",
                           "use the out-of-place form (inplace=False)")
        self.by_storage[x.storage] = later
        return result


def _stack_line(trace: str) -> str:
    lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        m = re.match(r'File "([^"]+)", line (\d+)', lines[i])
        if m and "/torch/" not in m.group(1):
            code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
            return f"{m.group(1)}:{m.group(2)}: {code}"
    return ""


def _substitute(value, env):
    if hasattr(value, "op") and hasattr(value, "target"):  # an fx node
        return env[value]
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, env) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, env) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(_substitute(value.start, env), _substitute(value.stop, env),
                     _substitute(value.step, env))
    return value


def _has_tensor(args, kwargs) -> bool:
    def walk(v):
        if isinstance(v, (_T, _Shuffle, _Parts, _Expanded, _View)):
            return True
        if isinstance(v, (list, tuple)):
            return any(walk(x) for x in v)
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        return False
    return walk(args) or walk(kwargs)


_PY_OPS = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv,
           operator.mod, operator.neg, operator.getitem, operator.eq, operator.ne, int, len,
           getattr, operator.pow}


def _python(fn, args, kwargs, imp: _Importer):
    """Arithmetic on sizes (ints) outside the tensor graph; the batch size stays symbolic."""
    if fn not in _PY_OPS:
        raise _Fail("it has no op in the nas registry", "")
    if any(a is BATCH for a in args if not isinstance(a, tuple)) and fn is not operator.getitem:
        raise _Fail("it computes with the batch size",
                    "pass x.size(0) (or -1) straight to view/reshape")
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise _Fail(f"evaluating it on sizes failed: {e}") from None


def _classifier(g: Genotype, out: str) -> str:
    """The node that sets the width of output ``out`` (its classifier)."""
    n = out
    while g.spec(n).width_attr is None:
        if not g.inputs(n) or g.op(g.inputs(n)[0]) == "input":
            raise GenotypeError(f"output {out!r} has no conv or linear layer setting its width; "
                                "each output of a genotype is a classifier")
        n = g.inputs(n)[0]
    return n


# ---------------------------------------------------------------- attribute helpers
def _pair(v, what: str):
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 1:
        return (int(v[0]), int(v[0]))
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return (int(v[0]), int(v[1]))
    raise _Fail(f"{what} {v!r} is not an int or a pair of ints")


def _attr(p: tuple[int, int]):
    """A pair as the genotype writes it: an int when square."""
    return p[0] if p[0] == p[1] else list(p)


def _conv(imp: _Importer, x: _T, nid: str, *, out_channels, kernel, stride, padding, dilation,
          groups, bias, padding_mode="zeros", in_channels=None) -> _T:
    shape = imp.shape(x)
    if len(shape) != 3:
        raise _Fail(f"a 2-D convolution needs a (C, H, W) input, got per-sample shape {shape}")
    if in_channels is not None and in_channels != shape[0]:
        raise _Fail(f"the conv expects {in_channels} input channels but gets {shape[0]}",
                    "check the input shape given to the importer (C,H,W of one sample)")
    if padding_mode != "zeros":
        raise _Fail(f"padding_mode={padding_mode!r} has no registry equivalent (the registry's "
                    "conv pads with zeros)", "use padding_mode='zeros'")
    k, s, d = _pair(kernel, "kernel_size"), _pair(stride, "stride"), _pair(dilation, "dilation")
    if padding == "valid":
        p = (0, 0)
    elif padding == "same":
        if s != (1, 1):
            raise _Fail("padding='same' needs stride 1")
        if any(di * (ki - 1) % 2 for ki, di in zip(k, d)):
            raise _Fail("padding='same' with an even kernel pads asymmetrically, which the "
                        "registry's conv cannot express", "use an odd kernel or explicit padding")
        p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
    else:
        p = _pair(padding, "padding")
    attrs: dict = {"out_channels": int(out_channels), "kernel": _attr(k)}
    if s != (1, 1):
        attrs["stride"] = _attr(s)
    if p != tuple(di * (ki - 1) // 2 for ki, di in zip(k, d)):
        attrs["padding"] = _attr(p)
    if d != (1, 1):
        attrs["dilation"] = _attr(d)
    if groups != 1:
        attrs["groups"] = int(groups)
    if bias:
        attrs["bias"] = True
    return imp._add(nid, "conv", [x], **attrs)


def _activation_attrs(op: str, **given) -> dict:
    spec = OPS.get(op)
    return {k: float(v) for k, v in given.items() if spec.schema[k].default != v}


def _pool(imp: _Importer, op: str, x: _T, nid: str, kernel_size, stride, padding, ceil_mode,
          dilation=1, return_indices=False, count_include_pad=True, divisor_override=None) -> _T:
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] or stride == () else _pair(stride, "stride")
    if _pair(dilation, "dilation") != (1, 1):
        raise _Fail("a dilated pool has no registry equivalent", "use dilation=1")
    if return_indices:
        raise _Fail("return_indices=True has no registry equivalent", "use return_indices=False")
    if divisor_override is not None:
        raise _Fail("divisor_override has no registry equivalent", "leave it None")
    attrs: dict = {"kernel": _attr(k)}
    if s != k:
        attrs["stride"] = _attr(s)
    if _pair(padding, "padding") != (0, 0):
        attrs["padding"] = _attr(_pair(padding, "padding"))
    if ceil_mode:
        attrs["ceil_mode"] = True
    if op == "avgpool" and not count_include_pad:
        attrs["count_include_pad"] = False
    return imp._add(nid, op, [x], **attrs)


def _adaptive(imp: _Importer, x: _T, nid: str, output_size) -> _T:
    if output_size in (1, (1, 1), [1, 1]):  # global average pooling: the registry's gap
        return imp._add(nid, "gap", [x])
    if isinstance(output_size, (list, tuple)) and any(v is None for v in output_size):
        raise _Fail("an adaptive pool keeping an input size (None) has no registry equivalent",
                    "give both output sizes")
    return imp._add(nid, "adaptive_avgpool", [x], output_size=_attr(_pair(output_size, "output_size")))


# ---------------------------------------------------------------- modules
def _module_table() -> dict:
    from torch import nn

    def conv(imp, m, x, nid):
        return _conv(imp, x, nid, out_channels=m.out_channels, kernel=m.kernel_size,
                     stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                     bias=m.bias is not None, padding_mode=m.padding_mode,
                     in_channels=m.in_channels)

    def linear(imp, m, x, nid):
        shape = imp.shape(x)
        if len(shape) != 1:
            raise _Fail(f"nn.Linear on a per-sample shape {shape} has no registry equivalent "
                        "(the registry's linear takes flat features)",
                        "flatten first (torch.flatten(x, 1) or x.view(x.size(0), -1))")
        if m.in_features != shape[0]:
            raise _Fail(f"the layer expects {m.in_features} features but gets {shape[0]}",
                        "check the input shape given to the importer (C,H,W of one sample)")
        return imp._add(nid, "linear", [x], out_features=m.out_features,
                        **({} if m.bias is not None else {"bias": False}))

    def bn(dims):
        def build(imp, m, x, nid):
            shape = imp.shape(x)
            if len(shape) != dims:
                raise _Fail(f"{type(m).__name__} on a per-sample shape {shape}",
                            "BatchNorm2d takes (C, H, W) maps, BatchNorm1d flat features")
            if not m.affine or not m.track_running_stats or m.momentum is None:
                raise _Fail("only affine BatchNorm with running statistics and a momentum has a "
                            "registry op", "use affine=True, track_running_stats=True, momentum "
                            "a number")
            if m.num_features != shape[0]:
                raise _Fail(f"the layer expects {m.num_features} channels but gets {shape[0]}",
                            "check the input shape given to the importer (C,H,W of one sample)")
            attrs = {}
            if m.eps != 1e-5:
                attrs["eps"] = float(m.eps)
            if m.momentum != 0.1:
                attrs["momentum"] = float(m.momentum)
            return imp._add(nid, "bn", [x], **attrs)
        return build

    def act(op, **params):
        def build(imp, m, x, nid):
            if op == "gelu" and getattr(m, "approximate", "none") != "none":
                raise _Fail("GELU(approximate='tanh') has no registry op", "use approximate='none'")
            return imp._add(nid, op, [x], **_activation_attrs(
                op, **{k: getattr(m, attr) for k, attr in params.items()}))
        return build

    def maxpool(imp, m, x, nid):
        return _pool(imp, "maxpool", x, nid, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                     m.dilation, m.return_indices)

    def avgpool(imp, m, x, nid):
        return _pool(imp, "avgpool", x, nid, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                     count_include_pad=m.count_include_pad, divisor_override=m.divisor_override)

    def adaptive(imp, m, x, nid):
        return _adaptive(imp, x, nid, m.output_size)

    def flatten(imp, m, x, nid):
        return _flatten(imp, x, m.start_dim, m.end_dim, nid)

    def dropout(imp, m, x, nid):
        return imp._add(nid, "dropout", [x], **({} if m.p == 0.5 else {"p": float(m.p)}))

    def identity(imp, m, x, nid):
        return imp._add(nid, "identity", [x], storage=x.storage)

    def hardtanh(imp, m, x, nid):
        if (m.min_val, m.max_val) != (0, 6):
            raise _Fail(f"Hardtanh({m.min_val}, {m.max_val}) has no registry op (relu6 is "
                        "Hardtanh(0, 6))", "use nn.ReLU6")
        return imp._add(nid, "relu6", [x])

    def shuffle(imp, m, x, nid):
        return imp._add(nid, "channel_shuffle", [x], groups=int(m.groups))

    def lrn(imp, m, x, nid):
        return imp._add(nid, "lrn", [x], **{k: v for k, v in (
            ("size", m.size), ("alpha", float(m.alpha)), ("beta", float(m.beta)),
            ("k", float(m.k))) if OPS.get("lrn").schema[k].default != v})

    table = {nn.Conv2d: conv, nn.Linear: linear, nn.BatchNorm2d: bn(3), nn.BatchNorm1d: bn(1),
             nn.ReLU: act("relu"), nn.ReLU6: act("relu6"),
             nn.LeakyReLU: act("leaky_relu", negative_slope="negative_slope"),
             nn.Sigmoid: act("sigmoid"), nn.Hardsigmoid: act("hsigmoid"),
             nn.Hardswish: act("hswish"), nn.SiLU: act("silu"), nn.GELU: act("gelu"),
             nn.Tanh: act("tanh"), nn.Hardtanh: hardtanh, nn.MaxPool2d: maxpool, nn.AvgPool2d: avgpool,
             nn.AdaptiveAvgPool2d: adaptive, nn.Flatten: flatten, nn.Dropout: dropout,
             nn.Identity: identity, nn.ChannelShuffle: shuffle, nn.LocalResponseNorm: lrn}
    return table


# ---------------------------------------------------------------- functions and methods
def _flatten(imp: _Importer, x, start_dim, end_dim, nid: str | None = None):
    if isinstance(x, _Shuffle):
        if x.swapped and start_dim == 1 and end_dim == 2:
            return imp._add(nid or imp._fresh("channel_shuffle"), "channel_shuffle", [x.src],
                            groups=x.groups)
        imp._tensor(x, "the input")
    if isinstance(x, _View):
        ndim = len(x.shape) + 1
        if start_dim % ndim == 1 and end_dim % ndim == ndim - 1:
            return _reshaped(imp, x.src, (math.prod(x.shape),), nid)
        imp._tensor(x, "the input")
    x = imp._tensor(x, "the input")
    ndim = len(imp.shape(x)) + 1
    start = start_dim % ndim if -ndim <= start_dim < ndim else None
    end = end_dim % ndim if -ndim <= end_dim < ndim else None
    if start != 1 or end != ndim - 1:
        raise _Fail(f"flatten(start_dim={start_dim}, end_dim={end_dim}) of a {ndim}-D batch has no "
                    "registry op (the registry's flatten keeps the batch dimension and flattens "
                    "the rest)", "use torch.flatten(x, 1)")
    return imp._add(nid or imp._fresh("flatten"), "flatten", [x], storage=x.storage)


def _view(imp: _Importer, x, dims, what: str):
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    dims = list(dims)
    hint = f"write x.{what}(x.size(0), -1) to flatten (the registry's flatten)"
    if not dims or any(not (d is BATCH or isinstance(d, int)) for d in dims):
        raise _Fail(f"{what}{tuple(dims)} has sizes the importer cannot follow", hint)
    if isinstance(x, _Shuffle):
        c = imp.shape(x.src)
        if x.swapped and dims[0] in (BATCH, -1) and _resolve(dims[1:], c) == c:
            return imp._op("channel_shuffle", [x.src], groups=x.groups)
        imp._tensor(x, "the input")
    if isinstance(x, _View):
        src, shape = x.src, x.shape
    else:
        src = imp._tensor(x, "the input")
        shape = imp.shape(src)
    if dims[0] is BATCH:
        new = _resolve(dims[1:], shape)
    elif dims[0] == -1 and all(isinstance(d, int) and d >= 0 for d in dims[1:]):
        new = tuple(dims[1:])
        if math.prod(new) != math.prod(shape):
            new = None
    else:
        raise _Fail(f"{what}{tuple(dims)} does not keep the batch dimension first (a hard-coded "
                    "batch size or a batch mixed with features)", hint)
    if new is None:
        raise _Fail(f"{what}{tuple(dims)} does not fit the per-sample shape {shape}", hint)
    return _reshaped(imp, src, new, hint=hint)


def _reshaped(imp: _Importer, src: _T, new: Shape, nid: str | None = None, hint: str = ""):
    """``src`` viewed with per-sample shape ``new``: itself, a flatten, the start of a
    channel shuffle, or a pending :class:`_View`."""
    shape = imp.shape(src)
    new = tuple(new)
    if new == shape:
        return src
    if len(new) == 1 and new[0] == math.prod(shape):
        return imp._add(nid or imp._fresh("flatten"), "flatten", [src], storage=src.storage)
    if len(shape) == 3 and len(new) == 4 and new[2:] == shape[1:] and new[0] * new[1] == shape[0]:
        return _Shuffle(src, new[0], False)
    if len(new) == 3 and new[1:] == (1, 1):
        hint = ("for an SE gate keep the (C, 1, 1) shape: x.mean((2, 3), keepdim=True) and 1x1 "
                "nn.Conv2d layers instead of nn.Linear")
    return _View(src, new, imp._where(), hint or "view back to (C, H, W) or flatten to (C*H*W,)")


def _sample_shape(imp: _Importer, x) -> Shape:
    """The per-sample shape of a tensor or a pending view."""
    return x.shape if isinstance(x, _View) else imp.shape(imp._tensor(x, "the input"))


def _resolve(dims: list, shape: Shape):
    total = math.prod(shape)
    if sum(1 for d in dims if d == -1) > 1 or any(d is BATCH or d < -1 or d == 0 for d in dims):
        return None
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or total % known:
            return None
        dims = [total // known if d == -1 else d for d in dims]
    return tuple(dims) if math.prod(dims) == total else None


def _binary(imp: _Importer, op: str, a, b, what: str, alpha=1):
    if alpha != 1:
        raise _Fail(f"{what} with alpha={alpha} has no registry op", "use alpha=1")
    if isinstance(a, _Expanded) and op == "mul":
        a = a.src
    if isinstance(b, _Expanded) and op == "mul":
        b = b.src
    if not (isinstance(a, _T) and isinstance(b, _T)):
        if isinstance(a, _T) or isinstance(b, _T):
            other = b if isinstance(a, _T) else a
            if isinstance(other, (int, float)):
                raise _Fail(f"{what} of a tensor and the constant {other!r} has no registry op",
                            "the registry's add/mul combine two tensors; fold constants into "
                            "the weights of the layer before")
        if not _has_tensor((a, b), {}):
            fn = operator.add if op == "add" else operator.mul
            return _python(fn, (a, b), {}, imp)
        imp._tensor(a, "operand 1")
        imp._tensor(b, "operand 2")
    if op == "mul" and imp.shape(a) != imp.shape(b) and all(s == 1 for s in imp.shape(a)[1:]):
        a, b = b, a  # the gate second, as the registry's SE writes it
    if op == "add" and imp.shape(a) != imp.shape(b):
        raise _Fail(f"adding shapes {imp.shape(a)} and {imp.shape(b)} broadcasts, which the "
                    "registry's add does not", "add tensors of one shape")
    return imp._op(op, [a, b])


def _function_table() -> dict:
    import torch
    import torch.nn.functional as F

    table: dict = {}

    def reg(keys, inplace=False):
        def deco(fn):
            sig = inspect.signature(fn)
            params = list(sig.parameters.values())[1:]
            sig = sig.replace(parameters=params)
            for k in keys:
                table[k] = (fn, sig, inplace)
            return fn
        return deco

    def m(*names):
        return [("method", n) for n in names]

    # -------- arithmetic
    @reg([operator.add, torch.add, *m("add")])
    def _add(imp, input, other, alpha=1):
        return _binary(imp, "add", input, other, "add", alpha)

    @reg([operator.iadd, *m("add_")], inplace=True)
    def _iadd(imp, input, other, alpha=1):
        return _binary(imp, "add", input, other, "add", alpha)

    @reg([operator.mul, torch.mul, *m("mul")])
    def _mul(imp, input, other):
        return _binary(imp, "mul", input, other, "mul")

    @reg([operator.imul, *m("mul_")], inplace=True)
    def _imul(imp, input, other):
        return _binary(imp, "mul", input, other, "mul")

    @reg([torch.cat, torch.concat, torch.concatenate])
    def _cat(imp, tensors, dim=0):
        ts = [imp._tensor(t, "an input of cat") for t in tensors]
        ndim = len(imp.shape(ts[0])) + 1
        if dim % ndim != 1:
            raise _Fail(f"cat along dim {dim} has no registry op (the registry's concat joins "
                        "channels or features, dim 1)", "concatenate along dim=1")
        return imp._op("concat", ts, base="cat")

    # -------- activations
    def act(op, keys, inplace=False, **params):
        @reg(keys, inplace=inplace)
        def _act(imp, input, inplace=False):
            return imp._op(op, [imp._tensor(input, "the input")], base=op)
        return _act

    for op, keys in (("relu", [F.relu, torch.relu, *m("relu")]),
                     ("sigmoid", [torch.sigmoid, F.sigmoid, *m("sigmoid")]),
                     ("tanh", [torch.tanh, F.tanh, *m("tanh")])):
        act(op, keys)
    for op, keys in (("relu", [torch.relu_, F.relu_, *m("relu_")]),
                     ("sigmoid", [torch.sigmoid_, *m("sigmoid_")]),
                     ("tanh", [torch.tanh_, *m("tanh_")])):
        act(op, keys, inplace=True)

    def plain(op, fn):
        @reg([fn])
        def _plain(imp, input, inplace=False):
            return imp._op(op, [imp._tensor(input, "the input")], base=op)
        return _plain

    for op, fn in (("relu6", F.relu6), ("hsigmoid", F.hardsigmoid), ("hswish", F.hardswish),
                   ("silu", F.silu)):
        plain(op, fn)

    @reg([F.hardtanh])
    def _hardtanh(imp, input, min_val=-1.0, max_val=1.0, inplace=False):
        if (min_val, max_val) != (0, 6):
            raise _Fail(f"hardtanh({min_val}, {max_val}) has no registry op (relu6 is "
                        "hardtanh(0, 6))", "use F.relu6")
        return imp._op("relu6", [imp._tensor(input, "the input")], base="relu6")

    @reg([F.leaky_relu])
    def _leaky(imp, input, negative_slope=0.01, inplace=False):
        return imp._op("leaky_relu", [imp._tensor(input, "the input")],
                       **_activation_attrs("leaky_relu", negative_slope=negative_slope))

    @reg([F.gelu])
    def _gelu(imp, input, approximate="none"):
        if approximate != "none":
            raise _Fail("gelu(approximate='tanh') has no registry op", "use approximate='none'")
        return imp._op("gelu", [imp._tensor(input, "the input")])

    # -------- pools
    @reg([F.max_pool2d, torch.max_pool2d])
    def _maxpool(imp, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
        return _pool(imp, "maxpool", imp._tensor(input, "the input"), imp._fresh("max_pool2d"),
                     kernel_size, stride, padding, ceil_mode, dilation, return_indices)

    @reg([F.avg_pool2d])
    def _avgpool(imp, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        return _pool(imp, "avgpool", imp._tensor(input, "the input"), imp._fresh("avg_pool2d"),
                     kernel_size, stride, padding, ceil_mode,
                     count_include_pad=count_include_pad, divisor_override=divisor_override)

    @reg([F.adaptive_avg_pool2d])
    def _adaptive_fn(imp, input, output_size):
        return _adaptive(imp, imp._tensor(input, "the input"), imp._fresh("adaptive_avg_pool2d"),
                         output_size)

    @reg([torch.mean, *m("mean")])
    def _mean(imp, input, dim=None, keepdim=False, dtype=None):
        x = imp._tensor(input, "the input")
        shape = imp.shape(x)
        dims = dim if isinstance(dim, (list, tuple)) else (dim,)
        if len(shape) != 3 or dtype is not None or None in dims or \
                {d % 4 for d in dims if isinstance(d, int)} != {2, 3} or len(dims) != 2:
            raise _Fail(f"mean over dims {dim!r} of per-sample shape {shape} has no registry op "
                        "(only the spatial mean x.mean((2, 3)), global average pooling)",
                        "average over (2, 3)")
        g = imp._op("gap", [x], base="mean")
        return g if keepdim else imp._op("flatten", [g], base="mean_flatten", storage=g.storage)

    # -------- shapes
    @reg([torch.flatten, *m("flatten")])
    def _flatten_fn(imp, input, start_dim=0, end_dim=-1):
        return _flatten(imp, input, start_dim, end_dim)

    @reg(m("view"))
    def _view_m(imp, input, *size):
        return _view(imp, input, size, "view")

    @reg(m("reshape"))
    def _reshape_m(imp, input, *shape):
        return _view(imp, input, shape, "reshape")

    @reg([torch.reshape])
    def _reshape_f(imp, input, shape):
        return _view(imp, input, shape, "reshape")

    @reg(m("size"))
    def _size(imp, input, dim=None):
        full = (BATCH, *_sample_shape(imp, input))
        return full if dim is None else full[dim]

    @reg([getattr])
    def _getattr(imp, input, name, default=None):
        if name == "shape":
            return (BATCH, *_sample_shape(imp, input))
        if name == "ndim":
            return len(_sample_shape(imp, input)) + 1
        raise _Fail(f"reading tensor attribute {name!r} is not importable", "")

    @reg(m("dim"))
    def _dim(imp, input):
        return len(_sample_shape(imp, input)) + 1

    @reg([torch.squeeze, *m("squeeze")])
    def _squeeze(imp, input, dim=None):
        shape = _sample_shape(imp, input)
        if dim is None:
            raise _Fail("squeeze() without dims also drops the batch dimension when the batch "
                        "is 1", "name the dims, e.g. x.squeeze(-1).squeeze(-1), or use "
                        "torch.flatten(x, 1)")
        dims = {d % (len(shape) + 1) for d in (dim if isinstance(dim, (list, tuple)) else (dim,))}
        if 0 in dims:
            raise _Fail("squeezing the batch dimension has no registry op", "squeeze dims >= 1")
        new = tuple(c for i, c in enumerate(shape, 1) if not (i in dims and c == 1))
        src = input.src if isinstance(input, _View) else imp._tensor(input, "the input")
        return _reshaped(imp, src, new)

    @reg([torch.unsqueeze, *m("unsqueeze")])
    def _unsqueeze(imp, input, dim):
        shape = list(_sample_shape(imp, input))
        at = dim % (len(shape) + 2)
        if at == 0:
            raise _Fail("a new dimension before the batch has no registry op", "unsqueeze dims >= 1")
        shape.insert(at - 1, 1)
        src = input.src if isinstance(input, _View) else imp._tensor(input, "the input")
        return _reshaped(imp, src, tuple(shape))

    @reg([operator.getitem])
    def _getitem(imp, input, index):
        if isinstance(input, _Parts):
            if not isinstance(index, int) or not -input.parts <= index < input.parts:
                raise _Fail(f"indexing a channel split with {index!r}", "use an int index")
            return imp._op("channel_split", [input.src], base="chunk", parts=input.parts,
                           index=index % input.parts, storage=input.src.storage)
        if isinstance(input, (_T, _Shuffle, _Expanded, _View)):
            raise _Fail("indexing or slicing a tensor has no registry op",
                        "split channels with x.chunk(n, dim=1) or torch.split(x, c // n, dim=1)")
        try:
            return input[index]
        except Exception as e:  # noqa: BLE001
            raise _Fail(f"indexing failed: {e}") from None

    @reg(m("contiguous"))
    def _contiguous(imp, input, memory_format=None):
        return input

    @reg([torch.transpose, *m("transpose")])
    def _transpose(imp, input, dim0, dim1):
        if isinstance(input, _Shuffle) and not input.swapped and {dim0 % 5, dim1 % 5} == {1, 2}:
            return _Shuffle(input.src, input.groups, True)
        raise _Fail("transpose has no registry op except inside the channel shuffle",
                    "write the shuffle as x.view(b, g, c // g, h, w).transpose(1, 2)"
                    ".reshape(b, c, h, w)")

    @reg([torch.permute, *m("permute")])
    def _permute(imp, input, *dims):
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = tuple(dims[0])
        if isinstance(input, _Shuffle) and not input.swapped and tuple(d % 5 for d in dims) == (0, 2, 1, 3, 4):
            return _Shuffle(input.src, input.groups, True)
        raise _Fail("permute has no registry op except inside the channel shuffle",
                    "write the shuffle as x.view(b, g, c // g, h, w).transpose(1, 2)"
                    ".reshape(b, c, h, w)")

    from nas.functional import channel_affine

    @reg([channel_affine])
    def _channel_affine(imp, input, scale, shift):
        return imp._op("channel_affine", [imp._tensor(input, "the input")],
                       scale=[float(v) for v in scale], shift=[float(v) for v in shift])

    @reg([F.channel_shuffle, torch.channel_shuffle, torch.native_channel_shuffle])
    def _shuffle(imp, input, groups):
        return imp._op("channel_shuffle", [imp._tensor(input, "the input")], groups=int(groups))

    @reg(m("expand_as"))
    def _expand_as(imp, input, other):
        x, o = imp._tensor(input, "the input"), imp._tensor(other, "the target")
        if imp.shape(x) == imp.shape(o):
            return x
        if len(imp.shape(x)) == 3 and imp.shape(x)[0] == imp.shape(o)[0] and imp.shape(x)[1:] == (1, 1):
            return _Expanded(x)
        raise _Fail(f"expanding {imp.shape(x)} to {imp.shape(o)} has no registry op", "")

    # -------- channel splits
    def _parts(imp, x, n, what):
        c = imp.shape(x)[0] if len(imp.shape(x)) == 3 else None
        if c is None or not isinstance(n, int) or n < 1 or c % n:
            raise _Fail(f"{what} into parts that are not equal channel slices has no registry op",
                        "split channels into equal parts")
        return _Parts(x, n)

    @reg([torch.chunk, *m("chunk")])
    def _chunk(imp, input, chunks, dim=0):
        x = imp._tensor(input, "the input")
        if dim % (len(imp.shape(x)) + 1) != 1:
            raise _Fail(f"chunk along dim {dim} has no registry op", "chunk channels (dim=1)")
        return _parts(imp, x, chunks, "chunk")

    @reg([torch.split, *m("split")])
    def _split(imp, input, split_size_or_sections, dim=0):
        x = imp._tensor(input, "the input")
        if dim % (len(imp.shape(x)) + 1) != 1:
            raise _Fail(f"split along dim {dim} has no registry op", "split channels (dim=1)")
        size = split_size_or_sections
        c = imp.shape(x)[0]
        if isinstance(size, (list, tuple)):
            if len(set(size)) != 1:
                raise _Fail(f"split into unequal sections {size} has no registry op",
                            "split channels into equal parts")
            size = size[0]
        if not isinstance(size, int) or size < 1 or c % size:
            raise _Fail(f"split of {c} channels by {size!r} gives unequal parts",
                        "split channels into equal parts")
        return _parts(imp, x, c // size, "split")

    @reg([torch.narrow, *m("narrow")])
    def _narrow(imp, input, dim, start, length):
        x = imp._tensor(input, "the input")
        c = imp.shape(x)[0]
        if (len(imp.shape(x)) != 3 or dim % 4 != 1 or not isinstance(length, int) or length < 1
                or c % length or start % length):
            raise _Fail(f"narrow(dim={dim}, start={start}, length={length}) is not one of equal "
                        "channel slices", "slice channels into equal parts")
        return imp._op("channel_split", [x], base="narrow", parts=c // length,
                       index=start // length, storage=x.storage)

    # -------- others
    @reg([F.dropout])
    def _dropout(imp, input, p=0.5, training=True, inplace=False):
        x = imp._tensor(input, "the input")
        if not training:  # a no-op even in training: exactly the input
            return x
        return imp._op("dropout", [x], **({} if p == 0.5 else {"p": float(p)}))

    @reg([F.local_response_norm])
    def _lrn(imp, input, size, alpha=1e-4, beta=0.75, k=1.0):
        return imp._op("lrn", [imp._tensor(input, "the input")], size=size, alpha=float(alpha),
                       beta=float(beta), k=float(k))

    return table


class _Lazy(dict):
    """A dict filled on first use (torch is imported only when importing a module)."""

    def __init__(self, fill: Callable[[], dict]):
        super().__init__()
        self._fill = fill

    def _load(self):
        if not super().__len__():
            self.update(self._fill())

    def get(self, key, default=None):
        self._load()
        return super().get(key, default)

    def __contains__(self, key) -> bool:
        self._load()
        return super().__contains__(key)


_MODULES = _Lazy(_module_table)
_FUNCTIONS = _Lazy(_function_table)
