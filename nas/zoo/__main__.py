"""``python -m nas.zoo``: list, show and export the classic networks.

    python -m nas.zoo list [PATTERN]                 table of counts vs published figures
                                                     (PATTERN matches names and timm aliases)
    python -m nas.zoo show NAME [--layers] [--json]  stage (or layer) summary, receptive field
    python -m nas.zoo export NAME --format json|onnx|torchscript -o FILE
    python -m nas.zoo golden -o FILE                 exact counts of every entry (test pins)
    python -m nas.zoo import MODULE:FACTORY [--input-shape 3,224,224] -o FILE
                                                     your nn.Module as a genotype JSON file

show and export take a zoo NAME or a genotype JSON FILE (one that import wrote).

MACs are multiply-accumulates of conv and linear layers (papers' "FLOPs").
"""
from __future__ import annotations

import fnmatch
import json
import sys
import warnings
from pathlib import Path

from nas import cli
from nas.cost import count, human
from nas.errors import NasError
from nas.genotype import Genotype

FORMATS = ("json", "onnx", "torchscript")


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m nas.zoo", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="table of every entry (or those matching PATTERN)")
    ls.add_argument("pattern", nargs="?", default="*",
                    help="shell pattern or substring of names or timm aliases, e.g. 'resnet*', "
                         "regnet or seresnet50")
    show = sub.add_parser("show", help="stage summary with receptive field")
    show.add_argument("name")
    show.add_argument("--layers", action="store_true", help="one line per conv/linear/pool")
    show.add_argument("--json", action="store_true", help="print the genotype as JSON")
    ex = sub.add_parser("export", help="write the genotype or its compiled module")
    ex.add_argument("name")
    ex.add_argument("--format", choices=FORMATS, default="json")
    ex.add_argument("-o", "--output", required=True, help="file to write")
    imp = sub.add_parser("import", help="trace your nn.Module into a genotype JSON file")
    imp.add_argument("factory", metavar="MODULE:FACTORY",
                     help="e.g. torchvision.models:resnet18 or mynet:build (no-argument callable)")
    imp.add_argument("--input-shape", default="3,224,224",
                     help="per-sample input C,H,W (or F), default 3,224,224")
    imp.add_argument("-o", "--output", required=True, help="genotype JSON file to write")
    gold = sub.add_parser("golden", help="exact params/MACs of every entry as JSON")
    gold.add_argument("-o", "--output", help="file to write (default: stdout)")
    return p


