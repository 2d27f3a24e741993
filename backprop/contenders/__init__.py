"""The yardsticks that ``backprop bench --compare`` times beside our own training loop.

Each contender is a whole trainer, not a backend: :mod:`.handwritten` is one
hand-typed NumPy (or CuPy) training step with no layers and no Array API wrapper,
and :mod:`.torch_reference` is the same network trained by PyTorch eager. They
name NumPy, CuPy and torch directly, which is the point of them and also why they
live here, beside the benchmark, and not in the network math (which sees only a
:class:`backends.Backend`).
"""
