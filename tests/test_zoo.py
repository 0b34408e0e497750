"""The zoo: registry, golden counts, counts == PyTorch, forward/backward, published figures, CLI."""
import json
from pathlib import Path

import pytest
import torch

from nas import count, zoo
from nas.compiler import compile
from nas.errors import NasError, UnknownNameError
from nas.genotype import Genotype
from nas.measure import measured_params_macs
from nas.zoo import ZOO, ZooEntry
from nas.zoo.__main__ import main
from nas.zoo.compare import bias_adds, compare, matches, precision
from nas.zoo.regnet import regnet, regnet_stages

GOLDEN = json.loads((Path(__file__).parent / "golden_zoo.json").read_text())
NAMES = ZOO.names()


def _large(name: str) -> bool:
    """Entries too big for the default run: over 40M params or 500 nodes."""
    g = GOLDEN.get(name, {})
    return g.get("params", 0) > 40_000_000 or len(ZOO.get(name).builder()) > 500


def _params(slow_if_large: bool):
    return [pytest.param(n, marks=pytest.mark.slow) if slow_if_large and _large(n) else n
            for n in NAMES]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ registry
def test_every_entry_is_described_and_builds_its_declared_spec():
    for name in NAMES:
        e = ZOO.get(name)
        assert e.name == name and e.family and e.source, name
        g = e.builder()
        assert isinstance(g, Genotype) and g.input_shape == tuple(e.input_shape), name
        shapes = g.infer_shapes()
        assert shapes[g.output] == (e.num_classes,), name


def test_duplicate_names_are_refused_and_misses_suggest_close_names():
    with pytest.raises(ValueError, match="already registered"):
        ZOO.register("resnet50", ZOO.get("resnet50"))
    with pytest.raises(UnknownNameError, match="resnet50"):
        zoo.build("resnet5O")


def test_the_issue_families_are_all_present():
    required = ["lenet5", "alexnet", "alexnet_paper", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19",
                "vgg11_bn", "vgg16_bn", "nin", "allcnn_c", "googlenet", "googlenet_paper",
                "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                "resnet18_v1", "resnet34_v1", "resnet50_v1", "resnet101_v1", "resnet152_v1",
                "preact_resnet164", "preact_resnet1001", "preact_resnet200", "wrn_28_10",
                "wrn_40_4", "wide_resnet50_2", "resnext50_32x4d", "resnext101_32x8d",
                "se_resnet50", "se_resnet50_v1", "se_resnext50_32x4d", "mobilenet_v1",
                "mobilenet_v1_x0_5", "mobilenet_v2", "mobilenet_v2_x1_4", "shufflenet_v1_g1",
                "shufflenet_v1_g2", "shufflenet_v1_g3", "shufflenet_v1_g4", "shufflenet_v1_g8",
                "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                "shufflenet_v2_x2_0", "xception", "densenet121", "densenet169", "densenet201",
                "squeezenet1_0", "squeezenet1_1"]
    required += [f"regnet{k}_{s}" for k in "xy"
                 for s in ("200mf", "400mf", "600mf", "800mf", "1_6gf", "3_2gf", "4_0gf")]
    missing = [n for n in required if n not in ZOO]
    assert not missing


# ------------------------------------------------------------------ golden file
def test_golden_file_pins_exactly_the_registered_entries():
    assert sorted(GOLDEN) == sorted(NAMES), "regenerate: python -m nas.zoo golden -o tests/golden_zoo.json"


@pytest.mark.parametrize("name", NAMES)
def test_counts_equal_the_golden_file(name):
    c = count(zoo.build(name))
    assert {"params": c.params, "macs": c.macs} == GOLDEN[name]


# ------------------------------------------------------------------ counts == PyTorch
@pytest.mark.parametrize("name", _params(slow_if_large=True))
def test_counted_equals_pytorch_measured(name):
    g = zoo.build(name)
    c = count(g)
    assert measured_params_macs(g, device="meta") == (c.params, c.macs)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_counted_equals_pytorch_measured_on_real_tensors(name):
    from nas.measure import measured_params_macs

    g = zoo.build(name)
    c = count(g)
    assert measured_params_macs(g) == (c.params, c.macs)


# ------------------------------------------------------------------ forward / backward
def _small(g: Genotype) -> Genotype:
    """``g`` at the smallest input resolution (from 32 up) that keeps every weight's shape."""
    c, h, _ = g.input_shape
    if h <= 64:
        return g
    params = count(g).params
    for r in (32, 64, 96, 128, 160, 192, 224, 299):
        data = g.to_dict()
        for node in data["nodes"]:
            if node["op"] == "input":
                node["attrs"]["shape"] = [c, r, r]
        try:
            small = Genotype.from_dict(data).validate()
        except NasError:
            continue
        if count(small).params == params:
            return small
    return g


