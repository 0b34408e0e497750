"""``python -m nas.sweep``: an unbiased random sample of a design space (a pycls-style sweep).

    python -m nas.sweep --space resnet_like --budget 600MFLOPs --trials 50

Design-space statistics (error EDFs, "which choices matter") describe a space only when
its architectures were drawn from it independently of their results: the method of
Radosavovic et al. (2019, 2020) that the dashboard's EDFs follow. A search with TPE or
NSGA-II concentrates on what scored well, and a search that starts from the classic nets
(seeds) adds fixed points. This command is ``python -m nas.search`` with the random sampler
and without seeds: every trial is a draw from the space's own distribution under the budget
(the space's budget-aware sampler), and the study is named ``<space>-<budget>-sweep``
unless ``--study`` is given. Every other search flag (budget, trials, protocol, storage,
workers...) works as in ``nas.search``.

The study records ``sampler: random`` in its stored settings; dashboards read it and say of
each EDF and effect whether it comes from a random sample (any study searched with
``--sampler random`` counts; its seed trials, if any, are left out of the sample) or from a
biased one.
"""
from __future__ import annotations

import re
import sys
from typing import Sequence

from nas import cli


def sweep_argv(argv: Sequence[str]) -> list[str]:
    """The ``nas.search`` command line of a sweep: ``argv`` plus the random sampler, no
    seeds and a ``-sweep`` study name. Raises SystemExit(2) (one line) when ``argv`` picks
    another sampler."""
    argv = list(argv)
    for i, a in enumerate(argv):
        name, _, value = a.partition("=")
        if name == "--sampler":
            value = value or (argv[i + 1] if i + 1 < len(argv) else "")
            if value != "random":
                sys.stderr.write(f"python -m nas.sweep: error: a sweep samples at random; drop "
                                 f"--sampler {value} (or use python -m nas.search) (see --help)\n")
                raise SystemExit(2)
    out = [a for a in argv if a != "--no-seeds"] + ["--sampler", "random", "--no-seeds"]
    if "-h" in argv or "--help" in argv or any(a.split("=")[0] == "--study" for a in argv):
        return out
    from nas.search import config_from_args
    from nas.spaces import load_space

    c = config_from_args(out)              # usage errors: argparse's one line, exit 2
    budget = re.sub(r"\s+", "", c.budget) if c.budget is not None else "nobudget"
    return out + ["--study", f"{load_space(c.space).name}-{budget}-sweep"]


@cli.guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep; exit codes as ``nas.search``."""
    from nas.search import main as search_main

    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__.strip().split("\n\n")[0] + "\n\nAll flags of python -m nas.search "
              "apply, except --sampler and --no-seeds (fixed: random, no seeds).\n")
    return search_main(sweep_argv(args))


if __name__ == "__main__":
    sys.exit(main())
