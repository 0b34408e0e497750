"""Import every torchvision classification model with nas.importer; report what maps.

    python experiments/import_torchvision.py [-o experiments/results/import_torchvision.md]
        [--outputs-below 30e6] [NAME ...]

For each model (random weights, built on CPU): import at its default input size, compare
params with sum(numel) and MACs with FlopCounterMode / 2 of the ORIGINAL module (eval mode),
and, for models under --outputs-below params, load the weights into the compiled genotype
and compare outputs in eval mode (randomised BN statistics, batch of 2). Models the registry
cannot express are listed with the first refusal (torchvision is not a dependency of nas:
install it to run this).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.errors import GenotypeError
from nas.importer import from_module, load_weights


def shape_of(name: str) -> tuple[int, int, int]:
    if name == "inception_v3":
        return (3, 299, 299)
    return (3, 224, 224)


def one(name: str, outputs_below: float) -> dict:
    import torchvision.models as M

    kw = {"aux_logits": True, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    torch.manual_seed(0)
    model = M.get_model(name, **kw)
    shape = shape_of(name)
    row = {"name": name, "input": "x".join(map(str, shape))}
    t0 = time.perf_counter()
    try:
        g = from_module(model, shape)
    except GenotypeError as e:
        why = str(e).split("; ")[0]
        row.update(status="refused", why=re.sub(r"\S*/(torchvision/)", r"\1", why))
        return row
    row["import_s"] = time.perf_counter() - t0
    cost = nas.count(g)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    row.update(status="imported", nodes=len(g), params=cost.params, params_ok=cost.params == params)
    if params < outputs_below:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        net = nas.compile(g)
        load_weights(net, model.state_dict(), genotype=g)
        net.eval()
        x = torch.randn(2, *shape)
        with torch.no_grad():
            a, b = net(x), model(x)
        row["outputs"] = "identical" if torch.equal(a, b) else f"max diff {float((a - b).abs().max()):.1e}"
    model.to("meta")  # FlopCounterMode needs shapes only
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, *shape, device="meta"))
    row.update(macs=cost.macs, macs_ok=cost.macs == fc.get_total_flops() // 2)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*")
    p.add_argument("-o", "--output", default="experiments/results/import_torchvision.md")
    p.add_argument("--outputs-below", type=float, default=30e6)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    try:
        import torchvision
        import torchvision.models as M
    except ImportError:
        print("error: torchvision is not installed (pip install torchvision)", file=sys.stderr)
        return 2
    names = args.names or sorted(M.list_models(module=M))
    rows = []
    for n in names:
        row = one(n, args.outputs_below)
        print(row, flush=True)
        rows.append(row)
    ok = [r for r in rows if r["status"] == "imported"]
    lines = [f"# Importing torchvision {torchvision.__version__} classification models "
             f"(torch {torch.__version__})", "",
             f"`python {' '.join(sys.argv)}`", "",
             f"{len(ok)} of {len(rows)} import; params == sum(numel): "
             f"{sum(r['params_ok'] for r in ok)}/{len(ok)}; MACs == FlopCounterMode/2: "
             f"{sum(r['macs_ok'] for r in ok)}/{len(ok)}; outputs identical after weight transfer: "
             f"{sum(r.get('outputs') == 'identical' for r in ok)}/"
             f"{sum('outputs' in r for r in ok)} checked (< {args.outputs_below:.0e} params).", "",
             "| model | input | nodes | params | = | MACs | = | outputs | import s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in ok:
        lines.append(f"| {r['name']} | {r['input']} | {r['nodes']} | {r['params']:,} | "
                     f"{'yes' if r['params_ok'] else 'NO'} | {r['macs']:,} | "
                     f"{'yes' if r['macs_ok'] else 'NO'} | {r.get('outputs', '-')} | "
                     f"{r['import_s']:.2f} |")
    lines += ["", "Refused (first refusal; the registry has no op for it):", ""]
    lines += [f"- {r['name']}: {r['why']}" for r in rows if r["status"] == "refused"]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
