"""``python -m nas.export``: write a stored trial's genotype as JSON (and ONNX on request).

    python -m nas.export --storage nas.db --best          # the store's only study
    python -m nas.export --storage nas.db --study NAME --trial 7 --onnx
    python -m nas.export --storage nas.db --study NAME --best --onnx --weights trained.pt

A search stores architectures, not trained weights: without ``--weights`` (a state dict of
the compiled target-spec model) the ONNX model has freshly initialised weights, and the
command says so.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Sequence

from nas import cli
from nas.errors import NasError
from nas.genotype import Genotype


class ExportError(NasError):
    """A trial that cannot be exported (missing, never built, nothing completed)."""


def best_trial(trials: list[dict], metric: str | None = None) -> dict:
    """The best usable trial under ``metric`` (:mod:`nas.quality`: accuracy, val_loss or a
    proxy score; default: the one the trials carry) among those with a genotype; ties go to
    fewer MACs, then the earlier trial."""
    from nas import quality

    m = quality.metric(metric) if metric else quality.study_metric(None, trials)
    best = quality.best([t for t in trials if t.get("genotype")], m)
    if best is None:
        raise ExportError("the study has no completed trial to export yet; run the search "
                          "longer or pass --trial N")
    return best


def select_trial(storage: str, study: str | None, number: int | None) -> dict:
    """Trial ``number`` of ``study`` (the best one when None) from the store at ``storage``;
    ``study`` None picks the store's only study (several: an error listing them). The trial
    dict carries the study's name as ``study``."""
    from nas.store import TrialStore

    store = TrialStore(storage, readonly=True)
    try:
        if study is None:
            names = [s["name"] for s in store.studies()]
            if len(names) != 1:
                raise ExportError(f"{store.display_url} holds {len(names)} studies; pass --study "
                                  f"with one of: {', '.join(names)}" if names else
                                  f"{store.display_url} holds no study; run a search first")
            study = names[0]
        if store.study(study) is None:
            names = [s["name"] for s in store.studies()]
            raise ExportError(f"no study {study!r} in {store.display_url}; known: {', '.join(names) or 'none'}")
        trials = store.trials(study)
        from nas.quality import study_metric

        metric = study_metric(store.study(study), trials)
    finally:
        store.close()
    if number is None:
        return {**best_trial(trials, metric.name), "study": study}
    for t in trials:
        if t["number"] == number:
            if not t.get("genotype"):
                raise ExportError(f"trial {number} of {study!r} has no genotype (it failed before "
                                  f"its architecture was built: {(t.get('error') or '').splitlines()[0]})")
            return {**t, "study": study}
    known = [t["number"] for t in trials]
    raise ExportError(f"study {study!r} has no trial {number}; trials are "
                      f"{min(known)}..{max(known)}" if known else f"study {study!r} has no trials")


def write_onnx(genotype: Genotype, path: Path, weights: str | None = None) -> Path:
    """Export ``genotype`` at its own input spec to an ONNX file (batch size 1), with the
    state dict at ``weights`` loaded (default: freshly initialised weights)."""
    import torch

    from nas.compiler import compile as compile_genotype

    model = compile_genotype(genotype).eval()
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except Exception as e:  # noqa: BLE001 - unpickling a user file fails in many ways
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ExportError(f"cannot load --weights {weights!r} into the architecture: "
                              f"{reason[:300]}; pass a state dict of the compiled model "
                              "(nas.compiler.compile(genotype).state_dict())") from None
    x = torch.zeros(1, *genotype.input_shape)
    with warnings.catch_warnings():  # torch's notices that this exporter is the legacy one
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"},
                                                                 "logits": {0: "batch"}})
    return path


def export(storage: str, study: str | None, *, number: int | None = None, out: str | None = None,
           onnx: bool = False, weights: str | None = None) -> list[Path]:
    """Write the genotype JSON of a trial (and its ONNX model, with ``weights`` if given);
    returns the written paths. ``study`` None: the store's only study."""
    t = select_trial(storage, study, number)
    study = t.get("study") or study
    genotype = Genotype.from_json(t["genotype"])
    path = Path(out) if out else Path(f"{_safe(study)}-trial{t['number']}.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(genotype.to_json(indent=1) + "\n", encoding="utf-8")
        paths = [path]
        if onnx:
            paths.append(write_onnx(genotype, path.with_suffix(".onnx"), weights))
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror}; pass --out with a writable path") from None
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in name)


@cli.guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; 0 on success, 2 on bad input."""
    p = cli.ArgumentParser(prog="python -m nas.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", required=True, help="SQLAlchemy URL or SQLite file of a search")
    p.add_argument("--study", help="study name (default: the store's only study)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=cli.nonnegative_int, help="trial number")
    which.add_argument("--best", action="store_true", help="the most accurate completed trial")
    p.add_argument("--out", help="JSON path (default <study>-trial<N>.json); ONNX goes beside it")
    p.add_argument("--onnx", action="store_true", help="also write an ONNX model (target spec)")
    p.add_argument("--weights", help="state dict (.pt) of the compiled model to put in the ONNX "
                                     "file (default: untrained, freshly initialised weights)")
    a = p.parse_args(argv)
    if a.weights and not a.onnx:
        p.error("--weights goes into the ONNX model: add --onnx")
    paths = export(a.storage, a.study, number=None if a.best else a.trial, out=a.out, onnx=a.onnx,
                   weights=a.weights)
    for path in paths:
        print(path)
    if a.onnx and not a.weights:
        print(f"note: {paths[-1]} holds UNTRAINED weights (fresh initialisation): a search "
              "stores architectures, not weights; train the net and pass --weights to export "
              "trained ones", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
