"""The zoo's twins in torchvision and timm: reference state-dict keys, and equal outputs.

Not part of nas and not run by the test suite: it needs torchvision and timm, which are not
nas dependencies. Run it in a throwaway environment that has them (any torch works; the
committed file was made with torch 2.14.1, torchvision 0.29.1, timm 1.0.31):

    python -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch torchvision timm networkx
    PYTHONPATH=$PWD /tmp/tvenv/bin/python tests/data/make_zoo_twins.py keys
        -> writes tests/data/zoo_twins.json.gz (gzipped JSON; zcat to read): for every zoo
           entry with twins (ZooEntry.twins), each twin's state-dict keys and shapes, built
           with random weights (no download); and under "extra" the same for networks that
           are builder variants rather than entries (googlenet with aux heads)
    PYTHONPATH=$PWD /tmp/tvenv/bin/python tests/data/make_zoo_twins.py outputs [NAME ...]
        -> for every twin: load its random weights (BN statistics randomised too, so the
           output depends on every layer) into the compiled zoo entry, strictly (timm twins
           listed after a torchvision one through nas.zoo.load_weights(source="timm")), run
           both in eval mode on one random batch and print the largest output difference;
           exit 1 if a load fails or an output differs

tests/test_zoo_twins.py compares every zoo entry's compiled state dict with the JSON.
"""
from __future__ import annotations

import argparse
import ast
import gzip
import json
import sys
import time
from pathlib import Path

import torch

# builder variants that are not zoo entries: label (a nas.zoo call) -> twin
EXTRA = {"inception.googlenet(aux=True, transform=True)":
         "torchvision:googlenet(aux_logits=True, transform_input=True, init_weights=False)"}
OUT = Path(__file__).with_name("zoo_twins.json.gz")


def twin_builder(twin: str):
    """The zero-argument constructor of ``twin`` ("torchvision:NAME(kwargs)" or
    "timm:NAME(kwargs)"), with random weights."""
    library, call = twin.split(":", 1)
    name, _, args = call.partition("(")
    kwargs = {}
    if args:
        tree = ast.parse(f"f({args}", mode="eval").body
        kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
    if library == "torchvision":
        import torchvision

        fn = getattr(torchvision.models, name)
        return lambda: fn(weights=None, **kwargs)
    import timm

    return lambda: timm.create_model(name, pretrained=False, **kwargs)


def entries(names: list[str] | None = None):
    """(entry name, twin) for every twin of every zoo entry (or of ``names``)."""
    from nas.zoo import ZOO

    for n in names or ZOO.names():
        for twin in ZOO.get(n).twins:
            yield ZOO.resolve(n), twin


