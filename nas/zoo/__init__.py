"""The zoo: classic networks as fixed genotypes, each recording its source and published figures.

    from nas import zoo
    g = zoo.build("resnet50")          # a Genotype
    zoo.ZOO.get("resnet50").source     # where its figures come from
    zoo.build("seresnet50")            # timm's names are aliases
    zoo.load_weights(compile(g), state_dict, source="timm")   # see nas.zoo.weights
"""
from nas.zoo.registry import ZOO, ZooEntry, build, entry
from nas.zoo.weights import load_weights

# importing a family module registers its entries
from nas.zoo import resnet  # noqa: E402,F401
from nas.zoo import preact, wideresnet, mobilenet, shufflenet, regnet  # noqa: E402,F401
from nas.zoo import lenet, alexnet, vgg, nin, allcnn, inception, squeezenet, xception, densenet  # noqa: E402,F401,E501

__all__ = ["ZOO", "ZooEntry", "build", "entry", "load_weights"]
