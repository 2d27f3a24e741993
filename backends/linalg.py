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
    library = _library(xp)
    L = None if library is None else library.factor(A)
    return None if L is None else library.solve(L, B)


def spd_inverse_trace(xp: Any, A: Array) -> Array | None:
    """tr(A⁻¹), a 0-d array, for symmetric positive definite A (n, n), or None (as
    :func:`spd_solve`)."""
    library = _library(xp)
    L = None if library is None else library.factor(A)
    return None if L is None else library.inverse_trace(L)


def _library(xp: Any) -> Any:
    """The Cholesky routines of ``xp``'s library, or None where it has none here."""
    if array_api_compat.is_numpy_namespace(xp):
        return _NumPy
    if array_api_compat.is_torch_namespace(xp):
        return _Torch
    if array_api_compat.is_cupy_namespace(xp):
        return _CuPy
    return None


class _NumPy:
    """SciPy's LAPACK: potrf, potrs, trtri."""

    @staticmethod
    def factor(A: Array) -> Array | None:
        """The lower Cholesky factor L (a new array: A is left alone), or None."""
        import numpy as np
        from scipy.linalg import LinAlgError, cholesky

        try:
            L = cholesky(A, lower=True, check_finite=False)
        except LinAlgError:
            return None
        return L if np.isfinite(L[-1, -1]) else None  # LAPACK does not stop at a NaN pivot

    @staticmethod
    def solve(L: Array, B: Array) -> Array:
        from scipy.linalg import cho_solve

        return cho_solve((L, True), B, check_finite=False)

    @staticmethod
    def inverse_trace(L: Array) -> Array | None:
        """tr(A⁻¹) = ‖L⁻¹‖²_F, overwriting ``L`` (the caller's own factor)."""
        import numpy as np
        from scipy.linalg import lapack

        # L⁻¹ in L's memory, a third of the work of a solve with I; the sum of squares as one
        # dot product: no new (n, n) array, whose pages cost more than the sum (5 ms an
        # iteration at n = 601)
        inverse, info = lapack.dtrtri(L, lower=1, overwrite_c=1)
        flat = inverse.reshape(-1, order="A")
        return np.dot(flat, flat) if info == 0 else None


class _Torch:
    """PyTorch's ``cholesky_ex``, ``cholesky_solve`` and ``cholesky_inverse``."""

    @staticmethod
    def factor(A: Array) -> Array | None:
        import torch

        L, info = torch.linalg.cholesky_ex(A)
        return L if int(info) == 0 and bool(torch.isfinite(L[-1, -1])) else None

    @staticmethod
    def solve(L: Array, B: Array) -> Array:
        import torch

        return torch.cholesky_solve(B, L)

    @staticmethod
    def inverse_trace(L: Array) -> Array:
        import torch

        return torch.trace(torch.cholesky_inverse(L))


class _CuPy:
    """CuPy's ``cholesky`` (made to raise) with cupyx's ``solve_triangular``."""

    @staticmethod
    def factor(A: Array) -> Array | None:
        import cupy
        import cupyx

        try:
            with cupyx.errstate(linalg="raise"):
                L = cupy.linalg.cholesky(A)
        except cupy.linalg.LinAlgError:
            return None
        return L if bool(cupy.isfinite(L[-1, -1])) else None

    @staticmethod
    def solve(L: Array, B: Array) -> Array:
        from cupyx.scipy.linalg import solve_triangular

        return solve_triangular(L, solve_triangular(L, B, lower=True), lower=True, trans="T")

    @staticmethod
    def inverse_trace(L: Array) -> Array:
        import cupy
        from cupyx.scipy.linalg import solve_triangular

        inverse = solve_triangular(L, cupy.eye(L.shape[0], dtype=L.dtype), lower=True)
        return cupy.sum(inverse * inverse)
