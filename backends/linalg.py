"""Solving a symmetric positive definite system, and the trace of its inverse, per array library.

The Array API's ``linalg`` extension has ``cholesky`` but no triangular solve, so a system
(A + μI) x = b that is known to be positive definite (Levenberg–Marquardt's JᵀJ + μI, μ > 0)
would be solved by a general LU ``linalg.solve``: about twice the work of a Cholesky
factorization and two triangular solves. :func:`spd_solve` uses each library's own
(SciPy's ``cho_factor``/``cho_solve`` for NumPy, PyTorch's ``cholesky_ex``/``cholesky_solve``,
CuPy's ``cholesky`` with cupyx's ``solve_triangular``) and says None where it has none or
where the matrix is not numerically positive definite, so the caller falls back to
``linalg.solve``. :func:`spd_inverse_trace` gives tr(A⁻¹) as ‖L⁻¹‖²_F from the same factor
(Bayesian regularization's effective number of parameters), about two factorizations' work
where an ``eigvalsh`` is about ten.
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


def spd_inverse_trace(xp: Any, A: Array) -> Array | None:
    """tr(A⁻¹), a 0-d array, for symmetric positive definite A (n, n), or None (as
    :func:`spd_solve`)."""
    if array_api_compat.is_numpy_namespace(xp):
        return _numpy_trace(A)
    if array_api_compat.is_torch_namespace(xp):
        return _torch_trace(A)
    if array_api_compat.is_cupy_namespace(xp):
        return _cupy_trace(A)
    return None


def _numpy_trace(A: Array) -> Array | None:
    import numpy as np
    from scipy.linalg import LinAlgError, cholesky, lapack

    try:
        L = cholesky(A, lower=True, check_finite=False)
    except LinAlgError:
        return None
    inverse, info = lapack.dtrtri(L, lower=1, overwrite_c=1)  # L⁻¹: a third of a solve with I
    if info != 0 or not np.isfinite(L[-1, -1]):
        return None
    return np.sum(inverse * inverse)


def _torch_trace(A: Array) -> Array | None:
    import torch

    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0 or not bool(torch.isfinite(L[-1, -1])):
        return None
    return torch.trace(torch.cholesky_inverse(L))


def _cupy_trace(A: Array) -> Array | None:
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
    inverse = solve_triangular(L, cupy.eye(A.shape[0], dtype=A.dtype), lower=True)
    return cupy.sum(inverse * inverse)


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
