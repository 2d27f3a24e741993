"""Optimizers: update parameters in place from their gradients.

``step(params, grads)`` takes two equal-length lists of arrays. State is created
lazily with ``xp.zeros_like`` on the parameters' device. Hyperparameters stay
Python floats: a NumPy scalar would silently turn a CuPy or float32 update into
something else.

Weight decay applies to weight matrices only (``ndim >= 2``), not to biases:
decaying biases only pulls the model towards predicting zero.

The registry (:func:`register`, :func:`names`, :func:`classes`) is the one list of optimizer
names: ``get``, ``fit``, ``Run`` and the CLI's choices, the estimators' ``solver``, checkpoints
and the playground read it, and what an optimizer can do (``full_batch``, ``has_lr``,
``takes_l1``, ``data_parallel``, ``entry_defaults``) is read off its class. The full-batch
classes register in their own modules (``second_order``, ``lbfgs``), which the package
imports; this module imports neither.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
from typing import Any

from array_api_compat import is_array_api_obj

from . import flat as flat_layout
from . import schedules
from ._typing import Array
from .errors import ConfigError
from .namespace import device_of, namespace_of
from .registry import Registry
from .workspace import ops


def positive(value: Any, name: str) -> float:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def non_negative(value: Any, name: str) -> float:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and value >= 0):
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def fraction(value: Any, name: str, *, zero: bool = True) -> float:
    """``value`` as a float in [0, 1) (``zero=False``: in (0, 1)): a decay rate such as a beta."""
    low_ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        value >= 0 if zero else value > 0)
    if not (low_ok and value < 1):
        raise ConfigError(f"{name} must be in {'[0' if zero else '(0'}, 1), got {value!r}")
    return float(value)


def count(value: Any, name: str) -> int:
    """``value`` as a positive integer (a size or a limit)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def penalized(p: Array) -> bool:
    """Whether weight decay and L1 reach the parameter ``p``: weight matrices and kernels
    (``ndim >= 2``), not biases. The one place of this rule."""
    return p.ndim >= 2


class FlatUpdate:
    """What the update over the flat buffers keeps between steps (never saved: rebuilt from the
    optimizer's ``state`` whenever that list is set anew): the state's slots as (P,) buffers whose
    views are ``state``, that list, the weight entries as a (P,) mask, vectors that are a
    penalty's value on the weights and zero elsewhere, and scratch arrays for temporaries."""

    def __init__(self, xp: Any, params: list[Array], slots: dict[str, Array], state: list[dict]) -> None:
        self.xp, self.slots, self.state, self.dtype = xp, slots, state, params[0].dtype
        self.mask = flat_layout.flatten(
            xp, [(xp.ones if penalized(p) else xp.zeros)(p.shape, dtype=xp.bool, device=device_of(p))
                 for p in params])
        self._vectors: dict[str, tuple[float, float, Array]] = {}
        self._scratch: dict[str, Array] = {}

    def on_weights(self, name: str, value: float, elsewhere: float = 0.0) -> Array:
        """(P,): ``value`` on the weight entries, ``elsewhere`` on the others (exactly those
        floats, so a product with it rounds as the scalar's would). Kept while ``value`` is."""
        held = self._vectors.get(name)
        if held is None or held[:2] != (value, elsewhere):
            xp, device = self.xp, device_of(self.mask)
            vector = xp.where(self.mask, xp.asarray(value, dtype=self.dtype, device=device),
                              xp.asarray(elsewhere, dtype=self.dtype, device=device))
            held = self._vectors[name] = (value, elsewhere, vector)
        return held[2]

    def scratch(self, name: str, like: Array) -> Array:
        """A (P,) array for temporaries, the same one at every step."""
        buffer = self._scratch.get(name)
        if buffer is None:
            buffer = self._scratch[name] = self.xp.empty_like(like)
        return buffer


