"""Genotype -> torch module: straight-line code generated with torch.fx.

The generated forward has no interpretive loop: one line per op, modules named after the
genotype's node ids (``layer1.0.conv1``), so it runs like hand-written code and its state
dict is legible. Works with ``torch.compile``, ``channels_last``, TorchScript and ONNX.
"""
from __future__ import annotations

from collections import Counter

import networkx as nx
import torch
from torch import fx, nn

from nas.errors import GenotypeError
from nas.genotype import Genotype
from nas.ops import Call


def compile(genotype: Genotype, *, in_channels: int | None = None,
            num_classes: int | None = None) -> nn.Module:  # noqa: A001
    """Build the PyTorch module of ``genotype`` (optionally retargeted to a proxy task).

    Returns a ``torch.fx.GraphModule``; a genotype with auxiliary outputs compiles to a
    module that returns ``(main, *aux)`` in training mode and ``main`` in eval mode.
    """
    if in_channels is not None or num_classes is not None:
        genotype = genotype.retarget(in_channels, num_classes)
    shapes = genotype.infer_shapes()
    root = nn.Module()
    train = _emit(genotype, shapes, root, genotype.outputs)
    cls_name = _class_name(genotype.name)
    if not genotype.aux_outputs:
        return fx.GraphModule(root, train, class_name=cls_name)
    evaluate = _emit(genotype, shapes, root, (genotype.output,))
    return AuxNet(root, fx.GraphModule(root, train, class_name=cls_name),
                  fx.GraphModule(root, evaluate, class_name=cls_name))


class AuxNet(nn.Module):
    """A net with auxiliary heads: ``(main, *aux)`` in training, ``main`` in eval.

    The two generated graphs share the submodules registered here, so the state dict has
    one copy of every weight under its genotype name.
    """

    def __init__(self, root: nn.Module, train: fx.GraphModule, evaluate: fx.GraphModule):
        super().__init__()
        for name, child in root.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_train_graph", train)  # not registered: shares our children
        object.__setattr__(self, "_eval_graph", evaluate)

    def forward(self, x):
        return self._train_graph(x) if self.training else self._eval_graph(x)


def _emit(g: Genotype, shapes: dict, root: nn.Module, outputs: tuple[str, ...]) -> fx.Graph:
    needed = set(outputs)
    for out in outputs:
        needed |= nx.ancestors(g.graph, out)
    order = [n for n in g.topological_order() if n in needed]
    source = _alias_sources(g, order)
    uses = Counter(source[i] for n in order for i in g.inputs(n))
    uses.update(source[o] for o in outputs)
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for n in order:
        spec = g.spec(n)
        if n == g.input:
            env[n] = graph.placeholder("x")
            continue
        ins = g.inputs(n)
        args = [env[i] for i in ins]
        first = source[ins[0]] if ins else None
        inplace = (spec.inplace_capable and first is not None and uses[first] == 1
                   and g.spec(first).inplace_safe and first not in outputs)
        if spec.passthrough:
            env[n] = args[0]
            continue
        module = root.get_submodule(n) if _installed(root, n) else None
        if module is None:
            attrs = spec.resolve(g.attrs(n))
            built = _build(spec, attrs, [shapes[i] for i in ins], inplace)
        else:
            built = module
        if isinstance(built, Call):
            env[n] = _call(graph, built, args)
        else:
            if module is None:  # the eval graph of a net with aux heads reuses the train graph's
                _install(root, n, built)
            env[n] = graph.call_module(n, tuple(args))
    results = [env[o] for o in outputs]
    graph.output(results[0] if len(results) == 1 else tuple(results))
    graph.lint()
    return graph


def _build(spec, attrs: dict, in_shapes: list, inplace: bool):
    """The op's module (or Call). An op with a declared init (nas.ops) is built on the meta
    device, so PyTorch's default init (which draws random numbers for every conv weight)
    does not run before the declared one overwrites it: the declared init sets every
    parameter and buffer of the module on uninitialised storage of the device modules are
    built on (the default device: CPU unless a ``torch.device`` context says otherwise)."""
    if spec.init is None:
        return spec.torch(attrs, in_shapes, inplace)
    device = torch.get_default_device()
    with torch.device("meta"):
        built = spec.torch(attrs, in_shapes, inplace)
    if isinstance(built, Call):
        return built
    if device.type != "meta":
        built = built.to_empty(device=device)
    spec.init(built, attrs)  # the op's declared init
    return built


def _call(graph: fx.Graph, call: Call, args: list) -> fx.Node:
    emit = graph.call_method if call.method else graph.call_function
    if call.pack:
        return emit(call.fn, (list(args), *call.args), call.kwargs)
    if call.chain:  # a binary op folded left to right over 2+ inputs
        node = emit(call.fn, (args[0], args[1], *call.args), call.kwargs)
        for extra in args[2:]:
            node = emit(call.fn, (node, extra, *call.args), call.kwargs)
        return node
    return emit(call.fn, (*args, *call.args), call.kwargs)


def _alias_sources(g: Genotype, order: list[str]) -> dict[str, str]:
    """Map every node to the node that really produces its tensor (through identities)."""
    source: dict[str, str] = {}
    for n in order:
        if g.spec(n).passthrough:
            source[n] = source[g.inputs(n)[0]]
        else:
            source[n] = n
    return source


def _installed(root: nn.Module, path: str) -> bool:
    owner = root
    for part in path.split("."):
        owner = owner._modules.get(part) if isinstance(owner, nn.Module) else None
        if owner is None:
            return False
    return True


def _install(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    owner = root
    for part in parents + [leaf]:
        if hasattr(nn.Module, part):
            raise GenotypeError(f"name part {part!r} clashes with an nn.Module attribute; rename "
                                "the node", path)
    for part in parents:
        if part not in owner._modules:
            owner.add_module(part, nn.Module())
        owner = owner._modules[part]
    owner.add_module(leaf, module)


def _class_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
    return cleaned[:1].upper() + cleaned[1:] if cleaned and not cleaned[0].isdigit() else "Net"
