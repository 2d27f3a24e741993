"""Array-library calls per training step, counted on array-api-strict (a proxy for GPU kernel launches).

    python benchmarks/array_calls.py                      # 64-128-128-128-10, batch 64, Adam
    python benchmarks/array_calls.py --optimizer momentum --by-name

Trains an MLP on the strict device the way ``backprop bench`` does (``Step`` and ``train_epoch``,
through :class:`backprop.apps.bench.BackpropTrainer`) and counts, for ``--steps`` steps after
two untimed ones, every call our code makes into array_api_strict: its namespace functions
(``xp.sum``, ``xp.matmul``, ``xp.zeros`` ...) and the Array operators (``@``, ``+``, ``+=``,
``*``, ``x[i]``, ``x[i] = v`` ...). Only the outermost call counts: what the library does
inside one call is one launch's worth. Reads to the host (``float(x)``, ``bool(x)``) are
counted apart, and metadata (``finfo``, ``isdtype``, ``result_type`` ...) not at all.

The count is split by where the step is, from its public entry points only (so it keeps
working whatever the step does inside them): ``forward`` (in :meth:`Step.gradients` before
the loss), ``loss`` (in the loss's ``forward``), ``backward`` (in ``Step.gradients`` after
it), ``update`` (in :meth:`Step.update`) and ``loop`` (the rest of ``train_epoch``: batch
slices, the hit count, the totals). Then the update's count at 1, 3 and 6 hidden layers,
which a fused update over the flat buffers makes independent of depth.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import types
from collections.abc import Iterator
from typing import Any

NOT_CALLS = frozenset({
    # metadata: no array is made or read
    "finfo", "iinfo", "isdtype", "result_type", "can_cast", "get_array_api_strict_flags",
    "set_array_api_strict_flags", "reset_array_api_strict_flags", "ArrayAPIStrictFlags",
    # Array methods that describe, convert or export rather than compute
    "__new__", "__init__", "__reduce__", "__repr__", "__str__", "__buffer__", "__array__",
    "__array_namespace__", "__dlpack__", "__dlpack_device__", "__iter__", "__hash__", "__len__",
})
READS = frozenset({"__bool__", "__float__", "__int__", "__index__", "__complex__"})
PHASES = ("forward", "loss", "backward", "update", "loop")


def _counted_function(module: types.ModuleType, name: str) -> bool:
    """A public function of the namespace that computes (not metadata)."""
    return (not name.startswith("_") and name not in NOT_CALLS
            and isinstance(getattr(module, name), types.FunctionType))


def _counted_method(name: str, value: Any) -> bool:
    """An operator (or ``to_device``) of the array type, not a description or an export."""
    return callable(value) and name not in NOT_CALLS and (name.startswith("__") or name == "to_device")


class CallCounter:
    """While entered, counts calls into the ``module``'s public functions and the ``array_type``'s
    operator methods (and ``to_device``), outermost calls only, per :attr:`phase`.

    ``counts[(phase, name)]``: calls; ``reads[(phase, name)]``: host reads. Everything patched
    is put back on exit.
    """

    def __init__(self, module: types.ModuleType, array_type: type) -> None:
        self.module, self.array_type = module, array_type
        self.counts: collections.Counter = collections.Counter()
        self.reads: collections.Counter = collections.Counter()
        self.phase = "loop"
        self._depth = 0
        self._saved: list[tuple[Any, str, Any]] = []

    def targets(self) -> list[tuple[Any, str]]:
        """(owner, attribute name) of everything counted."""
        functions = [name for name in dir(self.module) if _counted_function(self.module, name)]
        methods = [name for name, value in vars(self.array_type).items() if _counted_method(name, value)]
        return [(self.module, name) for name in functions] + [(self.array_type, name) for name in methods]

    def _wrap(self, name: str, original: Any) -> Any:
        into = self.reads if name in READS else self.counts

        @functools.wraps(original)
        def counted(*args, **kwargs):
            if self._depth == 0:
                into[(self.phase, name)] += 1
            self._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
        return counted

    def __enter__(self) -> CallCounter:
        for owner, name in self.targets():
            original = vars(owner)[name]
            self._saved.append((owner, name, original))
            setattr(owner, name, self._wrap(name, original))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)

    @contextlib.contextmanager
    def during(self, phase: str) -> Iterator[None]:
        """Count the block's calls under ``phase``, then go back to the phase before."""
        before, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = before

    def total(self, phase: str | None = None) -> int:
        return sum(n for (p, _), n in self.counts.items() if phase in (None, p))


