"""Load a torchvision or timm checkpoint into a compiled zoo network.

Every zoo entry with a twin (``ZooEntry.twins``) compiles to its first twin's state-dict
names and shapes, so its checkpoints load as they are (``model.load_state_dict(sd)``). A
timm twin listed after a torchvision one (``mobilenet_v2`` and timm's ``mobilenetv2_100``)
has other names for the same tensors; :func:`load_weights` renames them by the rules below
(one rule set per timm layout; tested key by key against the committed reference lists in
``tests/data/``) and loads strictly.

    from nas import compile, zoo
    from nas.zoo import load_weights
    model = compile(zoo.build("mobilenet_v2"))
    load_weights(model, timm_state_dict, source="timm")
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from nas.errors import NasError

SOURCES = ("torchvision", "timm")


def _timm_mobilenetv2(keys: list[str]) -> dict[str, str]:
    """timm's EfficientNet-builder MobileNetV2 (``mobilenetv2_100``) -> torchvision's names.

    ``conv_stem``/``bn1`` -> ``features.0.{0,1}``; block j of stage s -> ``features.i`` (i
    counts blocks from 1); its ``conv_dw, bn1, conv_pw, bn2`` (the t=1 block) ->
    ``conv.0.0, conv.0.1, conv.1, conv.2``; ``conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3``
    -> ``conv.0.0, conv.0.1, conv.1.0, conv.1.1, conv.2, conv.3``; ``conv_head``/``bn2``
    -> ``features.N.{0,1}``; ``classifier`` -> ``classifier.1``.
    """
    blocks = sorted({tuple(map(int, m.groups())) for k in keys
                     if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))})
    index = {sj: i for i, sj in enumerate(blocks, 1)}
    inverted = {sj for sj in blocks if f"blocks.{sj[0]}.{sj[1]}.conv_pwl.weight" in keys}
    last = len(blocks) + 1
    ds = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}
    ir = {"conv_pw": "conv.0.0", "bn1": "conv.0.1", "conv_dw": "conv.1.0", "bn2": "conv.1.1",
          "conv_pwl": "conv.2", "bn3": "conv.3"}
    top = {"conv_stem": "features.0.0", "bn1": "features.0.1", "conv_head": f"features.{last}.0",
           "bn2": f"features.{last}.1", "classifier": "classifier.1"}
    out = {}
    for k in keys:
        m = re.match(r"blocks\.(\d+)\.(\d+)\.([a-z_0-9]+)\.(.+)$", k)
        if m:
            sj = (int(m.group(1)), int(m.group(2)))
            table = ir if sj in inverted else ds
            if m.group(3) in table:
                out[k] = f"features.{index[sj]}.{table[m.group(3)]}.{m.group(4)}"
            continue
        module, _, tensor = k.partition(".")
        if module in top:
            out[k] = f"{top[module]}.{tensor}"
    return out


# timm layouts whose names differ from the zoo entry's: how to recognise one, how to rename
TIMM_LAYOUTS = (("mobilenetv2", lambda keys: "conv_stem.weight" in keys
                 and any(k.endswith("conv_pwl.weight") for k in keys), _timm_mobilenetv2),)


def rename(keys: list[str], source: str) -> dict[str, str]:
    """{checkpoint key: zoo key} for a ``source`` checkpoint with ``keys``; the identity when
    no rule set applies (the entry already has that source's names)."""
    if source not in SOURCES:
        raise NasError(f"unknown weights source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "timm":
        for _, applies, rules in TIMM_LAYOUTS:
            if applies(keys):
                return rules(keys)
    return {k: k for k in keys}


def load_weights(model, state_dict: Mapping, source: str = "torchvision", *,
                 strict: bool = True):
    """Load a ``source`` ("torchvision" or "timm") checkpoint of a zoo network into its
    compiled ``model``, renaming timm's keys where the entry has torchvision's names.

    Every tensor must find its place and every place a tensor (``strict``), with equal
    shapes; otherwise a :class:`~nas.errors.NasError` says which keys are at fault.
    Returns ``model``.
    """
    keys = list(state_dict)
    names = rename(keys, source)
    unmapped = [k for k in keys if k not in names]
    ours = model.state_dict()
    mapped = {names[k]: state_dict[k] for k in keys if k in names}
    missing = [k for k in ours if k not in mapped]
    unexpected = [k for k in mapped if k not in ours] + unmapped
    wrong = [f"{k} {tuple(mapped[k].shape)} vs {tuple(ours[k].shape)}" for k in mapped
             if k in ours and tuple(mapped[k].shape) != tuple(ours[k].shape)]
    if wrong or (strict and (missing or unexpected)):
        parts = [f"{label} ({len(items)}): {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in (("shapes differ", wrong), ("missing", missing),
                                      ("unexpected", unexpected)) if items]
        raise NasError(f"the {source} checkpoint does not fit this network: " + "; ".join(parts)
                       + "; is it the checkpoint of this zoo entry (python -m nas.zoo list "
                       "shows each entry's twins)?")
    model.load_state_dict(mapped, strict=strict)
    return model
