"""What every ``python -m nas.*`` command line shares: one-line errors and checked flag values.

Every bad input ends the same way: ONE line on stderr and exit status 2, never a traceback.

* :class:`ArgumentParser` prints argparse's usage errors as
  ``<prog>: error: <what> (see --help)`` instead of the multi-line usage block.
* :func:`guarded` wraps a ``main(argv) -> int``: a :class:`~nas.errors.NasError` raised inside
  becomes ``error: <message>`` (one line) and status 2; argparse's exits become return values,
  so ``main([...])`` can be called in-process.
* The ``type=`` validators below refuse a bad flag value before anything runs, with the allowed
  range in the message.
"""
from __future__ import annotations

import argparse
import functools
import math
import re
import sys
from typing import Callable, Sequence

from nas.errors import NasError

#: Seeds go to Optuna's samplers and NumPy's RandomState, which take 0 .. 2**32-1.
SEED_MAX = 2**32 - 1
#: Largest proxy resolution (pixels per side). The proxy dataset is held in memory as float32
#: (images x channels x R^2 x 4 bytes): at 512 px the default 2,000 RGB images already take
#: 6.3 GB, and one 64-channel feature map of a batch of 32 takes 2.1 GB. The largest published
#: ImageNet evaluation sizes are ~600 px; a proxy exists to be smaller than the target.
RESOLUTION_MAX = 512
#: Smallest resolution the datasets accept (nas.evaluate.data).
RESOLUTION_MIN = 4
#: Upper bound of process/thread counts: far above any machine, low enough not to fork-bomb it.
COUNT_MAX = 1024
#: Longest error line printed (a message quoting a huge input is cut, not dumped).
LINE_MAX = 2000


def one_line(text: str, limit: int = LINE_MAX) -> str:
    """``text`` on one line (line breaks become spaces), cut to ``limit`` characters."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def fail(error: BaseException | str) -> int:
    """Print ``error: <message>`` as one line on stderr; returns the exit status 2."""
    text = str(error) if str(error) else type(error).__name__
    print(f"error: {one_line(text)}", file=sys.stderr)
    return 2


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, ``<prog>: error: ... (see --help)``,
    with exit status 2 (argparse prints the whole usage block). Sub-parsers inherit it."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def guarded(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate ``main(argv=None) -> int``: NasError -> one line + 2; argparse's SystemExit
    (``--help``: 0, usage error: 2, its line already printed) -> the return value; Ctrl-C ->
    'interrupted' + 130; a closed stdout pipe (``| head``) -> 0, without a traceback."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None, *args, **kwargs) -> int:
        try:
            return main(argv, *args, **kwargs)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except NasError as e:
            return fail(e)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader (e.g. `head`) stopped early: not an error
            _silence_stdout()
            return 0

    return run


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# ---------------------------------------------------------------- type= validators
def _int(text: str) -> int:
    try:
        return int(str(text).strip().replace("_", ""), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(low: int, high: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """A validator for integers in ``low .. high`` (no upper bound when ``high`` is None)."""

    def check(text: str) -> int:
        value = _int(text)
        if value < low or (high is not None and value > high):
            span = f"in {low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {what} {span}, got {text!r}")
        return value

    check.__name__ = "integer"  # argparse names the type in some messages
    return check


def seed(text: str) -> int:
    """A random seed: an integer in 0 .. 2**32-1."""
    return int_range(0, SEED_MAX, "a seed")(text)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return int_range(1)(text)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return int_range(0)(text)


def count(text: str) -> int:
    """A process or thread count: 1 .. COUNT_MAX."""
    return int_range(1, COUNT_MAX)(text)


def resolution(text: str) -> int:
    """A proxy input size in pixels: RESOLUTION_MIN .. RESOLUTION_MAX (see RESOLUTION_MAX)."""
    value = _int(text)
    if not RESOLUTION_MIN <= value <= RESOLUTION_MAX:
        raise argparse.ArgumentTypeError(
            f"must be {RESOLUTION_MIN}..{RESOLUTION_MAX} pixels, got {text!r} (larger proxy "
            f"images do not fit in memory as a float32 dataset; a proxy is smaller than the target)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (e.g. a learning rate): nan, inf, 0 and negatives are refused."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction in [0, 1) (warm-up share, label smoothing)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text!r}")
    return value


_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*")


def duration(text: str) -> float:
    """Seconds, or a number with s, m/min or h: '90', '90s', '10m', '1.5h'; finite and > 0."""
    m = _DURATION.fullmatch(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use seconds or e.g. 90s, 10m, 1h")
    value = float(m.group(1)) * {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"duration must be finite and > 0, got {text!r}")
    return value


def image_limit(text: str) -> int:
    """How many images a proxy dataset uses: 0 (all) or at least 2 (one train, one val)."""
    value = _int(text)
    if value != 0 and value < 2:
        raise argparse.ArgumentTypeError(f"must be 0 (all images) or >= 2, got {text!r}")
    return value
