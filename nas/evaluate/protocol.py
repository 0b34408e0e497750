"""The proxy protocol: how a search trains and scores one architecture, as one frozen record.

    from nas.evaluate.protocol import DEFAULT
    DEFAULT.epochs, DEFAULT.train_images, DEFAULT.signal

Every setting that changes a trial's score lives here (data size, resolution, recipe, the
resolution transform and the ranking signal), so a search, ``python -m nas.calibrate`` and the
experiments read the same values. ``DEFAULT`` is the protocol the search uses unless flags
override it; its values are chosen by measurement (see the README section "Proxy protocol").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

#: Ranking signals a protocol may name: "accuracy" (maximise the last epoch's validation
#: accuracy) or "val_loss" (minimise the last epoch's mean validation cross-entropy).
SIGNALS = ("accuracy", "val_loss")


@dataclass(frozen=True)
class Protocol:
    """One proxy-training protocol (all plain data; ``asdict`` round-trips)."""

    dataset: str = "mnist"
    epochs: int = 1
    train_images: int = 1600
    val_images: int = 400
    resolution: int = 28
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.0            # fraction of the training steps with a linear lr ramp
    label_smoothing: float = 0.0
    transform: str = "none"        # resolution transform (nas.evaluate.train.TRANSFORMS)
    signal: str = "accuracy"       # one of SIGNALS

    def __post_init__(self):
        from nas.errors import NasError

        for name in ("epochs", "train_images", "val_images", "batch_size", "resolution"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise NasError(f"protocol {name} must be an int >= 1, got {v!r}")
        if self.batch_size < 2:
            raise NasError(f"protocol batch_size must be >= 2 (batch norm needs 2), got {self.batch_size}")
        if not 0 <= self.warmup < 1:
            raise NasError(f"protocol warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not 0 <= self.label_smoothing < 1:
            raise NasError(f"protocol label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.signal not in SIGNALS:
            raise NasError(f"protocol signal must be one of {', '.join(SIGNALS)}, got {self.signal!r}")

    @property
    def images(self) -> int:
        """Images drawn from the dataset in all (train + validation): ``load_dataset(limit=)``."""
        return self.train_images + self.val_images

    @property
    def val_fraction(self) -> float:
        """The validation share: ``load_dataset(val_fraction=)``."""
        return self.val_images / self.images

    def with_(self, **changes) -> "Protocol":
        """A copy with ``changes`` applied (validated like a new protocol)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


#: The search's default protocol (today's literal defaults until calibration replaces them).
DEFAULT = Protocol()