@contextlib.contextmanager
def phases_of(step: Any, counter: CallCounter) -> Iterator[None]:
    """Set ``counter``'s phase from the step's public entry points: :meth:`Step.gradients` (forward,
    then backward once the loss's ``forward`` has returned) and :meth:`Step.update`."""
    gradients, update, loss_forward = step.gradients, step.update, step.loss.forward

    def in_gradients(*args, **kwargs):
        with counter.during("forward"):
            return gradients(*args, **kwargs)

    def in_loss(*args, **kwargs):
        with counter.during("loss"):
            value = loss_forward(*args, **kwargs)
        counter.phase = "backward"  # what gradients does after the loss (undone as gradients returns)
        return value

    def in_update(*args, **kwargs):
        with counter.during("update"):
            return update(*args, **kwargs)

    step.gradients, step.update, step.loss.forward = in_gradients, in_update, in_loss
    try:
        yield
    finally:
        for name in ("gradients", "update"):
            vars(step).pop(name, None)
        vars(step.loss).pop("forward", None)


def count_steps(layers: list[int], batch: int, optimizer: str, steps: int) -> CallCounter:
    """A counter holding the calls of ``steps`` training steps of the MLP ``layers`` on the strict
    device, after two uncounted ones (lazy state is made then)."""
    from array_api_strict._array_object import Array

    from backends import get_backend
    from backprop.apps import bench

    size = bench.custom_size(layers, batch, steps=steps, repeats=1)
    X, labels = bench.synthetic_data(size, 0, 3)
    backend = get_backend("strict")
    settings = bench.OPTIMIZER_SETTINGS[optimizer]
    trainer = bench.BackpropTrainer(backend, size, "relu", "ce", settings, "float32", X, labels, 0)
    trainer.run(bench.batch_spans(size, 3, 2))
    counter = CallCounter(backend.xp, Array)
    with phases_of(trainer.step, counter), counter:
        trainer.run(bench.batch_spans(size, 3, steps))
    return counter


def per_step(counter: CallCounter, steps: int) -> dict[str, float]:
    """Calls per step in each phase and in all, and host reads per step."""
    out = {phase: counter.total(phase) / steps for phase in PHASES}
    out["total"] = counter.total() / steps
    out["reads"] = sum(counter.reads.values()) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="64,128,128,128,10", help="input, hidden..., output widths")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", default="adam", choices=("sgd", "momentum", "adam"))
    parser.add_argument("--steps", type=int, default=10, help="counted steps (the count is per step)")
    parser.add_argument("--by-name", action="store_true", help="also each phase's calls by name")
    args = parser.parse_args()
    layers = [int(w) for w in args.layers.split(",")]
    counter = count_steps(layers, args.batch_size, args.optimizer, args.steps)
    counts = per_step(counter, args.steps)
    print(f"{'-'.join(map(str, layers))}, batch {args.batch_size}, {args.optimizer}: array calls per step "
          "on array-api-strict")
    print("  " + ", ".join(f"{k} {v:g}" for k, v in counts.items()))
    if args.by_name:
        for phase in PHASES:
            names = sorted(((n / args.steps, name) for (p, name), n in counter.counts.items() if p == phase),
                           reverse=True)
            print(f"  {phase}: " + ", ".join(f"{name} {n:g}" for n, name in names))
    print(f"update calls per step by depth ({args.optimizer}, widths {layers[0]}-128...-{layers[-1]}):")
    for hidden in (1, 3, 6):
        deep = [layers[0], *[128] * hidden, layers[-1]]
        counted = count_steps(deep, args.batch_size, args.optimizer, args.steps)
        update = per_step(counted, args.steps)["update"]
        print(f"  {hidden} hidden layer{'s' * (hidden > 1)}: {update:g}")


if __name__ == "__main__":
    main()
