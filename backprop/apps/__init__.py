"""Applications of the library: the training run (``backprop train`` without the printing),
the scikit-learn estimators and ``backprop bench``. The command line and the playground
are applications too, in folders of their own."""
