"""backprop: neural networks trained by hand-written backpropagation.

The forward and backward passes are written once against the Python Array API
standard, so the same code trains on NumPy (CPU) and CuPy (NVIDIA GPU).
"""

from backends import BackendError, BackendUnavailable, available_backends, get_backend

from . import _moved, activations, hessian, initializers, jacobian, losses, optimizers, schedules
from ._version import __version__
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh

# The modules bp exposed before the tiers became folders stay attributes (bp.runner.DEFAULTS...).
from .apps import runner as runner
from .apps.onnx_export import export_onnx
from .apps.runner import Run, run
from .callbacks import Callback
from .conv import Conv1D, Conv2D
from .dropout import Dropout
from .edges import checkpoint
from .edges import datafiles as datafiles
from .edges import datasets as datasets
from .edges import features as features
from .edges import heads as heads
from .edges import preprocessing as preprocessing
from .edges import weights as weights
from .errors import BackpropError, CheckpointError, ConfigError, DataError
from .host import distributed as distributed
from .host import lbfgs as lbfgs
from .host.gradcheck import GradcheckResult, gradcheck
from .host.lbfgs import LBFGS
from .layers import Dense, Layer
from .losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError, SquaredError
from .model import Sequential, mlp
from .normalization import BatchNorm, LayerNorm
from .optimizers import SGD, Adam, AdamW, GradientDescent, RMSprop
from .pooling import AvgPool1D, AvgPool2D, GlobalAvgPool1D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from .reshape import Flatten, Reshape
from .residual import Residual
from .schedules import Constant, Cosine, ExponentialDecay, StepDecay
from .second_order import LevenbergMarquardt, Newton
from .step import Step
from .training import EPOCH_KEYS, EarlyStopping, FitState, History, TrainingDiverged

__all__ = [
    "EPOCH_KEYS", "SGD", "Adam", "AdamW", "BackendError", "BackendUnavailable", "BackpropError",
    "BinaryCrossEntropy", "Callback", "CheckpointError", "ConfigError", "Constant", "Cosine", "CrossEntropy",
    "Conv1D", "Conv2D",
    "DataError", "Dense", "Dropout", "EarlyStopping", "ExponentialDecay", "FitState", "GradcheckResult",
    "Flatten", "GradientDescent", "History", "LBFGS", "LevenbergMarquardt", "Newton", "Identity", "Layer",
    "LeakyReLU", "MeanSquaredError", "RMSprop", "ReLU", "Reshape", "Run", "Sequential", "Sigmoid", "Softmax",
    "Softplus", "SquaredError", "Step", "StepDecay", "Tanh", "TrainingDiverged", "__version__",
    "activations", "available_backends", "checkpoint", "get_backend", "gradcheck", "hessian",
    "initializers", "jacobian", "losses", "mlp", "optimizers", "run", "schedules",
    "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "MaxPool1D", "MaxPool2D",
    "BatchNorm", "LayerNorm", "Residual", "export_onnx",
]

_moved.install()  # the import paths modules had before the tiers became folders