def cmd_keys() -> None:
    import timm
    import torchvision

    nets: dict[str, dict[str, list]] = {}
    for name, twin in [*entries(), *EXTRA.items()]:
        try:
            with torch.device("meta"):  # no memory, no init time
                model = twin_builder(twin)()
        except NotImplementedError:  # torchvision's RegNets compute their widths on tensors
            model = twin_builder(twin)()
        nets.setdefault(name, {})[twin] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        print(f"{name:28s} {twin:80s} {len(nets[name][twin])} keys", flush=True)
    extra = {label: nets.pop(label) for label in EXTRA}
    lines = [f"  {json.dumps(n)}: {json.dumps(t, separators=(',', ':'))}" for n, t in nets.items()]
    head = {"made_by": "PYTHONPATH=$PWD python tests/data/make_zoo_twins.py keys",
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                         "timm": timm.__version__},
            "format": "nets: zoo entry -> twin -> [[state-dict key, shape], ...] in the twin's "
                      "state-dict order; weights random (no download)"}
    text = "{\n" + "\n".join(f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items())
    text += '\n  "nets": {\n' + ",\n".join("  " + line for line in lines) + "\n  },"
    text += f'\n  "extra": {json.dumps(extra, separators=(",", ":"))}\n}}\n'
    json.loads(text)
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:  # mtime 0: the same input, the same bytes
        f.write(text.encode())
    print(f"wrote {OUT} ({len(nets)} entries, {sum(len(t) for t in nets.values())} twins)")


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere, BN statistics included, scaled to keep activations sane."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def cmd_outputs(names: list[str] | None, max_side: int) -> int:
    from nas.compiler import compile
    from nas.zoo import ZOO, load_weights

    torch.set_num_threads(max(1, torch.get_num_threads()))
    failed = 0
    for name, twin in entries(names):
        e, start = ZOO.get(name), time.time()
        ref = twin_builder(twin)().eval()
        randomise(ref, seed=0)
        ours = compile(e.builder()).eval()
        library = twin.split(":", 1)[0]
        native = e.twins[0] == twin
        try:
            if native:
                ours.load_state_dict(ref.state_dict(), strict=True)
            else:
                load_weights(ours, ref.state_dict(), source=library)
        except Exception as err:  # noqa: BLE001 - report and go on
            print(f"{name:28s} {twin:60s} LOAD FAILED: {str(err).splitlines()[0][:200]}")
            failed += 1
            continue
        c, h, w = e.input_shape
        side = min(h, max_side)
        x = torch.randn(2, c, side, side, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            a, b = ref(x), ours(x)
        a = a if isinstance(a, torch.Tensor) else a[0]
        diff = (a - b).abs().max().item()
        same = torch.equal(a, b)
        failed += not same
        print(f"{name:28s} {twin:60s} {'native' if native else 'mapped'} {c}x{side}x{side} "
              f"max|diff| {diff:.3g} bit-identical {same} max|out| {a.abs().max().item():.3g} "
              f"({time.time() - start:.1f}s)", flush=True)
    return 1 if failed else 0


def cmd_aux_order() -> int:
    """googlenet(aux=True) and inception_v3 in training mode: the same outputs in the same
    order as torchvision's (dropout off so both are deterministic); and, for scale, how far
    the eval outputs of googlenet/inception_v3 built without transform_input are."""
    from nas.compiler import compile
    from nas.zoo import ZOO
    from nas.zoo.inception import googlenet

    cases = [("googlenet(aux=True, transform=True)", googlenet(aux=True, transform=True),
              "torchvision:googlenet(aux_logits=True, transform_input=True, init_weights=False)"),
             ("inception_v3", ZOO.get("inception_v3").builder(),
              ZOO.get("inception_v3").twins[0])]
    failed = 0
    for label, g, twin in cases:
        ref = twin_builder(twin)()
        randomise(ref, seed=0)
        ours = compile(g)
        ours.load_state_dict(ref.state_dict(), strict=True)
        for m in [*ref.modules(), *ours.modules()]:
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        ref.train(), ours.train()
        x = torch.randn(2, *g.input_shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            a, b = tuple(ref(x)), ours(x)
        same = len(a) == len(b) and all(torch.equal(p, q) for p, q in zip(a, b))
        failed += not same
        print(f"{label}: training outputs {len(b)} vs torchvision {len(a)}, in order "
              f"bit-identical {same}; max|diff| per output "
              f"{[f'{(p - q).abs().max().item():.3g}' for p, q in zip(a, b)]}")
    from nas.zoo.inception import inception_v3

    for label, g, twin in [("googlenet", googlenet(), ZOO.get("googlenet").twins[0]),
                           ("inception_v3", inception_v3(transform=False),
                            ZOO.get("inception_v3").twins[0])]:
        ref = twin_builder(twin)().eval()
        randomise(ref, seed=0)
        ours = compile(g).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, *g.input_shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            a, b = ref(x), ours(x)
        print(f"{label} WITHOUT transform_input (the zoo before): max|diff| "
              f"{(a - b).abs().max().item():.3g}, top-1 equal "
              f"{torch.equal(a.argmax(1), b.argmax(1))}")
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("keys", help="write tests/data/zoo_twins.json")
    out = sub.add_parser("outputs", help="load each twin's weights, compare outputs")
    out.add_argument("names", nargs="*")
    out.add_argument("--max-side", type=int, default=299,
                     help="run inputs at most this many pixels a side (the big RegNets at 224 "
                          "take long on a CPU)")
    sub.add_parser("aux-order", help="training-mode outputs of the nets with aux heads")
    args = p.parse_args()
    if args.command == "keys":
        cmd_keys()
        return 0
    if args.command == "aux-order":
        return cmd_aux_order()
    return cmd_outputs(args.names or None, args.max_side)


if __name__ == "__main__":
    sys.exit(main())
