import dataclasses

import pytest

from nas.errors import NasError
from nas.evaluate.protocol import DEFAULT, Protocol


def test_default_is_frozen_plain_data():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.epochs = 3
    assert Protocol(**DEFAULT.to_dict()) == DEFAULT


def test_images_and_val_fraction_reproduce_the_split():
    from nas.evaluate.data import load_dataset

    p = Protocol(train_images=160, val_images=40)
    ds = load_dataset(p.dataset, resolution=p.resolution, limit=p.images, val_fraction=p.val_fraction)
    assert (len(ds.train_y), len(ds.val_y)) == (160, 40)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=1), dict(warmup=1.0),
                                 dict(label_smoothing=-0.1), dict(signal="top5")])
def test_bad_values_are_refused(bad):
    with pytest.raises(NasError):
        DEFAULT.with_(**bad)
