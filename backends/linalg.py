"""Solving a symmetric positive definite system, per array library.

The Array API's ``linalg`` extension has ``cholesky`` but no triangular solve, so a system
(A + μI) x = b that is known to be positive definite (Levenberg–Marquardt's JᵀJ + μI, μ > 0)
would be solved by a general LU ``linalg.solve``: about twice the work of a Cholesky
factorization and two triangular solves. :func:`spd_solve` uses each library's own
(SciPy's ``cho_factor``/``cho_solve`` for NumPy, PyTorch's ``cholesky_ex``/``cholesky_solve``,
CuPy's ``cholesky`` with cupyx's ``solve_triangular``) and says None where it has none or
where the matrix is not numerically positive definite, so the caller falls back to
``linalg.solve``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

Array = Any


def spd_solve(xp: Any, A: Array, B: Array) -> Array | None:
    """X (n, k) with A X = B for symmetric positive definite A (n, n) and B (n, k), or None
    (no Cholesky solve for this library, or A not positive definite in floating point)."""
    if array_api_compat.is_numpy_namespace(xp):
        return _numpy(A, B)
    if array_api_compat.is_torch_namespace(xp):
        return _torch(A, B)
    if array_api_compat.is_cupy_namespace(xp):
        return _cupy(A, B)
    return None


def _numpy(A: Array, B: Array) -> Array | None:
    import numpy as np
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    try:
        factor = cho_factor(A, lower=True, check_finite=False)  # a copy of A: A is left alone
    except LinAlgError:
        return None
    if not np.isfinite(factor[0][-1, -1]):  # LAPACK does not stop at a NaN pivot
        return None
    return cho_solve(factor, B, check_finite=False)


def _torch(A: Array, B: Array) -> Array | None:
    import torch

    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0 or not bool(torch.isfinite(L[-1, -1])):
        return None
    return torch.cholesky_solve(B, L)


def _cupy(A: Array, B: Array) -> Array | None:
    import cupy
    import cupyx
    from cupyx.scipy.linalg import solve_triangular

    try:
        with cupyx.errstate(linalg="raise"):
            L = cupy.linalg.cholesky(A)
    except cupy.linalg.LinAlgError:
        return None
    if not bool(cupy.isfinite(L[-1, -1])):
        return None
    return solve_triangular(L, solve_triangular(L, B, lower=True), lower=True, trans="T")