class Optimizer:
    """Base class.

    Parameters
    ----------
    lr : float
        Base learning rate.
    weight_decay : float
        L2 penalty coefficient: adds ``weight_decay * W`` to each weight matrix's
        gradient (AdamW instead decays the weights directly).
    l1 : float
        L1 penalty coefficient: adds ``l1 * sign(W)`` to each weight matrix's gradient
        (the subgradient of ``l1 * |W|``, as TensorFlow Playground's L1). Biases are not
        penalized by either.
    schedule : str or Schedule
        How the rate changes per epoch (see :mod:`backprop.schedules`).

    Capabilities (class attributes), read by every entry point (``fit``, ``Run`` and the
    CLI, the estimators, the playground) instead of lists of names:

    - ``full_batch``: trains on the whole training set, one of its own iterations per epoch
      (see :class:`backprop.second_order.FullBatch`);
    - ``has_lr``: takes a learning rate and a schedule;
    - ``takes_l1``: takes an L1 penalty (a full-batch method needs a smooth loss);
    - ``data_parallel``: trains data-parallel over ranks;
    - ``entry_defaults``: the run settings (``dtype``, ``early_stopping``, ``loss``,
      ``epochs``, ``batch_size``) that ``Run`` and the CLI start from with this optimizer
      unless given (``loss`` replaces ``"auto"`` only); ``model.fit`` keeps its own.

    What it refuses, it refuses once, here: :meth:`refusal`.
    """

    name = "?"
    default_lr = 0.01
    coupled_decay = True  # L2 added to the gradient; AdamW decays the weights instead
    full_batch = False
    has_lr = True
    takes_l1 = True
    takes_weight_decay = True  # False: the method sets its own (Bayesian regularization)
    data_parallel = True
    entry_defaults: dict[str, Any] = {}

    @classmethod
    def refusal(cls, setting: str, name: str | None = None) -> str | None:
        """Why this optimizer (called ``name``, its own name by default) refuses ``setting``:
        ``"lr"``, ``"schedule"``, ``"l1"`` or ``"ranks"`` (more than one); one line, or None."""
        name = name or cls.name
        if setting == "lr" and not cls.has_lr:
            return (f"{name} has no learning rate: its step comes from the damping or the line search; "
                    "drop lr")
        if setting == "schedule" and not cls.has_lr:
            return f"{name} has no learning rate to schedule: drop schedule"
        if setting == "l1" and not cls.takes_l1:
            return (f"{name} has no L1 penalty (its loss must be smooth): set l1 to 0, or use "
                    "weight_decay (L2)")
        if setting == "ranks" and not cls.data_parallel:
            return (f"{name} does not train data-parallel (it forms its step from the whole batch on one "
                    f"process): use one that does ({', '.join(names(data_parallel=True))}), or train "
                    "on one process")
        return None

    def step_work(self, batch: int, model: Any) -> int:
        """The multiply-adds of one of this optimizer's steps of ``model`` on ``batch`` samples, to
        the order the CPU thread rule reads (:func:`backends.machine.step_threads`): the forward
        pass's (``model.multiply_adds()`` a sample); a method that does more per step says so."""
        return batch * model.multiply_adds()

    @classmethod
    def entry_notes(cls, settings: dict[str, Any]) -> list[str]:
        """One-line remarks a run with ``settings`` shows when it starts with this optimizer."""
        return []

    def _refuse(self, lr: Any, l1: Any, schedule: Any) -> None:
        """Raise the refusal of the first given setting this optimizer does not take."""
        unscheduled = schedule is None or str(getattr(schedule, "name", schedule)) == "constant"
        for setting, given in (("l1", bool(l1)), ("lr", lr is not None), ("schedule", not unscheduled)):
            reason = self.refusal(setting) if given else None
            if reason:
                raise ConfigError(reason)

    def __init__(self, lr: float | None = None, *, weight_decay: float = 0.0, l1: float = 0.0,
                 schedule: str | schedules.Schedule | None = None) -> None:
        self._refuse(lr, l1, None)
        self.base_lr = self.lr = positive(self.default_lr if lr is None else lr, "learning rate")
        self.weight_decay = non_negative(weight_decay, "weight_decay")
        self.l1 = non_negative(l1, "l1")
        self.schedule = schedules.get(schedule)
        self.t = 0  # steps taken
        self.state: list[dict[str, Array]] = []
        self._ids: tuple[int, ...] = ()  # which arrays the state belongs to
        self._flat: FlatUpdate | None = None  # the state laid out flat (see _flat_ready)
        self.owner: str | None = None  # the model this optimizer trains (see bind)

    def update_settings(self, *, lr: float | None = None, weight_decay: float | None = None,
                        schedule: Any = None, l1: float | None = None) -> Optimizer:
        """Change the rate, decays or schedule in place (the state is kept); returns self."""
        self._refuse(lr, l1, schedule)
        if not self.has_lr:
            schedule = None  # constant: there is no rate to change
        if lr is not None:
            self.base_lr = self.lr = positive(lr, "learning rate")
        if weight_decay is not None:
            self.weight_decay = non_negative(weight_decay, "weight_decay")
        if l1 is not None:
            self.l1 = non_negative(l1, "l1")
        if schedule is not None:
            self.schedule = schedules.get(schedule)
        return self

    def reset(self, *, keep_owner: bool = False) -> None:
        """Forget the state (moments, velocities, step count) and, unless ``keep_owner``,
        which model it trains."""
        self.state, self.t, self._ids, self._flat = [], 0, (), None
        if not keep_owner:
            self.owner = None

    def bind(self, owner: str) -> Optimizer:
        """Make this optimizer the one of the model whose ``uid`` is ``owner``; returns self.

        Its moments belong to one model's parameters: two models of the same shape
        sharing it would silently mix their updates, so that is refused.
        """
        if self.owner is not None and self.owner != owner:
            raise ConfigError("this optimizer already trains another model: create one optimizer per "
                              "model (or call optimizer.reset() to forget the other model)")
        self.owner = owner
        return self

    def same_rule(self, other: Optimizer) -> bool:
        """Whether ``other`` updates by the same rule (class and settings), rate, decay and
        schedule aside: what a resumed run may continue with its saved moments."""
        def rule(opt: Optimizer) -> dict:
            changing = ("lr", "weight_decay", "l1", "schedule", *getattr(opt, "evolving", ()))
            return {k: v for k, v in opt.config().items() if k not in changing}

        return type(self) is type(other) and rule(self) == rule(other)

    def moved(self, move: Any, owner: str | None) -> Optimizer:
        """A copy whose state arrays are ``move(list_of_arrays)`` and which belongs to ``owner``.

        The one rule for every optimizer, full-batch ones included: the arrays it keeps
        between steps live in ``state`` (moved by ``model.to()``, host copies in pickles,
        saved by checkpoints); anything else it holds is Python numbers. An array anywhere
        else would ride shallowly into a pickle on its device, so it is refused here."""
        stray = sorted(k for k, v in vars(self).items()
                       if k != "state" and is_array_api_obj(v) and not isinstance(v, numbers.Number))
        if stray:  # a bug in an optimizer class, not the user's doing
            raise TypeError(f"{type(self).__name__} keeps arrays outside its state: {', '.join(stray)}")
        new = copy.copy(self)
        new.schedule = copy.deepcopy(self.schedule)
        new.state = [dict(zip(slots, move(list(slots.values())))) for slots in self.state]
        new._ids, new.owner, new._flat = (), owner, None
        return new

    def __getstate__(self) -> dict:
        state = dict(vars(self))
        state["_flat"] = None  # device buffers, rebuilt from ``state`` at the next step
        return state

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        vars(self).setdefault("_flat", None)  # pickled before the flat update existed

    def set_epoch(self, epoch: int) -> float:
        """Set the learning rate for ``epoch`` (0-based, counted across fits); returns it."""
        self.lr = float(self.schedule(self.base_lr, epoch))
        return self.lr

    def step(self, params: list[Array], grads: list[Array],
             flat: tuple[Array, Array] | None = None) -> None:
        """Update every parameter in place from its gradient.

        ``flat``: ``(theta, gradient)``, the (P,) buffers whose views ``params`` and ``grads``
        are (the model's, see :meth:`Sequential.flat_pair`). Given them, an optimizer with a
        fused rule updates everything in a constant number of array operations, whatever
        the depth; the per-array loop is the reference it equals (``tests/test_fused_update``).
        """
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")  # a caller's bug
        if not params:
            return
        xp = namespace_of(params[0])
        if not self.state:
            self.state = [self._init_state(xp, p) for p in params]
            self._ids = tuple(map(id, params))
        elif tuple(map(id, params)) != self._ids:
            self._check_owner(params)
        self.t += 1
        if flat is not None and self.fused and self._flat_ready(xp, params):
            self._fused_step(*flat)
        else:
            self._per_array(xp, params, grads)

    def _per_array(self, xp: Any, params: list[Array], grads: list[Array]) -> None:
        """The rule array by array, the penalties on the weight matrices: the reference."""
        for p, g, s in zip(params, grads, self.state):
            if self.weight_decay and penalized(p) and self.coupled_decay:
                g = g + self.weight_decay * p
            if self.l1 and penalized(p):
                g = g + self.l1 * xp.sign(p)
            self._update(xp, p, g, s)

    # -- the update over the flat buffers -----------------------------------------
    def _flat_ready(self, xp: Any, params: list[Array]) -> bool:
        """Whether the state's arrays are views of one (P,) buffer per slot, laying them out so
        when they are not: the first step, or a ``state`` list set anew (checkpoints, ``to()``,
        replicas and pickles replace the list as a whole; its identity is the test, a
        microsecond cheaper per step than its arrays')."""
        if self._flat is not None and self._flat.state is self.state:
            return True
        self._flat = None
        keys = list(self.state[0])
        if any(list(s) != keys for s in self.state):
            return False  # slots differ between parameters: the per-array loop
        slots = {}
        for k in keys:
            packed = flat_layout.pack(xp, [s[k] for s in self.state])
            if packed is None:
                return False  # slices are not views here
            slots[k], views = packed
            for s, view in zip(self.state, views):
                s[k] = view
        self._flat = FlatUpdate(xp, params, slots, self.state)
        return True

    def _fused_step(self, theta: Array, grad: Array) -> None:
        """The penalties as (P,) vectors that are zero on the biases, then :meth:`_fused`."""
        fl, into = self._flat, ops(theta)
        g = grad  # the model's gradient buffer: read, never written
        if self.weight_decay and self.coupled_decay:
            g = into.multiply(theta, fl.on_weights("decay", self.weight_decay), out=fl.scratch("g", theta))
            g = into.add(grad, g, out=g)
        if self.l1:  # the sign in the rule's temporary, which the rule overwrites after
            sign = into.sign(theta, out=fl.scratch("a", theta))
            sign *= fl.on_weights("l1", self.l1)
            g = into.add(g, sign, out=fl.scratch("g", theta))
        self._fused(into, theta, g, fl.slots, fl)

    _fused: Any = None
    """``_fused(into, p, g, slots, flat)``: the rule over the flat buffers, with ``into``'s ``out=``
    operations and one ``flat.scratch("a", p)`` temporary (a copy of the parameters in memory,
    two with a penalty); the same arithmetic, in the same order, as :meth:`_update`. A class
    without it (a user's, say) takes the per-array loop."""

    @property
    def fused(self) -> bool:
        """Whether this optimizer updates the flat buffers at once (has a :attr:`_fused`)."""
        return self._fused is not None

    def _check_owner(self, params: list[Array]) -> None:
        # New arrays (a copied or unpickled model): fine when they are shaped like the state's.
        held = [tuple(next(iter(s.values())).shape) for s in self.state if s]
        given = [tuple(p.shape) for p, s in zip(params, self.state) if s]
        if len(params) != len(self.state) or held != given:
            raise ConfigError(
                "this optimizer holds state for another model's parameters: create one "
                "optimizer per model (or call optimizer.reset())"
            )
        self._ids = tuple(map(id, params))

    def _init_state(self, xp: Any, p: Array) -> dict[str, Array]:
        return {}

    def _update(self, xp: Any, p: Array, g: Array, s: dict[str, Array]) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        extra = {"l1": self.l1} if self.l1 else {}  # absent when unused: older checkpoints read the same
        return {"lr": self.base_lr, "weight_decay": self.weight_decay, **extra,
                "schedule": self.schedule.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class GradientDescent(Optimizer):
    """Plain gradient descent: p -= lr * g."""

    name = "gd"
    default_lr = 0.1

    def _update(self, xp: Any, p: Array, g: Array, s: dict) -> None:
        p -= self.lr * g

    def _fused(self, into: Any, p: Array, g: Array, slots: dict, flat: FlatUpdate) -> None:
        p -= into.multiply(g, self.lr, out=flat.scratch("a", p))


class SGD(Optimizer):
    """SGD with momentum, PyTorch's form: v = mu v + g; p -= lr v.

    With ``nesterov=True``: p -= lr (g + mu v), the look-ahead gradient
    (Sutskever et al. 2013). Keeping ``lr`` outside the velocity means a schedule's
    new rate takes effect at once instead of after the velocity decays.
    """

    name = "sgd"
    default_lr = 0.01

    def __init__(self, lr: float | None = None, momentum: float = 0.0, *, nesterov: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.momentum = fraction(momentum, "momentum")
        if not isinstance(nesterov, bool):
            raise ConfigError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        self.nesterov = nesterov

    def config(self) -> dict:
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _init_state(self, xp: Any, p: Array) -> dict:
        return {"v": xp.zeros_like(p)} if self.momentum else {}

    def _update(self, xp: Any, p: Array, g: Array, s: dict) -> None:
        if not self.momentum:
            p -= self.lr * g
            return
        v = s["v"]
        v *= self.momentum
        v += g
        if self.nesterov:
            p -= self.lr * (g + self.momentum * v)
        else:
            p -= self.lr * v

    def _fused(self, into: Any, p: Array, g: Array, slots: dict, flat: FlatUpdate) -> None:
        a = flat.scratch("a", p)
        if not self.momentum:
            p -= into.multiply(g, self.lr, out=a)
            return
        v = slots["v"]
        v *= self.momentum
        v += g
        if self.nesterov:
            a = into.multiply(v, self.momentum, out=a)
            a += g
            a *= self.lr
        else:
            a = into.multiply(v, self.lr, out=a)
        p -= a


class RMSprop(Optimizer):
    """RMSprop (Hinton): s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps).

    rho = 0.9 is Hinton's and Keras's default (PyTorch's is 0.99); eps sits outside
    the square root, as in PyTorch."""

    name = "rmsprop"
    default_lr = 0.001

    def __init__(self, lr: float | None = None, rho: float = 0.9, eps: float = 1e-8,
                 **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.rho, self.eps = fraction(rho, "rho", zero=False), positive(eps, "eps")

    def config(self) -> dict:
        return {**super().config(), "rho": self.rho, "eps": self.eps}

    def _init_state(self, xp: Any, p: Array) -> dict:
        return {"s": xp.zeros_like(p)}

    def _update(self, xp: Any, p: Array, g: Array, s: dict) -> None:
        sq = s["s"]
        sq *= self.rho
        sq += (1.0 - self.rho) * (g * g)
        p -= self.lr * (g / (xp.sqrt(sq) + self.eps))  # PyTorch's order (addcdiv)

    def _fused(self, into: Any, p: Array, g: Array, slots: dict, flat: FlatUpdate) -> None:
        sq, a = slots["s"], flat.scratch("a", p)
        sq *= self.rho
        a = into.multiply(g, g, out=a)
        a *= 1.0 - self.rho
        sq += a
        a = into.sqrt(sq, out=a)
        a += self.eps
        a = into.divide(g, a, out=a)
        a *= self.lr
        p -= a


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, in PyTorch's arrangement:
    p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    name = "adam"
    default_lr = 0.001

    def __init__(self, lr: float | None = None, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.beta1, self.beta2 = fraction(beta1, "beta1"), fraction(beta2, "beta2")
        self.eps = positive(eps, "eps")  # eps <= 0 divides by zero where v is 0

    def config(self) -> dict:
        return {**super().config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _init_state(self, xp: Any, p: Array) -> dict:
        return {"m": xp.zeros_like(p), "v": xp.zeros_like(p)}

    def _update(self, xp: Any, p: Array, g: Array, s: dict) -> None:
        b1, b2 = self.beta1, self.beta2
        m, v = s["m"], s["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        step = self.lr / (1.0 - b1**self.t)
        root_bc2 = math.sqrt(1.0 - b2**self.t)
        p -= step * (m / (xp.sqrt(v) / root_bc2 + self.eps))  # PyTorch's order (addcdiv)

    def _fused(self, into: Any, p: Array, g: Array, slots: dict, flat: FlatUpdate) -> None:
        if self.weight_decay and not self.coupled_decay:  # AdamW: the weights decay first
            p *= flat.on_weights("shrink", 1.0 - self.lr * self.weight_decay, elsewhere=1.0)
        b1, b2 = self.beta1, self.beta2
        m, v, a = slots["m"], slots["v"], flat.scratch("a", p)
        m *= b1
        m += into.multiply(g, 1.0 - b1, out=a)
        v *= b2
        a = into.multiply(g, g, out=a)
        a *= 1.0 - b2
        v += a
        a = into.sqrt(v, out=a)
        a /= math.sqrt(1.0 - b2**self.t)
        a += self.eps
        a = into.divide(m, a, out=a)
        a *= self.lr / (1.0 - b1**self.t)
        p -= a


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019):
    W -= lr * weight_decay * W before the Adam step, for weight matrices."""

    name = "adamw"
    coupled_decay = False

    def __init__(self, lr: float | None = None, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, *, weight_decay: float = 0.01, **kwargs: Any) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay=weight_decay, **kwargs)

    def _update(self, xp: Any, p: Array, g: Array, s: dict) -> None:
        if self.weight_decay and penalized(p):
            p *= 1.0 - self.lr * self.weight_decay
        super()._update(xp, p, g, s)


REGISTRY = Registry("optimizer", Optimizer, "backprop.optimizers.register")
"""Every optimizer by the name :func:`get` takes: its class and the settings the name implies."""


def register(name: str, cls: type[Optimizer], *, aliases: tuple[str, ...] = (), **implied: Any) -> None:
    """Make ``cls`` (a subclass of :class:`Optimizer`) the optimizer called ``name`` everywhere:
    :func:`get`, ``model.fit(optimizer=name)``, ``Run``/``backprop train --optimizer``, the
    estimators' ``solver``, the playground and checkpoints. ``implied``: constructor settings
    the name implies (``register("momentum", SGD, momentum=0.9)``); ``aliases``: other names
    :func:`get` accepts for it. A class that does not set its own ``name`` gets ``name``:
    checkpoints save and load an optimizer by its class's name."""
    REGISTRY.register(name, cls, aliases=aliases, **implied)


def names(**capabilities: Any) -> tuple[str, ...]:
    """The registered names, in registration order, of the optimizers with these capabilities
    (``names(full_batch=True)``; see :class:`Optimizer`)."""
    return REGISTRY.names(**capabilities)


def classes() -> dict[str, type[Optimizer]]:
    """Every registered class by its own ``name``: what a checkpoint saves and loads by."""
    return REGISTRY.classes()


def __getattr__(attr: str) -> Any:
    if attr == "NAMES":  # computed: an optimizer registered later is in it too
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def class_of(name: str) -> type[Optimizer]:
    """The class of the optimizer called ``name`` (or an alias), for its capabilities."""
    return REGISTRY.class_of(name)


register("gd", GradientDescent)
register("sgd", SGD)
register("momentum", SGD, momentum=0.9)
register("nesterov", SGD, momentum=0.9, nesterov=True)
register("rmsprop", RMSprop)
register("adam", Adam)
register("adamw", AdamW)
# The full-batch ones register in their own modules (second_order, lbfgs), which the package
# imports: this module imports none of them, so there is no import cycle through training.


def settings(optimizer: str | Optimizer) -> list[str]:
    """The keyword settings the optimizer called ``optimizer`` (or of its class) takes, read off
    its constructors: the one list a caller checks names against."""
    cls = type(optimizer) if isinstance(optimizer, Optimizer) else REGISTRY.class_of(optimizer)
    # lr and l1 dropped where refused (no rate, a smooth loss); a schedule of "constant" is taken
    return [k for k in _constructor_names(cls) if k not in ("lr", "l1") or not cls.refusal(k)]


def _constructor_names(cls: type) -> list[str]:
    """Every keyword the constructors along ``cls``'s MRO name (refused ones included)."""
    keys: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or not issubclass(klass, Optimizer):
            continue
        for p in inspect.signature(vars(klass)["__init__"]).parameters.values():
            named = p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
            if named and p.name not in keys:
                keys.append(p.name)
    return keys


def get(optimizer: str | Optimizer, lr: float | None = None, **kwargs: Any) -> Optimizer:
    """An optimizer from its name, or the optimizer itself.

    Names: see :func:`names` (``sgd`` has no momentum, ``momentum`` and ``nesterov``
    0.9). ``kwargs`` go to the constructor (``weight_decay``, ``schedule``,
    ``momentum``...); one it does not take is refused with the ones it does.
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    cls, implied = REGISTRY.entry(optimizer)
    # A keyword some constructor names but refuses (l1 for a full-batch method) gets that
    # constructor's own reason; one nobody names gets the list.
    unknown = [k for k in kwargs if k not in _constructor_names(cls)]
    if unknown:
        raise ConfigError(f"optimizer {optimizer!r} has no setting {', '.join(map(repr, unknown))}: its "
                          f"settings are {', '.join(settings(optimizer))}")
    return cls(lr, **{**implied, **kwargs})
