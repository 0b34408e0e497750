"""nas: neural architecture search and design-space exploration.

Importing ``nas`` is cheap: torch, ray, optuna and plotly load only where they are used.
The core API:

    from nas import Genotype, count, compile, parse_budget
"""
import sys

if sys.argv[:1] == ["-m"]:  # `python -m nas.<command>` is importing its package
    def _interrupted(kind, value, tb, _default=sys.excepthook):
        """Ctrl-C before the command's own handler is set (while it imports): one line. (It
        may arrive wrapped, e.g. in the RuntimeError of a class's ``__set_name__``.)"""
        e, seen = value, set()
        while e is not None and id(e) not in seen:
            if isinstance(e, KeyboardInterrupt):
                print("interrupted", file=sys.stderr, flush=True)
                import os

                os._exit(130)  # as the commands exit when interrupted later
            seen.add(id(e))
            e = e.__cause__ or e.__context__
        _default(kind, value, tb)
    sys.excepthook = _interrupted

from nas.cost import Cost, count, parse_budget  # noqa: E402 - after the hook
from nas.errors import BudgetError, GenotypeError, NasError
from nas.genotype import Genotype

__all__ = ["Cost", "Genotype", "GenotypeError", "BudgetError", "NasError", "compile", "count",
           "parse_budget"]
__version__ = "0.1.0"


def compile(genotype, *, in_channels=None, num_classes=None):  # noqa: A001 - the product's verb
    """Compile a genotype into a torch module (see :func:`nas.compiler.compile`)."""
    from nas.compiler import compile as _compile

    return _compile(genotype, in_channels=in_channels, num_classes=num_classes)
