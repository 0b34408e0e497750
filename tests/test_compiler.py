"""compile(): exact params/MACs, shapes, retargeting, and the torch tooling users rely on."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from nas import blocks, compile, count, zoo
from nas.builder import GraphBuilder
from nas.measure import measured_params_macs
from tests.genotype_strategies import random_genotypes


def assert_exact(g):
    cost = count(g)
    params, macs = measured_params_macs(g)
    assert (cost.params, cost.macs) == (params, macs)
    module = compile(g).eval()
    with torch.no_grad():
        out = module(torch.randn(2, *g.input_shape))
    assert tuple(out.shape[1:]) == g.infer_shapes()[g.output]


@given(random_genotypes())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_genotypes_count_exactly_what_pytorch_measures(g):
    assert_exact(g)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet50_v1"])
def test_resnets_count_exactly(name):
    assert_exact(zoo.build(name))


def test_resnet50_matches_torchvision_figures():
    cost = count(zoo.build("resnet50"))
    assert cost.params == 25_557_032
    assert round(cost.macs / 1e9, 3) == 4.089


def test_resnet50_v1_moves_the_stride_to_the_first_1x1():
    v15, v1 = count(zoo.build("resnet50")), count(zoo.build("resnet50_v1"))
    assert v1.params == v15.params
    assert 3.8e9 <= v1.macs <= 3.9e9
    assert v15.macs - v1.macs == 231_211_008  # the v1 vs v1.5 stride trap: 231M MACs apart


def test_module_names_follow_the_genotype():
    names = dict(compile(zoo.build("resnet18")).named_parameters())
    assert "layer2.0.downsample.0.weight" in names and "fc.bias" in names
    assert "layer1.1.bn2.weight" in names


def test_retarget_changes_only_stem_channels_and_classes():
    g = zoo.build("resnet18")
    m = compile(g, in_channels=1, num_classes=10).eval()
    assert m(torch.randn(3, 1, 32, 32)).shape == (3, 10)
    assert m.conv1.weight.shape[1] == 1
    target, proxy = count(g), count(g.retarget(1, 10))
    assert target.params - proxy.params == 64 * 2 * 49 + 990 * 513
    assert g.input_shape == (3, 224, 224)  # the original is untouched


def _tiny():
    b = GraphBuilder((3, 16, 16), "tiny")
    x = blocks.conv_bn_act(b, b.input, 8, 3, 2)
    with b.scope("block"):
        x = blocks.bottleneck(b, x, 4, 16, 2, groups=2, se=4)
    with b.scope("shuffle"):
        x = blocks.shufflenet_v2_unit(b, x, 16, 1)
    return b.build(blocks.classifier(b, x, 5))


def test_channels_last_gives_the_same_output():
    g = _tiny()
    m = compile(g).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = m(x)
        out = m.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref)


def test_torchscript_and_onnx_export(tmp_path):
    import onnx

    g = _tiny()
    m = compile(g).eval()
    x = torch.randn(1, 3, 16, 16)
    scripted = torch.jit.script(m)
    torch.testing.assert_close(scripted(x), m(x))
    for dynamo in (False, True):  # the TorchScript-based and the dynamo-based exporter
        path = tmp_path / f"tiny_{dynamo}.onnx"
        torch.onnx.export(m, (x,), str(path), dynamo=dynamo)
        onnx.checker.check_model(onnx.load(str(path)))


def test_torch_compile_matches_eager():
    g = _tiny()
    m = compile(g).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(m)(x), m(x), rtol=1e-4, atol=1e-4)


def test_backward_through_inplace_ops():
    m = compile(zoo.build("resnet18"), num_classes=4)
    m(torch.randn(2, 3, 32, 32)).sum().backward()
    assert m.conv1.weight.grad is not None


def test_compile_is_pure():
    g = _tiny()
    before = g.to_json()
    a, b = compile(g), compile(g)
    assert g.to_json() == before
    assert a is not b and set(a.state_dict()) == set(b.state_dict())


def test_aux_heads_run_in_training_only_and_share_weights():
    b = GraphBuilder((3, 8, 8), "aux")
    x = blocks.conv_bn_act(b, b.input, 4, 3)
    main = blocks.classifier(b, x, 3)
    with b.scope("aux"):
        aux = blocks.classifier(b, x, 3)
    g = b.build(main, aux_outputs=[aux], classifiers=[main, aux])
    m = compile(g, num_classes=5)
    out, aux_out = m.train()(torch.randn(2, 3, 8, 8))
    assert out.shape == aux_out.shape == (2, 5)
    assert m.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    keys = list(m.state_dict())
    assert "aux.fc.weight" in keys and len(keys) == len(set(keys))
    assert sum(p.numel() for p in m.parameters()) == count(g.retarget(num_classes=5)).params
    assert measured_params_macs(g)[1] == count(g).macs


def test_nas_compile_stays_the_function_after_submodules_load():
    import nas
    import nas.compiler  # noqa: F401
    import nas.measure  # noqa: F401

    assert callable(nas.compile) and nas.compile.__module__ == "nas"
