"""Cost counting conventions and FLOP budgets."""
import pytest

from nas import BudgetError, count, parse_budget, zoo
from nas.builder import GraphBuilder
from nas.cost import Cost, human


@pytest.mark.parametrize("text, macs", [
    ("2GFLOPs", 2_000_000_000), ("2 GFLOPs", 2_000_000_000), ("600MFLOPs", 600_000_000),
    ("600M", 600_000_000), ("2e9", 2_000_000_000), ("1.5GMACs", 1_500_000_000),
    ("1.5gmacs", 1_500_000_000), ("300k", 300_000), ("0.5T", 500_000_000_000), (" 4 G ", 4_000_000_000),
    (2e9, 2_000_000_000), ("750MFLOP", 750_000_000),
])
def test_parse_budget_accepts_the_documented_forms(text, macs):
    assert parse_budget(text) == macs


@pytest.mark.parametrize("text", ["abc", "", "2 GB", "2GFLOPS/s", "G2", "-1GFLOPs", "0", "0M", "nan", "1e400"])
def test_parse_budget_rejects_everything_else_with_the_accepted_forms(text):
    with pytest.raises(BudgetError, match="2GFLOPs"):
        parse_budget(text)


def test_flops_are_twice_macs_and_bn_is_params_only():
    b = GraphBuilder((3, 8, 8))
    x = b.node("conv", "conv", [b.input], out_channels=4, kernel=3, bias=True)
    x = b.node("bn", "bn", [x])
    cost = count(b.build(x))
    assert cost.params == 4 * 3 * 9 + 4 + 2 * 4
    assert cost.macs == 4 * 8 * 8 * 3 * 9           # bias and BN add no MACs
    assert cost.flops == 2 * cost.macs
    assert cost.activations == 4 * 8 * 8           # conv outputs (pycls convention)


def test_aux_heads_count_params_not_macs():
    def net(aux: bool):
        b = GraphBuilder((3, 8, 8))
        x = b.node("conv", "conv", [b.input], out_channels=4, kernel=3)
        main = b.node("fc", "linear", [b.node("flat", "flatten", [x])], out_features=2)
        heads = [b.node("aux", "linear", [b.node("aux_flat", "flatten", [x])], out_features=2)] if aux else []
        return b.build(main, aux_outputs=heads)
    with_aux, without = count(net(True)), count(net(False))
    assert with_aux.params == without.params + 4 * 64 * 2 + 2
    assert with_aux.macs == without.macs


def test_cost_is_plain_data_and_readable():
    cost = count(zoo.build("resnet18"))
    assert Cost(**cost.to_dict()) == cost
    assert str(cost).startswith("11.690M params, 1.814GMACs")
    assert human(999) == "999" and human(1_500) == "1.500K"
