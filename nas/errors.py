"""The exceptions nas raises for bad input: one readable message saying what and how to fix."""


class NasError(ValueError):
    """Base class of every user-facing nas error (CLIs turn it into exit code 2)."""


class GenotypeError(NasError):
    """An invalid genotype; ``node`` names the offending node when there is one."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(f"node {node!r}: {message}" if node is not None else message)


class BudgetError(NasError):
    """A budget string that cannot be parsed or is not positive."""


class UnknownNameError(NasError, KeyError):
    """A name missing from a registry; the message lists the closest known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else ""
