"""Loading search spaces from YAML: every key checked, errors naming the file and the key.

A space file holds: ``name``, ``description``, ``target`` (input_shape, num_classes),
``builder`` (a registered space builder), ``fixed`` (constant builder arguments),
``parameters`` (name -> type and range or choices, optional ``when`` condition),
``sampling`` (``stages`` and ``shrink``, see :meth:`SearchSpace.sample`) and ``seeds``
(classic nets as points: name, params, optional zoo entry). Only ``yaml.safe_load`` reads it.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from nas.errors import GenotypeError
from nas.spaces.params import Param, SpaceError, check_conditions, parse_param
from nas.spaces.space import SearchSpace

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
TOP_KEYS = ("name", "description", "target", "builder", "fixed", "parameters", "sampling", "seeds")
DEFAULT_TARGET = {"input_shape": (3, 224, 224), "num_classes": 1000}


def list_spaces(directory: Path | None = None) -> list[str]:
    """Names of the spaces shipped in ``search_spaces/``."""
    return sorted(p.stem for p in (directory or SPACES_DIR).glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a space by name (``search_spaces/<name>.yaml``) or from a YAML path; a bad file
    raises :class:`SpaceError` naming the file and the key."""
    path = _resolve(name_or_path)
    return space_from_dict(read_yaml(path), path)


#: Largest genotype JSON a seed may name (the largest zoo nets take well under 1 MB).
MAX_GENOTYPE_BYTES = 64 << 20
#: Largest space file read (shipped ones are 2-5 KB).
MAX_FILE_BYTES = 1 << 20
#: Deepest nesting of YAML collections (a space file needs 4: parameters.x.when.y).
MAX_DEPTH = 32
#: Most YAML nodes the document may hold once aliases are expanded: a "billion laughs" file
#: of 3 KB expands to 10^9 nodes through nested aliases; legitimate files hold a few hundred.
MAX_NODES = 100_000


def read_yaml(path: Path) -> Any:
    """The parsed content of the YAML file ``path``, read with ``yaml.safe_load`` semantics
    after checking size, encoding (UTF-8 text), nesting depth and alias expansion, so that no
    file can exhaust time or memory; any problem is a one-line :class:`SpaceError`."""
    import yaml

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise SpaceError(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpaceError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KB; a space file is a few "
                         "KB of YAML (is this the right file?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpaceError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                         f"{e.start}); a space file is a YAML text file") from None
    if "\x00" in text:
        raise SpaceError(f"{path}: binary data (a NUL byte at offset {text.index(chr(0))}); a "
                         "space file is a YAML text file")
    try:
        _check_events(yaml.parse(text, Loader=yaml.SafeLoader), path)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            _check_expansion(node, path)
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpaceError(f"{path}: YAML syntax error{at}: {problem}; fix the file") from None


