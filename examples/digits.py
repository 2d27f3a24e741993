"""Train an MLP on scikit-learn's bundled 8x8 digits and report test accuracy.

    python examples/digits.py                  # NumPy on the CPU
    python examples/digits.py --device cuda    # CuPy on the GPU
"""

from __future__ import annotations

import argparse
import time

import backprop as bp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, torch, ... (default cpu)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("this example needs scikit-learn (its bundled digits): "
                         "pip install scikit-learn") from None

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    try:
        model = bp.mlp([64, 128, 10], activation="relu", output="softmax", device=args.device,
                       seed=args.seed)
    except (bp.BackendUnavailable, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"{model.backend.label}: {model.n_params} parameters, {len(X_train)} training digits")

    def report(record, _model):
        print(f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
              f"acc {record['train_accuracy']:.3f}  val_loss {record['val_loss']:.4f}  "
              f"val_acc {record['val_accuracy']:.3f}")

    started = time.perf_counter()
    model.fit(X_train, y_train, optimizer="adam", lr=1e-3, epochs=args.epochs, batch_size=32,
              validation_split=0.1, early_stopping=8, callbacks=[report])
    scores = model.evaluate(X_test, y_test)
    print(f"test accuracy {scores['accuracy']:.4f}, test loss {scores['loss']:.4f} "
          f"({time.perf_counter() - started:.2f} s)")


if __name__ == "__main__":
    main()
