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
#: accuracy), "val_loss" (minimise the last epoch's mean validation cross-entropy) or
#: "train_val_loss" (minimise the geometric mean of that and the last epoch's mean training
#: loss: :func:`nas.quality.train_val_loss`).
SIGNALS = ("accuracy", "val_loss", "train_val_loss")


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
    precise_bn: int = 0            # training images the BN statistics are recomputed on (0: off)
    weight_average: float = 0.0    # fraction of the last steps whose weights are averaged
    signal: str = "accuracy"       # one of SIGNALS

    def __post_init__(self):
        from nas.errors import NasError

        for name in ("epochs", "train_images", "val_images", "batch_size", "resolution"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise NasError(f"protocol {name} must be an int >= 1, got {v!r}")
        if self.batch_size < 2:
            raise NasError(f"protocol batch_size must be >= 2 (batch norm needs 2), got {self.batch_size}")
        import math

        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise NasError(f"protocol lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise NasError(f"protocol momentum must be in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise NasError(f"protocol weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not 0 <= self.warmup < 1:
            raise NasError(f"protocol warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not 0 <= self.label_smoothing < 1:
            raise NasError(f"protocol label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        from nas.evaluate.train import TRANSFORMS, check_averaging

        try:
            check_averaging(self.precise_bn, self.weight_average)
        except NasError as e:
            raise NasError(f"protocol {e}") from None

        if self.transform not in TRANSFORMS:
            raise NasError(f"protocol transform must be one of {', '.join(TRANSFORMS)}, got {self.transform!r}")
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

    def load(self, *, seed: int = 0):
        """The protocol's dataset: ``images`` stratified images, ``val_images`` of them held out."""
        from nas.evaluate.data import load_dataset

        return load_dataset(self.dataset, resolution=self.resolution, seed=seed,
                            limit=self.images, val_fraction=self.val_fraction)

    def train_kwargs(self) -> dict:
        """The keyword arguments of :func:`nas.evaluate.train.train` this protocol sets."""
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                    momentum=self.momentum, weight_decay=self.weight_decay, warmup=self.warmup,
                    label_smoothing=self.label_smoothing, transform=self.transform,
                    precise_bn=self.precise_bn, weight_average=self.weight_average)

    def train_image_passes(self) -> int:
        """Training compute in image passes (epochs x training images): the cost unit of
        ``python -m nas.calibrate``'s "reference >= 10x" rule."""
        return self.epochs * self.train_images


def parse_protocol(text: str, base: Protocol | None = None) -> Protocol:
    """``"epochs=4,train_images=4000,lr=0.1"``: ``base`` (DEFAULT) with those fields changed.

    Values are read as the field's type; an unknown field or a bad value raises NasError.
    """
    from nas.errors import NasError

    base = base or DEFAULT
    fields = base.to_dict()
    changes: dict = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            raise NasError(f"bad protocol item {item!r}: use key=value with key one of "
                           f"{', '.join(fields)}")
        kind = type(fields[key])
        try:
            changes[key] = kind(value.strip()) if kind is not bool else value.strip() in ("1", "true")
        except ValueError:
            raise NasError(f"bad protocol value {item!r}: {key} takes {'an' if kind is int else 'a'} "
                           f"{kind.__name__}") from None
    return base.with_(**changes)


#: The search's default protocol, chosen by measurement (experiments/results/
#: calibration_resnet_like_2GFLOPs/: 50 resnet_like points under 2 GFLOPs, 2 training seeds,
#: a reference of 10x the training image passes trained with 2 seeds). Batch 32 / lr 0.05 with
#: 1,600 training images leaves 0% of runs at chance (batch 64 / lr 0.1 with warm-up: 8%).
#: Ranked by ``train_val_loss``, the geometric mean of the validation cross-entropy and the
#: epoch's mean training loss: chosen on 25 architectures and confirmed on 25 others before
#: it became the default; on all 50, one training per architecture ranks like the reference
#: with Kendall tau 0.696 (val_loss 0.676) and like another seed with 0.757 (val_loss 0.652),
#: at the same cost. Precise BN and weight averaging (fields above) are measured options, off.
DEFAULT = Protocol(signal="train_val_loss")