@pytest.mark.parametrize("name", _params(slow_if_large=True))
def test_forward_and_backward_on_a_small_input(name):
    g = _small(zoo.build(name))
    model = compile(g).train()
    torch.manual_seed(0)
    out = model(torch.randn(2, *g.input_shape))
    outs = out if isinstance(out, tuple) else (out,)
    assert outs[0].shape == (2, ZOO.get(name).num_classes)
    sum(o.float().square().mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert any(gr.abs().sum() > 0 for gr in grads)


# ------------------------------------------------------------------ published figures
# every network classic_nets.md lists with torchvision figures: (params, GMACs to 3 decimals)
TORCHVISION = {
    "alexnet": (61_100_840, 0.714), "vgg11": (132_863_336, 7.609), "vgg13": (133_047_848, 11.308),
    "vgg16": (138_357_544, 15.470), "vgg19": (143_667_240, 19.632),
    "vgg16_bn": (138_365_992, 15.470), "googlenet": (6_624_904, 1.498),
    "resnet18": (11_689_512, 1.814), "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089), "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514), "resnext50_32x4d": (25_028_904, 4.230),
    "wide_resnet50_2": (68_883_240, 11.398), "mobilenet_v2": (3_504_872, 0.301),
    "shufflenet_v2_x1_0": (2_278_604, 0.145), "densenet121": (7_978_856, 2.834),
    "squeezenet1_0": (1_248_424, 0.819), "inception_v3": (27_161_264, 5.713),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_figures_exactly(name):
    params, gmacs = TORCHVISION[name]
    c = count(zoo.build(name))
    assert c.params == params
    assert round(c.macs / 1e9, 3) == gmacs
    assert ZOO.get(name).exact


@pytest.mark.parametrize("name", [n for n in NAMES if ZOO.get(n).exact])
def test_entries_marked_exact_match_their_figures_to_the_printed_digits(name):
    c = compare(name)
    assert c.params.ours == c.entry.published_params
    assert c.status == "exact"


@pytest.mark.parametrize("name", NAMES)
def test_every_figure_is_within_2_percent_or_explained(name):
    c = compare(name)
    if c.status in ("within 2%", "differs", "unpublished"):
        assert len(c.entry.note) > 40, f"{name}: {c.status}, so its note must say why"


def test_published_precision_is_read_from_trailing_zeros():
    assert precision(25_600_000) == 100_000 and precision(25_557_032) == 1
    assert matches(25_557_032, 25_600_000) and not matches(25_557_032, 25_500_000)
    assert matches(3_664_000_000 - 1, 3_664_000_000) and not matches(3_663_400_000, 3_664_000_000)


def test_regnets_equal_pycls_complexity_to_the_integer():
    """pycls counts a bias add per output element; with those our counts equal its figures."""
    pycls = [n for n in NAMES if n.startswith("regnet") and "pycls" in ZOO.get(n).source]
    assert len(pycls) == 14
    for name in pycls:
        e, g = ZOO.get(name), zoo.build(name)
        c = count(g)
        assert c.params == e.published_params, name
        assert c.macs + bias_adds(g) == e.published_macs, name


# ------------------------------------------------------------------ family details
def test_v1_and_v1_5_stride_placement():
    v15, v1 = zoo.build("resnet50"), zoo.build("resnet50_v1")
    assert v1.attrs("layer2.0.conv1").get("stride") == 2 and "stride" not in v15.attrs("layer2.0.conv1")
    assert v15.attrs("layer2.0.conv2")["stride"] == 2
    assert count(v15).macs - count(v1).macs == 231_211_008  # the v1 vs v1.5 stride trap: 231M MACs apart
    assert count(v15).params == count(v1).params


def test_se_adds_under_one_percent_macs_and_about_ten_percent_params():
    base, se = count(zoo.build("resnet50_v1")), count(zoo.build("se_resnet50_v1"))
    assert 0 < se.macs - base.macs < 0.01 * base.macs
    assert 0.08 < se.params / base.params - 1 < 0.12


def test_regnet_generator_is_the_papers_function():
    stages = regnet_stages(24, 36.44, 2.49, 13, 8)   # RegNetX-200MF
    assert [(s.width, s.depth) for s in stages] == [(24, 1), (56, 1), (152, 4), (368, 7)]
    g = regnet(w0=24, wa=36.44, wm=2.49, depth=13, group_w=8)
    assert count(g) == count(zoo.build("regnetx_200mf"))
    y = regnet(24, 36.44, 2.49, 13, 8, se_ratio=0.25)
    assert y.attrs("s1.b1.se.fc1")["out_channels"] == 8   # round(0.25 * 32), the block's input
    wide = regnet(24, 36.44, 2.49, 13, 8, bot_mul=2.0)
    assert count(wide).params > count(g).params
    with pytest.raises(NasError, match="wm > 1"):
        regnet(24, 36.44, 1.0, 13, 8)


def test_family_builders_reject_impossible_arguments_readably():
    from nas.zoo.preact import preact_resnet_cifar
    from nas.zoo.shufflenet import shufflenet_v1
    from nas.zoo.wideresnet import wide_resnet_cifar

    with pytest.raises(NasError, match="9n\\+2"):
        preact_resnet_cifar(100)
    with pytest.raises(NasError, match="6n\\+4"):
        wide_resnet_cifar(27, 10)
    with pytest.raises(NasError, match="groups must be one of"):
        shufflenet_v1(5)


def test_width_multipliers_round_like_torchvision():
    from nas.zoo.mobilenet import make_divisible

    assert [make_divisible(c * 0.5) for c in (32, 16, 24, 96, 320)] == [16, 8, 16, 48, 160]
    assert make_divisible(1280 * 1.4) == 1792
    g = zoo.build("mobilenet_v2_x0_5")
    assert g.infer_shapes()["classifier.1"] == (1000,)
    assert g.attrs("features.18.0")["out_channels"] == 1280   # last conv never shrinks


# ------------------------------------------------------------------ CLI
def test_cli_list_filters_and_reports_differences(capsys):
    assert main(["list", "resnet50*"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_v1" in out and "25,557,032" in out and "MACs +1.5%" in out
    assert "vgg" not in out
    assert main(["list", "regnety"]) == 0
    assert capsys.readouterr().out.count("exact") == 7


def test_cli_show_prints_stages_with_receptive_field(capsys):
    assert main(["show", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032 params" in out and "RF" in out
    assert "2048x7x7" in out and " 427 " in out
    assert main(["show", "mobilenet_v2", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "features.1.conv.0.0" in out and "groups=32 (depthwise)" in out
    assert main(["show", "resnext50_32x4d", "--layers"]) == 0
    assert "groups=32 (grouped)" in capsys.readouterr().out


def test_cli_show_json_round_trips(capsys):
    assert main(["show", "shufflenet_v2_x0_5", "--json"]) == 0
    assert Genotype.from_json(capsys.readouterr().out) == zoo.build("shufflenet_v2_x0_5")


@pytest.mark.parametrize("argv, words", [
    (["show", "resnet5O"], ["resnet50"]),
    (["show", "mobilenetv2"], ["mobilenet_v2"]),
    (["export", "regnetx_2OOmf", "-o", "x.json"], ["regnetx_200mf"]),
    (["list", "no_such_net"], ["no zoo entry matches"]),
    (["export", "resnet18", "--format", "xml", "-o", "x"], ["invalid choice"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_cli_bad_input_exits_2_with_a_readable_message(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err


def test_cli_export_json_onnx_torchscript(tmp_path, capsys):
    import onnx

    assert main(["export", "shufflenet_v2_x0_5", "-o", str(tmp_path / "g.json")]) == 0
    assert Genotype.from_json((tmp_path / "g.json").read_text()) == zoo.build("shufflenet_v2_x0_5")
    assert main(["export", "mobilenet_v1_x0_25", "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model)
    g = zoo.build("mobilenet_v1_x0_25")
    assert [n.op_type for n in model.graph.node].count("Conv") == [g.op(n) for n in g].count("conv")
    pt = str(tmp_path / "m.pt")
    assert main(["export", "mobilenet_v1_x0_25", "--format", "torchscript", "-o", pt]) == 0
    scripted = torch.jit.load(pt)
    assert scripted(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    assert main(["export", "resnet18", "-o", str(tmp_path / "missing" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_golden_matches_the_pinned_file(tmp_path):
    assert main(["golden", "-o", str(tmp_path / "golden.json")]) == 0
    assert json.loads((tmp_path / "golden.json").read_text()) == GOLDEN


def test_zoo_entry_is_plain_data():
    e = ZOO.get("regnety_400mf")
    assert isinstance(e, ZooEntry) and e.published_params == 4_344_144
