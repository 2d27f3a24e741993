"""backprop: neural networks trained by hand-written backpropagation.

The forward and backward passes are written once against the Python Array API
standard, so the same code trains on NumPy (CPU) and CuPy (NVIDIA GPU).
"""

from backends import BackendUnavailable, available_backends, get_backend

from . import activations, checkpoint, initializers, losses, optimizers, schedules
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .gradcheck import GradcheckResult, gradcheck
from .layers import Dense, Layer
from .losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError, SquaredError
from .model import Sequential, mlp
from .optimizers import SGD, Adam, AdamW, GradientDescent, RMSprop
from .schedules import Constant, Cosine, ExponentialDecay, StepDecay
from .training import EarlyStopping, History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "SGD", "Adam", "AdamW", "BackendUnavailable", "BinaryCrossEntropy", "Constant", "Cosine",
    "CrossEntropy", "Dense", "EarlyStopping", "ExponentialDecay", "GradcheckResult",
    "GradientDescent", "History", "Identity", "Layer", "LeakyReLU", "MeanSquaredError", "RMSprop",
    "ReLU", "Sequential", "Sigmoid", "Softmax", "Softplus", "SquaredError", "StepDecay", "Tanh",
    "TrainingDiverged", "activations", "available_backends", "checkpoint", "get_backend", "gradcheck",
    "initializers", "losses", "mlp", "optimizers", "schedules",
]
