"""nas.evaluate.latency: median forward seconds for genotypes and modules."""
import math

import pytest
import torch

from nas.errors import NasError
from nas.evaluate.latency import measure_latency
from nas.zoo.resnet import resnet


def test_latency_of_a_genotype_is_positive_and_grows_with_the_batch():
    g = resnet("basic", (1, 1, 1, 1), widths=(16, 32, 64, 128))
    one = measure_latency(g, input_shape=(1, 32, 32), batch_size=1, warmup=1, runs=5)
    many = measure_latency(g, input_shape=(1, 32, 32), batch_size=64, warmup=1, runs=5)
    assert 0 < one < 1 and math.isfinite(many)
    assert many > one     # 64 images cost more than one, whatever the machine's load


def test_latency_of_a_module_and_channels_last():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    for cl in (False, True):
        assert measure_latency(model, input_shape=(3, 16, 16), runs=3, channels_last=cl) > 0


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"runs": 0}, {"warmup": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(NasError):
        measure_latency(torch.nn.Identity(), input_shape=(3, 8, 8), **kwargs)


def test_rejects_other_objects():
    with pytest.raises(NasError, match="Genotype or a torch module"):
        measure_latency("resnet18", input_shape=(3, 8, 8))