def _check_events(events, path: Path) -> None:
    """Refuse nesting deeper than MAX_DEPTH (checked on the event stream, before anything
    recursive runs)."""
    import yaml

    depth = 0
    for event in events:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise SpaceError(f"{path}: YAML nested deeper than {MAX_DEPTH} levels (line "
                                 f"{line}); a space file needs a handful")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _check_expansion(root, path: Path) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES nodes, that refers to
    itself (a recursive anchor) or that repeats a key in a mapping (YAML keeps the last one
    silently); counted on the composed graph, where aliases are shared."""
    import yaml

    if root is None:
        return
    size: dict[int, int] = {}
    stack: list[tuple[object, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            children = _children(node, yaml)
            size[key] = min(MAX_NODES + 1, 1 + sum(size[id(c)] for c in children))
            if size[key] > MAX_NODES:
                raise SpaceError(f"{path}: YAML aliases expand to more than {MAX_NODES:,} "
                                 "nodes (an alias bomb?); write the values out instead")
            continue
        if key in size:
            continue
        if key in open_:
            raise SpaceError(f"{path}: a YAML anchor refers to itself (recursive alias, line "
                             f"{node.start_mark.line + 1}); write the values out instead")
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise SpaceError(f"{path}: key {k.value!r} appears twice in one mapping "
                                         f"(line {k.start_mark.line + 1}); YAML would keep only "
                                         "the last one, so remove one")
                    seen.add(k.value)
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node, yaml) if id(c) not in size)


def _children(node, yaml) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise SpaceError(f"{path}: no such space file; give an existing .yaml path or one of "
                             f"{', '.join(list_spaces())}")
        return path
    path = SPACES_DIR / f"{text}.yaml"
    if not path.is_file():
        from nas.registry import closest

        near = closest(text, list_spaces())
        hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(list_spaces())}"
        raise SpaceError(f"unknown search space {text!r}; {hint} (or give a path to a .yaml file)")
    return path


def space_from_dict(data: Any, path: Path | None = None) -> SearchSpace:
    """Build and check a :class:`SearchSpace` from parsed YAML (``path`` names it in errors)."""
    where = str(path) if path else "<space>"

    def fail(key: str, msg: str) -> SpaceError:
        return SpaceError(f"{where}: {key}: {msg}")

    if not isinstance(data, dict):
        raise SpaceError(f"{where}: a space file is a YAML mapping with keys {', '.join(TOP_KEYS)}")
    extra = sorted(set(data) - set(TOP_KEYS))
    if extra:
        raise fail(extra[0], f"unknown top-level key; allowed: {', '.join(TOP_KEYS)}")
    name = data.get("name", path.stem if path else None)
    if not isinstance(name, str) or not name:
        raise fail("name", "must be a non-empty string")
    input_shape, num_classes = _parse_target(data.get("target", {}), fail)
    builder_name, fn = _parse_builder(data.get("builder"), fail)
    params = _parse_params(data.get("parameters"), where)
    fixed = data.get("fixed", {}) or {}
    if not isinstance(fixed, dict):
        raise fail("fixed", "must map builder arguments to constant values")
    _check_signature(fn, builder_name, params, fixed, fail)
    _check_domains(builder_name, params, fixed, fail)
    check_conditions(params, where)
    stages, shrink = _parse_sampling(data.get("sampling", {}), params, fail)
    space = SearchSpace(name, path, builder_name, params, input_shape=input_shape,
                        num_classes=num_classes, fixed=fixed, stages=stages, shrink=shrink,
                        description=str(data.get("description", "")).strip())
    space._seed_points = _parse_seeds(data.get("seeds", []), space, fail)
    return space


def _parse_target(target: Any, fail) -> tuple[tuple, int]:
    if not isinstance(target, dict) or set(target) - set(DEFAULT_TARGET):
        raise fail("target", "must be a mapping with input_shape: [C, H, W] and num_classes: N")
    shape = target.get("input_shape", DEFAULT_TARGET["input_shape"])
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)):
        raise fail("target.input_shape", f"must be [C, H, W] of positive ints, got {shape!r}")
    classes = target.get("num_classes", DEFAULT_TARGET["num_classes"])
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise fail("target.num_classes", f"must be a positive int, got {classes!r}")
    return tuple(shape), classes


def _parse_builder(name: Any, fail) -> tuple[str, Callable]:
    from nas.spaces.builders import BUILDERS

    if not isinstance(name, str):
        raise fail("builder", f"must name a registered builder: {', '.join(BUILDERS.names())}")
    if name not in BUILDERS:
        raise fail("builder", BUILDERS.miss_message(name))
    return name, BUILDERS.get(name)


def _parse_params(spec: Any, where: str) -> list[Param]:
    if not isinstance(spec, dict) or not spec:
        raise SpaceError(f"{where}: parameters: must be a non-empty mapping name -> "
                         "{type, range or choices}")
    params: list[Param] = []
    for name, p in spec.items():
        params.append(parse_param(str(name), p, f"{where}: parameters.{name}", [q.name for q in params]))
    return params


def _check_signature(fn: Callable, builder: str, params: list[Param], fixed: dict, fail) -> None:
    sig = inspect.signature(fn)
    takes = {n for n, p in sig.parameters.items()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"input_shape", "num_classes"}
    for key, names in (("parameters", [p.name for p in params]), ("fixed", list(fixed))):
        for n in names:
            if n not in takes:
                raise fail(f"{key}.{n}", f"builder {builder!r} does not take {n!r}; it takes "
                                         f"{', '.join(sorted(takes))}")
    both = sorted({p.name for p in params} & set(fixed))
    if both:
        raise fail(f"fixed.{both[0]}", "is both a parameter and fixed; keep one")
    given = {p.name for p in params} | set(fixed)
    for n, p in sig.parameters.items():
        if p.default is inspect.Parameter.empty and n not in given | {"input_shape", "num_classes"}:
            raise fail("parameters", f"builder {builder!r} needs {n!r}; declare it as a "
                                     "parameter or under fixed")


def _check_domains(builder: str, params: list[Param], fixed: dict, fail) -> None:
    """Every value a parameter can take, and every fixed value, must be one the builder accepts."""
    from nas.spaces.builders import DOMAINS

    domains = DOMAINS.get(builder, {})
    for p in params:
        domain = domains.get(p.name)
        if domain is None:
            continue
        values = p.values()   # at most VALUES_MAX (params.py)
        if values is None:   # continuous: check the ends (domains are intervals or sets)
            if domain.choices:
                raise fail(f"parameters.{p.name}", f"builder {builder!r} takes {domain.describe()}"
                                                   f" for {p.name!r}, not a continuous range")
            values = (p.low, p.high)
        for v in values:
            if not domain.accepts(v):
                raise fail(f"parameters.{p.name}", f"{v!r} is not accepted by builder "
                                                   f"{builder!r}: {p.name} must be {domain.describe()}")
    for name, v in fixed.items():
        if name in domains and not domains[name].accepts(v):
            raise fail(f"fixed.{name}", f"{v!r} is not accepted by builder {builder!r}: {name} "
                                        f"must be {domains[name].describe()}")


def _parse_sampling(sampling: Any, params: list[Param], fail) -> tuple[list[list[str]], list[str]]:
    if not isinstance(sampling, dict) or set(sampling) - {"stages", "shrink"}:
        raise fail("sampling", "must be a mapping with 'stages' (a list of lists of parameter "
                               "names) and/or 'shrink' (a list of numeric parameter names)")
    by_name = {p.name: p for p in params}
    stages, shrink = sampling.get("stages", []), sampling.get("shrink", [])
    if not isinstance(stages, list) or not all(isinstance(s, list) for s in stages):
        raise fail("sampling.stages", "must be a list of lists of parameter names")
    if not isinstance(shrink, list):
        raise fail("sampling.shrink", "must be a list of parameter names")
    seen: list[str] = []
    for key, names in [(f"sampling.stages[{i}]", s) for i, s in enumerate(stages)] + [("sampling.shrink", shrink)]:
        for n in names:
            if n not in by_name:
                raise fail(key, f"unknown parameter {n!r}")
            if n in seen:
                raise fail(key, f"parameter {n!r} is listed twice")
            seen.append(n)
    for n in shrink:
        if by_name[n].kind not in ("int", "float") and any(
                isinstance(v, (bool, str)) for v in by_name[n].values()):
            raise fail("sampling.shrink", f"parameter {n!r} must be numeric to shrink")
    return [list(s) for s in stages], list(shrink)


def _parse_seeds(seeds: Any, space: SearchSpace, fail) -> list[dict]:
    if not isinstance(seeds, list):
        raise fail("seeds", "must be a list of {name, params, zoo (optional)}")
    out = []
    for i, s in enumerate(seeds):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("params"), dict):
            raise fail(f"seeds[{i}]", "must be a mapping with name: str and params: {...}")
        extra = sorted(set(s) - {"name", "params", "zoo", "genotype"})
        if extra:
            raise fail(f"seeds.{s['name']}.{extra[0]}",
                       "unknown key; allowed: name, params, zoo, genotype")
        where = f"{space.path or '<space>'}: seeds.{s['name']}.params"
        params = space.check(s["params"], where)
        try:
            space.cost(params)
        except GenotypeError as e:
            raise fail(f"seeds.{s['name']}", f"does not build: {e}") from None
        if "genotype" in s:
            _check_genotype_seed(s, space, params, fail)
        out.append({"name": s["name"], "params": params, **({"zoo": s["zoo"]} if s.get("zoo") else {}),
                    **({"genotype": s["genotype"]} if "genotype" in s else {})})
    return out


def _check_genotype_seed(seed: dict, space: SearchSpace, params: dict, fail) -> None:
    """``genotype: FILE`` (a genotype JSON, e.g. written by ``python -m nas.zoo import``): the
    seed's params must build that architecture exactly (relative paths: from the space file)."""
    from nas.importer import architecture_hash, read_genotype

    key = f"seeds.{seed['name']}.genotype"
    if not isinstance(seed["genotype"], str) or not seed["genotype"]:
        raise fail(key, "must be the path of a genotype JSON file")
    path = Path(seed["genotype"])
    if not path.is_absolute() and space.path is not None:
        path = Path(space.path).parent / path
    if not path.is_file():   # not a FIFO or a device such as /dev/zero: those never end
        raise fail(key, f"{path} is not a file; give the path of a genotype JSON file")
    if path.stat().st_size > MAX_GENOTYPE_BYTES:
        raise fail(key, f"{path} is larger than {MAX_GENOTYPE_BYTES >> 20} MB; a genotype JSON "
                        "is at most a few MB")
    try:
        wanted = read_genotype(path)
    except GenotypeError as e:
        raise fail(key, str(e)) from None
    built = space.build(params)
    if wanted.input_shape != built.input_shape:
        raise fail(key, f"{path} takes input {list(wanted.input_shape)} but the space targets "
                        f"{list(built.input_shape)}; import it with --input-shape "
                        f"{','.join(map(str, built.input_shape))}")
    if architecture_hash(wanted) != architecture_hash(built):
        from nas.cost import count

        raise fail(key, f"params build another architecture than {path} ({count(built)} vs "
                        f"{count(wanted)}); give the params of the point that is this network")
