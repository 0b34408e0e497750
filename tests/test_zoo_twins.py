"""The zoo's twins: every entry with a torchvision/timm twin has its state-dict keys and
shapes, all of them, as listed in tests/data/zoo_twins.json.gz (generated from torchvision
0.29.1 and timm 1.0.31 by tests/data/make_zoo_twins.py in a throwaway environment); timm
twins with other names load through load_weights; timm names are aliases; googlenet and
inception_v3 carry torchvision's transform_input and aux-output order."""
import gzip
import json
from pathlib import Path

import pytest
import torch

from nas import count, zoo
from nas.compiler import compile
from nas.errors import NasError, UnknownNameError
from nas.zoo import ZOO, load_weights
from nas.zoo.__main__ import main
from nas.zoo.inception import IMAGENET_MEAN, IMAGENET_STD, googlenet
from nas.functional import channel_affine
from nas.zoo.weights import rename

DATA = Path(__file__).parent / "data" / "zoo_twins.json.gz"
REFERENCE = json.loads(gzip.decompress(DATA.read_bytes()))
NETS = REFERENCE["nets"]
WITH_TWINS = [n for n in ZOO.names() if ZOO.get(n).twins]


def _state(genotype) -> dict[str, list[int]]:
    with torch.device("meta"):
        return {k: list(v.shape) for k, v in compile(genotype).state_dict().items()}


def test_the_reference_lists_exactly_the_twins_the_zoo_declares():
    assert {n: list(ZOO.get(n).twins) for n in WITH_TWINS} == {n: list(t) for n, t in NETS.items()}
    assert len(WITH_TWINS) >= 68


@pytest.mark.parametrize("name", WITH_TWINS)
def test_state_dict_keys_and_shapes_equal_the_first_twins(name):
    """All keys, all shapes, nothing extra or missing (BN buffers included)."""
    e = ZOO.get(name)
    reference = NETS[name][e.twins[0]]
    assert _state(e.builder()) == {k: s for k, s in reference}
    assert len(reference) == len({k for k, _ in reference})


@pytest.mark.parametrize("name", [n for n in WITH_TWINS if len(ZOO.get(n).twins) > 1])
def test_other_twins_map_key_by_key_onto_the_entry(name):
    e = ZOO.get(name)
    ours = _state(e.builder())
    for twin in e.twins[1:]:
        source = twin.split(":")[0]
        keys = NETS[name][twin]
        names = rename([k for k, _ in keys], source)
        assert len(names) == len(keys) and len(set(names.values())) == len(keys), twin
        assert {names[k]: s for k, s in keys} == ours, twin


def test_load_weights_puts_every_timm_tensor_in_its_place():
    e = ZOO.get("mobilenet_v2_x0_5")
    keys = NETS[e.name]["timm:mobilenetv2_050"]
    torch.manual_seed(0)
    theirs = {k: torch.randn(s) if s else torch.tensor(7) for k, s in keys}
    model = load_weights(compile(e.builder()), theirs, source="timm")
    sd = model.state_dict()
    names = rename(list(theirs), "timm")
    assert all(torch.equal(sd[names[k]], v) for k, v in theirs.items())
    assert torch.equal(sd["features.0.0.weight"], theirs["conv_stem.weight"])
    assert torch.equal(sd["features.2.conv.2.weight"], theirs["blocks.1.0.conv_pwl.weight"])
    assert torch.equal(sd["classifier.1.bias"], theirs["classifier.bias"])


def test_load_weights_refuses_a_checkpoint_of_another_network_readably():
    model = compile(zoo.build("mobilenet_v2_x0_5"))
    theirs = {k: torch.zeros(s) for k, s in NETS["mobilenet_v2"]["timm:mobilenetv2_100"]}
    with pytest.raises(NasError, match="shapes differ"):
        load_weights(model, theirs, source="timm")
    with pytest.raises(NasError, match="unknown weights source"):
        load_weights(model, {}, source="keras")
    partial = dict(list(compile(zoo.build("mobilenet_v2_x0_5")).state_dict().items())[:-2])
    with pytest.raises(NasError, match=r"missing \(2\): classifier.1.weight, classifier.1.bias"):
        load_weights(model, partial)


def test_a_torchvision_state_dict_loads_strictly_as_it_is():
    e = ZOO.get("shufflenet_v2_x0_5")
    theirs = {k: torch.ones(s) for k, s in NETS[e.name][e.twins[0]]}
    model = compile(e.builder())
    model.load_state_dict(theirs, strict=True)
    assert torch.equal(model.state_dict()["conv1.0.weight"], torch.ones(24, 3, 3, 3))


