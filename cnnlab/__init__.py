"""cnnlab: hyperparameter experiments on convolutional networks for MNIST.

The arithmetic (``cnnlab.spec.shapes``, ``cnnlab.spec.architecture``, ``cnnlab.spec.conv``) imports no framework;
the rest uses Keras 3, Optuna and MLflow and is imported where it is needed.
"""

from cnnlab.errors import ArchitectureError, CnnlabError, ConfigError, DataError
from cnnlab.spec.architecture import NOTEBOOK_CNN, Architecture, ConvLayer
from cnnlab.spec.conv import conv2d
from cnnlab.spec.shapes import LayerRow, LayerTable
from cnnlab.train.data import MnistSplits, Split, load_mnist, load_test_split

__all__ = [
    "NOTEBOOK_CNN",
    "Architecture",
    "ArchitectureError",
    "CnnlabError",
    "ConfigError",
    "ConvLayer",
    "DataError",
    "LayerRow",
    "LayerTable",
    "MnistSplits",
    "Split",
    "conv2d",
    "load_mnist",
    "load_test_split",
]
__version__ = "0.1.0"
