"""Declarative search spaces: ``search_spaces/*.yaml`` loaded into :class:`SearchSpace`.

    from nas.spaces import load_space
    space = load_space("resnet_like")
    params = space.sample(random.Random(0), budget_macs=parse_budget("2GFLOPs"))
    genotype = space.build(params)
    space.seeds(budget_macs)          # the classic nets that are points of the space

CLI: ``python -m nas.spaces list | show NAME [--budget 2GFLOPs]``.
"""
from nas.spaces.params import Param, SpaceError
from nas.spaces.loader import list_spaces, load_space, space_from_dict
from nas.spaces.space import Seed, SearchSpace, fits, violations

__all__ = ["Param", "Seed", "SearchSpace", "SpaceError", "fits", "list_spaces", "load_space", "space_from_dict",
           "violations"]
