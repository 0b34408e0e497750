"""Every block helper builds a valid subgraph whose counts equal what PyTorch measures."""
import pytest

from nas import blocks, count
from nas.builder import GraphBuilder
from nas.measure import measured_params_macs


def wrap(make, channels=8, size=16):
    b = GraphBuilder((channels, size, size), "block")
    with b.scope("blk"):
        y = make(b, b.input)
    return b.build(blocks.classifier(b, y, 10))


BLOCKS = {
    "conv_bn_act": lambda b, x: blocks.conv_bn_act(b, x, 16, 3, 2, groups=2, dilation=1),
    "dilated": lambda b, x: blocks.conv_bn_act(b, x, 8, 3, dilation=2, act="relu6"),
    "dwconv": lambda b, x: blocks.dwconv(b, x, 5, 2),
    "squeeze_excitation": lambda b, x: blocks.squeeze_excitation(b, x, 2),
    "basic_block": lambda b, x: blocks.basic_block(b, x, 16, 2),
    "basic_block_se": lambda b, x: blocks.basic_block(b, x, 8, 1, se=2),
    "bottleneck": lambda b, x: blocks.bottleneck(b, x, 4, 16, 2),
    "bottleneck_resnext_se": lambda b, x: blocks.bottleneck(b, x, 8, 16, 2, groups=4, se=4),
    "bottleneck_v1": lambda b, x: blocks.bottleneck(b, x, 4, 16, 2, stride_on_1x1=True),
    "preact_basic": lambda b, x: blocks.preact_block(b, x, 16, 2, dropout=0.3),
    "preact_bottleneck": lambda b, x: blocks.preact_block(b, x, 32, 1, width=8),
    "inception": lambda b, x: blocks.inception_module(b, x, 4, 4, 6, 2, 3, 3),
    "inception_paper": lambda b, x: blocks.inception_module(b, x, 4, 4, 6, 2, 3, 3, bn=False),
    "dense_block": lambda b, x: blocks.dense_block(b, x, 3, 4, bn_size=2),
    "transition": lambda b, x: blocks.transition(b, x, 4),
    "inverted_residual": lambda b, x: blocks.inverted_residual(b, x, 8, 1, expand=4),
    "inverted_residual_se": lambda b, x: blocks.inverted_residual(b, x, 12, 2, expand=3, kernel=5,
                                                                 se=4, act="hswish", se_gate="hsigmoid"),
    "depthwise_separable": lambda b, x: blocks.depthwise_separable(b, x, 16, 2),
    "separable_conv": lambda b, x: blocks.separable_conv(b, x, 16),
    "shufflenet_v1_s1": lambda b, x: blocks.shufflenet_v1_unit(b, x, 8, 1, 2),
    "shufflenet_v1_s2": lambda b, x: blocks.shufflenet_v1_unit(b, x, 24, 2, 2),
    "shufflenet_v2_s1": lambda b, x: blocks.shufflenet_v2_unit(b, x, 8, 1),
    "shufflenet_v2_s2": lambda b, x: blocks.shufflenet_v2_unit(b, x, 16, 2),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_counts_exactly(name):
    g = wrap(BLOCKS[name])
    cost = count(g)
    assert (cost.params, cost.macs) == measured_params_macs(g)


def test_residual_blocks_project_only_when_shapes_change():
    same = wrap(lambda b, x: blocks.basic_block(b, x, 8, 1))
    changed = wrap(lambda b, x: blocks.basic_block(b, x, 16, 2))
    assert not any("downsample" in n for n in same)
    assert "blk.downsample.0" in changed.graph


def test_seed_rules_of_thumb():
    """Two 3x3 convs: 18C^2 params vs 25C^2 for a 5x5; SE adds under 1% MACs to a ResNet block;
    depthwise-separable costs (9C + C^2)HW MACs vs 9C^2HW."""
    c, hw = 32, 8

    def params(make):
        b = GraphBuilder((c, hw, hw))
        return count(b.build(make(b, b.input)))

    two3 = params(lambda b, x: blocks.conv(b, blocks.conv(b, x, c, 3, name="a"), c, 3, name="b"))
    one5 = params(lambda b, x: blocks.conv(b, x, c, 5))
    assert (two3.params, one5.params) == (18 * c * c, 25 * c * c)
    sep = params(lambda b, x: blocks.conv(b, blocks.dwconv(b, x, 3, name="dw"), c, 1, name="pw"))
    assert sep.macs == (9 * c + c * c) * hw * hw
    plain = params(lambda b, x: blocks.bottleneck(b, x, 64, 256, 1))
    se = params(lambda b, x: blocks.bottleneck(b, x, 64, 256, 1, se=16))
    assert 0 < se.macs - plain.macs < 0.01 * plain.macs