# ------------------------------------------------------------------ aliases
def test_timm_names_are_aliases():
    assert zoo.build("seresnet50").name == "se_resnet50"
    assert zoo.build("regnetx_002").name == "regnetx_200mf"
    assert ZOO.get("regnety_016").name == "regnety_1_6gf"
    assert ZOO.get("mobilenetv2_140").name == "mobilenet_v2_x1_4"
    assert ZOO.get("legacy_xception").name == "xception"
    assert ZOO.get("legacy_seresnet50").name == "se_resnet50_v1"
    assert "seresnext50_32x4d" in ZOO and "seresnext50_32x4d" not in ZOO.names()
    for alias, name in ZOO.aliases().items():
        assert f"timm:{alias}" in ZOO.get(name).twins
    with pytest.raises(UnknownNameError, match="regnetx_002"):
        ZOO.get("regnetx_02")


def test_two_regnet_definitions_under_distinct_names_with_their_sources():
    pycls, tv = ZOO.get("regnetx_400mf"), ZOO.get("regnet_x_400mf")
    assert (count(pycls.builder()).params, count(tv.builder()).params) == (5_157_512, 5_495_976)
    assert "pycls" in pycls.source and "torchvision" in tv.source
    assert pycls.twins == ("timm:regnetx_004",) and tv.twins == ("torchvision:regnet_x_400mf",)
    assert "rounds widths differently" in pycls.note
    assert "same network as pycls's regnetx_800mf" in ZOO.get("regnet_x_800mf").note


def test_cli_list_accepts_aliases_and_shows_definitions(capsys):
    assert main(["list", "seresnet50"]) == 0
    out = capsys.readouterr().out
    assert "se_resnet50 (= seresnet50)" in out and "timm seresnet50" in out
    assert "se_resnet50_v1 (= legacy_seresnet50)" in out and "2 entries" in out
    assert main(["list", "regnet*400mf"]) == 0
    out = capsys.readouterr().out
    assert "pycls" in out and "torchvision regnet_x_400mf" in out and "timm regnetx_004" in out
    assert main(["show", "regnety_008"]) == 0
    assert "regnety_800mf" in capsys.readouterr().out


# ------------------------------------------------------------------ transform_input, aux order
def test_transform_input_is_torchvisions_formula_at_no_cost():
    g = zoo.build("googlenet")
    assert g.op("transform_input") == "channel_affine" and g.inputs("conv1.conv") == ["transform_input"]
    assert zoo.build("inception_v3").inputs("Conv2d_1a_3x3.conv") == ["transform_input"]
    shapes = g.infer_shapes()
    spec = g.spec("transform_input")
    assert spec.cost(g.resolved_attrs("transform_input"), [shapes["input"]], shapes["input"]) == (0, 0, 0)
    model = compile(g.retarget(num_classes=3))
    x = torch.randn(2, 3, 8, 8)
    node = next(n for n in model.graph.nodes if n.target is channel_affine)
    assert node.args[0].op == "placeholder"
    got = channel_affine(x, *node.args[1:])
    expected = torch.cat([torch.unsqueeze(x[:, c], 1) * (IMAGENET_STD[c] / 0.5)
                          + (IMAGENET_MEAN[c] - 0.5) / 0.5 for c in range(3)], 1)
    assert torch.equal(got, expected)


def test_transform_input_needs_rgb_input_and_says_so():
    with pytest.raises(NasError, match="one scale and one shift per channel"):
        zoo.build("googlenet").retarget(in_channels=1).validate()


def test_googlenet_aux_keys_and_output_order_are_torchvisions():
    g = googlenet(aux=True, transform=True)
    label = "inception.googlenet(aux=True, transform=True)"
    (twin, keys), = REFERENCE["extra"][label].items()
    assert _state(g) == {k: s for k, s in keys}
    assert g.aux_outputs == ("aux2.fc2", "aux1.fc2")  # torchvision: (logits, aux2, aux1)
    model = compile(g).train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    torch.manual_seed(0)
    main, aux2, aux1 = model(torch.randn(2, 3, 224, 224))
    assert main.shape == aux2.shape == aux1.shape == (2, 1000)
    assert not torch.equal(aux1, aux2)
    fc2 = dict(model.named_modules())
    # aux2's head reads inception4d: its fc2 is the one whose output comes second
    captured = {}
    for name in ("aux1.fc2", "aux2.fc2"):
        fc2[name].register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
    torch.manual_seed(0)
    main, second, third = model(torch.randn(2, 3, 224, 224))
    assert torch.equal(second, captured["aux2.fc2"]) and torch.equal(third, captured["aux1.fc2"])


def test_transform_input_scripts_and_exports_to_onnx(tmp_path):
    import onnx

    from nas.builder import GraphBuilder
    from nas.zoo.inception import transform_input

    b = GraphBuilder((3, 8, 8), "tiny")
    x = b.node("conv", "conv", [transform_input(b, b.input)], out_channels=4, kernel=3)
    y = b.node("fc", "linear", [b.node("flat", "flatten", [b.node("gap", "gap", [x])])],
               out_features=2)
    model = compile(b.build(y, classifiers=[y])).eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(torch.jit.script(model)(x), model(x))
    torch.onnx.export(model, (x,), str(tmp_path / "t.onnx"), dynamo=False)
    onnx.checker.check_model(onnx.load(str(tmp_path / "t.onnx")))
