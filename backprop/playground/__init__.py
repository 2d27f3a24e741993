"""``backprop playground``: a local page that trains the real network while you watch.

TensorFlow Playground's page, with this project's trainer behind it: the same
hand-written backpropagation, optimizers (Levenberg–Marquardt and L-BFGS included),
devices and checkpoints as ``backprop train``. :mod:`.server` serves the page and its
API, :mod:`.session` runs one page's training, :mod:`.views` computes what it draws.
"""

from .server import PlaygroundServer, make_server

__all__ = ["PlaygroundServer", "make_server"]
