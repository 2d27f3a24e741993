"""backprop: neural networks trained by hand-written backpropagation.

The forward and backward passes are written once against the Python Array API
standard, so the same code trains on NumPy (CPU) and CuPy (NVIDIA GPU).
"""

from backends import BackendError, BackendUnavailable, available_backends, get_backend

from . import activations, checkpoint, hessian, initializers, jacobian, losses, optimizers, schedules
from ._version import __version__
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .errors import BackpropError, CheckpointError, ConfigError, DataError
from .gradcheck import GradcheckResult, gradcheck
from .layers import Dense, Layer
from .lbfgs import LBFGS
from .losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError, SquaredError
from .model import Sequential, mlp
from .optimizers import SGD, Adam, AdamW, GradientDescent, RMSprop
from .runner import Run, run
from .schedules import Constant, Cosine, ExponentialDecay, StepDecay
from .second_order import LevenbergMarquardt, Newton
from .step import Step
from .training import EPOCH_KEYS, EarlyStopping, FitState, History, TrainingDiverged

__all__ = [
    "EPOCH_KEYS", "SGD", "Adam", "AdamW", "BackendError", "BackendUnavailable", "BackpropError",
    "BinaryCrossEntropy", "CheckpointError", "ConfigError", "Constant", "Cosine", "CrossEntropy",
    "DataError", "Dense", "EarlyStopping", "ExponentialDecay", "FitState", "GradcheckResult",
    "GradientDescent", "History", "LBFGS", "LevenbergMarquardt", "Newton", "Identity", "Layer",
    "LeakyReLU", "MeanSquaredError", "RMSprop", "ReLU", "Run", "Sequential", "Sigmoid", "Softmax",
    "Softplus", "SquaredError", "Step", "StepDecay", "Tanh", "TrainingDiverged", "__version__",
    "activations", "available_backends", "checkpoint", "get_backend", "gradcheck", "hessian",
    "initializers", "jacobian", "losses", "mlp", "optimizers", "run", "schedules",
]