def _size(v: int | None) -> str:
    return "-" if v is None else human(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_list(pattern: str) -> str:
    """The list table for entries whose name matches ``pattern``."""
    from nas.zoo import ZOO
    from nas.zoo.compare import compare

    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"

    def hit(name: str) -> bool:
        return fnmatch.fnmatchcase(name.lower(), glob.lower())

    aliases = ZOO.aliases()
    via_alias = {ZOO.resolve(a): a for a in aliases if hit(a)}
    names = [n for n in ZOO.names() if hit(n) or n in via_alias]
    if not names:
        raise NasError(f"no zoo entry matches {pattern!r}; run 'python -m nas.zoo list' to see "
                       f"all {len(ZOO)} names")
    rows = []
    for n in names:
        c = compare(n)
        e = c.entry
        label = n if hit(n) else f"{n} (= {via_alias[n]})"
        rows.append([label, "x".join(map(str, e.input_shape)), f"{c.cost.params:,}",
                     _size(c.cost.macs), _size(e.published_params), _size(e.published_macs),
                     c.difference(), c.status, e.definition, e.source])
    header = ["name", "input", "params", "MACs", "pub. params", "pub. MACs", "difference",
              "status", "same network as (keys)", "source"]
    return _table(header, rows) + (
        f"\n{len(rows)} entries; MACs = conv/linear multiply-accumulates; 'same network as': "
        "the torchvision/timm builders whose checkpoints load (the first one's state-dict "
        "names; a timm one after it through nas.zoo.load_weights); timm's names are aliases")


def _rf(size, jump) -> list[str]:
    if size is None:
        return ["global", "-"]
    return ["x".join(map(str, size)) if size[0] != size[1] else str(size[0]),
            "x".join(map(str, jump)) if jump[0] != jump[1] else str(jump[0])]


def _is_file(name: str) -> bool:
    """Whether ``name`` means a genotype file (zoo names have no '/' and no '.json'; a zoo
    name wins over a file of that name in the current directory)."""
    if name.endswith(".json") or "/" in name:
        return True
    from nas.zoo import ZOO

    return name not in ZOO and Path(name).exists()


def _genotype(name: str) -> Genotype:
    """Zoo entry ``name``, or the genotype in JSON file ``name``."""
    if _is_file(name):
        from nas.importer import read_genotype

        return read_genotype(name)
    from nas.zoo import build

    return build(name)


def cmd_import(factory: str, input_shape: str, output: str) -> str:
    """Trace ``MODULE:FACTORY`` and write its genotype JSON to ``output``."""
    from nas.importer import from_module, input_shape_of, load_factory

    shape = input_shape_of(input_shape)
    path = Path(output)
    if not path.parent.is_dir():
        raise NasError(f"cannot write {output!r}: directory {str(path.parent)!r} does not exist")
    g = from_module(load_factory(factory), shape, name=factory)
    path.write_text(g.to_json(indent=1))
    c = count(g)
    return (f"wrote {g.name} ({len(g)} nodes; {c.params:,} params, {_size(c.macs)}MACs at "
            f"{'x'.join(map(str, g.input_shape))}) to {path}")


def cmd_show(name: str, layer_rows: bool) -> str:
    """The stage (or layer) summary of zoo entry ``name`` (or genotype JSON file ``name``)."""
    from nas.zoo.compare import compare
    from nas.zoo import ZOO

    if _is_file(name):
        g = _genotype(name)
        c = count(g)
        head = [f"{name}: {g.name or 'genotype'}" + (f" | {g.meta['imported_from']}"
                                                    if g.meta.get("imported_from") else ""),
                f"input {'x'.join(map(str, g.input_shape))}; {c.params:,} params "
                f"({_size(c.params)}), {_size(c.macs)}MACs"]
        return _summary(g, head, layer_rows)
    e = ZOO.get(name)
    if e.name != name:
        name = f"{e.name} (= {name}, timm's name)"
    g = e.builder()
    c = compare(e.name, g)
    head = [f"{name}: {e.family} | {e.source}",
            f"input {'x'.join(map(str, e.input_shape))}, {e.num_classes} classes; "
            f"{c.cost.params:,} params ({_size(c.cost.params)}), {_size(c.cost.macs)}MACs; "
            f"published {_size(e.published_params)} params, {_size(e.published_macs)} MACs "
            f"[{c.status}{'' if c.difference() in ('=', '-') else ': ' + c.difference()}]"]
    if e.twins:
        head.append(f"same network as: {e.definition} (checkpoints load; see nas.zoo.weights)")
    if e.note:
        head.append(f"note: {e.note}")
    return _summary(g, head, layer_rows)


def _summary(g: Genotype, head: list[str], layer_rows: bool) -> str:
    from nas.zoo.summary import layers, stages

    rows = layers(g) if layer_rows else stages(g)
    table = [[r.name, r.detail, "x".join(map(str, r.shape)), f"{r.params:,}", _size(r.macs),
              *_rf(r.rf, r.jump)] for r in rows]
    header = ["layer" if layer_rows else "stage", "op" if layer_rows else "nodes", "output",
              "params", "MACs", "RF", "jump"]
    return "\n".join(head) + "\n\n" + _table(header, table) + (
        "\nRF: receptive field in input pixels at the " + ("layer" if layer_rows else "stage's last node")
        + "; jump: distance between neighbouring outputs in input pixels"
        + ("" if layer_rows else "; output: widest channels x resolution"))


def _inference(g: Genotype) -> Genotype:
    """``g`` without auxiliary heads (what runs at inference), for export."""
    if not g.aux_outputs:
        return g
    data = g.to_dict()
    keep = g.main_path()
    data["nodes"] = [nd for nd in data["nodes"] if nd["id"] in keep]
    data["aux_outputs"] = []
    data["classifiers"] = [c for c in data["classifiers"] if c in keep]
    return Genotype.from_dict(data).validate()


def cmd_export(name: str, fmt: str, output: str) -> str:
    """Write zoo entry (or genotype file) ``name`` as genotype JSON, ONNX or TorchScript."""
    g = _genotype(name)
    path = Path(output)
    if not path.parent.is_dir():
        raise NasError(f"cannot write {output!r}: directory {str(path.parent)!r} does not exist; "
                       "create it or pick another path")
    if fmt == "json":
        path.write_text(g.to_json(indent=1))
        return f"wrote {name} genotype JSON to {path}"
    import torch

    from nas.compiler import compile

    module = compile(_inference(g)).eval()
    x = torch.zeros(1, *g.input_shape)
    with warnings.catch_warnings():  # torch's notices about its legacy exporters
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        if fmt == "torchscript":
            torch.jit.script(module).save(str(path))
        else:
            torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"])
    return f"wrote {name} ({fmt}, inference graph) to {path}"


def golden() -> dict:
    """Exact params and MACs of every zoo entry, by name."""
    from nas.zoo import ZOO

    out = {}
    for n in sorted(ZOO.names()):
        c = count(ZOO.get(n).builder())
        out[n] = {"params": c.params, "macs": c.macs}
    return out


@cli.guarded
def main(argv: list[str] | None = None) -> int:
    """Run the zoo CLI; returns the exit status (2 for bad input, one line on stderr)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            print(cmd_list(args.pattern))
        elif args.command == "show" and args.json:
            print(_genotype(args.name).to_json(indent=1))
        elif args.command == "show":
            print(cmd_show(args.name, args.layers))
        elif args.command == "export":
            print(cmd_export(args.name, args.format, args.output))
        elif args.command == "import":
            print(cmd_import(args.factory, args.input_shape, args.output))
        else:
            text = json.dumps(golden(), indent=1, sort_keys=True) + "\n"
            if args.output:
                Path(args.output).write_text(text)
            else:
                sys.stdout.write(text)
    except BrokenPipeError:  # the reader (e.g. `head`) stopped early: not an error
        sys.stdout = None  # type: ignore[assignment]  # no flush of the closed pipe at exit
    except OSError as e:
        return cli.fail(f"cannot write output: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
