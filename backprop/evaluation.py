"""A model's loss and metrics on data, and the regression scores every report shares."""

from __future__ import annotations

from typing import Any

from . import batching
from ._typing import Array
from .layers import chain
from .losses import Loss


def regression_scores(xp: Any, P: Array, T: Array) -> dict[str, Array]:
    """MSE, MAE and R^2 of predictions ``P`` (N, K) against targets ``T`` (N, K), as 0-d arrays.

    Means over samples and outputs; R^2 per output averaged (scikit-learn's
    ``uniform_average``). A constant target scores R^2 = 1 when predicted exactly
    and 0 otherwise, as in scikit-learn. Works on any namespace: device arrays in
    training units, or host arrays in the target's units.

    Each output is first divided by its target's largest magnitude, so that squares of
    targets near the float maximum (1e200 and up) do not overflow: R^2 does not change
    with the scale, and MSE and MAE are scaled back at the end (inf only where the
    error itself exceeds the float range).
    """
    scale = xp.max(xp.abs(T), axis=0)
    scale = xp.where(scale > 0, scale, xp.ones_like(scale))  # (K,)
    D = P / scale - T / scale
    Ts = T / scale
    sq = xp.sum(D * D, axis=0)
    spread = xp.sum((Ts - xp.mean(Ts, axis=0)) ** 2, axis=0)
    exact = xp.astype(sq == 0, sq.dtype)
    r2 = xp.where(spread > 0, 1.0 - sq / xp.where(spread > 0, spread, 1.0), exact)
    n = T.shape[0] * T.shape[1]
    # Means before scaling back: N errors near the float maximum would overflow in the sum.
    return {"mse": xp.sum(sq / n * scale * scale), "mae": xp.sum(xp.sum(xp.abs(D), axis=0) / n * scale),
            "r2": xp.mean(r2)}


def indicator_correct(xp: Any, Z: Array, T: Array, labels: Array | None = None) -> Array:
    """Right classes (a 0-d device array) of outputs ``Z`` (N, K) trained with a squared error
    against class indicators ``T`` (N, K): 0/1 for one output, one-hot rows for several.

    The predicted class is the largest output's, or for one output whether it is above
    1/2: the rule by which reports score such a model (argmax of the class scores).
    ``labels`` is unused: it keeps :meth:`Loss.correct`'s signature.
    """
    if Z.shape[1] == 1:
        return xp.count_nonzero((Z > 0.5) == (T > 0.5))
    return xp.count_nonzero(xp.argmax(Z, axis=1) == xp.argmax(T, axis=1))


def evaluate_arrays(model: Any, X: Array, T: Array, labels: Array | None, loss: Loss,
                    batch_size: int, regression_metrics: bool = False) -> dict[str, float]:
    """Loss (and accuracy, or MAE and R^2) of ``model`` on device arrays ``X`` (N, F), ``T`` (N, K).

    One synchronisation at the end. Regression metrics need the whole prediction,
    so they are computed from the concatenated outputs.
    """
    xp, layers = model.xp, model.trunk(loss)  # called inside model.backend.activate()
    n = X.shape[0]
    batches = batching.spans(n, batch_size)
    values, hits, outputs = [], [], []
    for start, stop in batches:
        Z, _ = chain(layers, X[start:stop, ...], train=False, input_grad=False)  # scores: inference
        T_b = T[start:stop, ...]
        values.append(loss.forward(Z, T_b)[0])
        hits.append(loss.correct(xp, Z, T_b, None if labels is None else labels[start:stop]))
        if regression_metrics and not loss.classification:
            outputs.append(loss.predict(xp, Z))  # what the loss reads the logits as (poisson: exp)
    value, accuracy = batching.means(*batching.totals(xp, values, hits, batches, loss), n, T, loss)
    out = {"loss": value}
    if accuracy is not None:
        out["accuracy"] = accuracy
    if outputs:
        P = outputs[0] if len(outputs) == 1 else xp.concat(outputs, axis=0)
        scores = regression_scores(xp, P, T)
        out["mae"], out["r2"] = float(scores["mae"]), float(scores["r2"])
    return out
