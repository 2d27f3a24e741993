"""Communicators: what data-parallel training needs from MPI or NCCL, and nothing else.

A :class:`Communicator` sums one flat gradient buffer across processes
(:meth:`~Communicator.allreduce`), sums small host vectors (the per-epoch totals),
broadcasts Python objects from rank 0, and ends the whole job (:meth:`~Communicator.abort`).
Three implementations, so that the training code has one path:

``Solo``
    One process: every collective is the identity. What a 1-rank run and the tests use.
``MPIComm``
    mpi4py over any MPI (MPICH from the package index by default). NumPy buffers
    are reduced in place; any other library's buffer (CuPy on a GPU, torch) is staged
    through the host, which costs a device synchronisation and two P-sized copies per
    step.
``NCCLComm``
    NCCL through ``cupy.cuda.nccl`` for CuPy buffers: the all-reduce is queued on the
    current CUDA stream like a kernel, so a GPU step stays asynchronous and the loop keeps
    its one synchronisation per epoch. The small host reductions and broadcasts go over
    MPI, which also shares the NCCL id. One GPU per rank, chosen from the node-local rank.

This module names mpi4py, NumPy and CuPy, which is why it sits in ``backends``.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import numpy as np

from .base import BackendUnavailable
from .extras import install_hint
from .host import to_numpy_any

LAUNCH_HINT = ("launch one process per rank with: mpiexec -n N python -m mpi4py -m backprop train ... "
               "--distributed")
def install_mpi_hint() -> str:
    return f"{install_hint('mpi')}; any other MPI that mpi4py is built against works too"


class Communicator:
    """Base class: one process of ``size``; ``rank`` 0 is the one that reports and saves.

    Attributes
    ----------
    rank, size : int
        This process's place in the job and the number of processes.
    local_rank : int
        Its place among the processes on the same machine (which GPU it takes).
    name : str
        ``"solo"``, ``"mpi"`` or ``"nccl"``: the path the gradient all-reduce takes.
    """

    name = "solo"
    rank, size, local_rank = 0, 1, 0

    @property
    def root(self) -> bool:
        """This is rank 0: it prints, saves checkpoints and draws plots."""
        return self.rank == 0

    def allreduce(self, buffer: Any) -> Any:
        """Sum ``buffer`` (P,), a contiguous device or host vector, over every rank, in place.

        Returns the buffer holding the sum (the same array where the library allows it).
        """
        return buffer

    def allreduce_host(self, values: np.ndarray) -> np.ndarray:
        """The sum over every rank of a small float64 host vector (a new array)."""
        return np.array(values, dtype=np.float64)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on some rank (a collective decision)."""
        return bool(flag)

    def bcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (pickled) on every rank."""
        return obj

    def allgather(self, obj: Any) -> list:
        """Every rank's ``obj`` (pickled, so of any size), in rank order, on every rank."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    def abort(self, code: int = 1) -> None:
        """End every process of the job now with exit status ``code`` (no clean-up)."""
        sys.exit(code)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rank {self.rank} of {self.size}>"


class Solo(Communicator):
    """One process: the collectives are the identity."""


def _mpi() -> Any:
    """mpi4py's ``MPI`` module (initialising MPI), or BackendUnavailable saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise BackendUnavailable(f"distributed training needs mpi4py and an MPI: {install_mpi_hint()}; then "
                                 f"{LAUNCH_HINT}") from None
    except Exception as exc:  # a broken MPI library fails at import time
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BackendUnavailable(f"mpi4py failed to load its MPI library ({type(exc).__name__}: {first}): "
                                 f"reinstall it: {install_mpi_hint()}") from None
    return MPI


class MPIComm(Communicator):
    """MPI through mpi4py (``MPI.COMM_WORLD`` unless another communicator is given)."""

    name = "mpi"

    def __init__(self, comm: Any = None) -> None:
        MPI = _mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # Processes sharing memory are on one machine: their order picks the GPU.
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()

    # The sums call MPI even with one rank (then they copy nothing between processes): a
    # one-rank job runs the very calls a job of many does, so that a test of one rank checks them.
    def allreduce(self, buffer: Any) -> Any:
        if isinstance(buffer, np.ndarray) and buffer.flags.c_contiguous:
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
            return buffer
        # A device buffer with an MPI that is not CUDA-aware (the index's MPICH): through the host.
        host = np.ascontiguousarray(to_numpy_any(buffer))
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        buffer[...] = _like(buffer, host)
        return buffer

    def allreduce_host(self, values: np.ndarray) -> np.ndarray:
        out = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)
        return out

    def any(self, flag: bool) -> bool:
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR)) if self.size > 1 else bool(flag)

    def bcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0) if self.size > 1 else obj

    def allgather(self, obj: Any) -> list:
        return self.comm.allgather(obj) if self.size > 1 else [obj]

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def _like(buffer: Any, host: np.ndarray) -> Any:
    """``host`` on ``buffer``'s device, as ``buffer``'s library's array."""
    module = type(buffer).__module__.split(".")[0]
    if module == "cupy":
        import cupy

        return cupy.asarray(host)
    if module == "torch":
        import torch

        return torch.from_numpy(host).to(buffer.device)
    if module == "array_api_strict":
        import array_api_strict as xps

        return xps.asarray(host, device=buffer.device)
    return host


class NCCLComm(MPIComm):
    """NCCL for CuPy gradient buffers, MPI for the rest. Needs one GPU per rank on each machine.

    Written against ``cupy.cuda.nccl`` (CuPy 13). Exercised only where a GPU is (the tests
    call its all-reduce with one rank there, and skip it with a reason elsewhere).
    """

    name = "nccl"

    def __init__(self, comm: Any = None) -> None:
        super().__init__(comm)
        reason = nccl_unusable()
        if reason:
            raise BackendUnavailable(reason)
        import cupy
        from cupy.cuda import nccl

        count = cupy.cuda.runtime.getDeviceCount()
        if self.local_size > count:
            raise BackendUnavailable(f"{self.local_size} ranks on one machine but {count} GPU(s): start at "
                                     "most one rank per GPU (mpiexec -n, or -ppn with a hostfile)")
        self.device = self.local_rank
        cupy.cuda.Device(self.device).use()
        self.nccl, self.cupy = nccl, cupy
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)  # the NCCL id travels over MPI
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce(self, buffer: Any) -> Any:
        if type(buffer).__module__.split(".")[0] != "cupy":
            return super().allreduce(buffer)
        # One rank too: queued like a kernel, it costs no synchronisation, and runs the real call.
        stream = self.cupy.cuda.get_current_stream()
        # Queued on the stream like a kernel: no host synchronisation here.
        self.nccl_comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self._types[buffer.dtype],
                                 self.nccl.NCCL_SUM, stream.ptr)
        return buffer

    def abort(self, code: int = 1) -> None:
        try:
            self.nccl_comm.abort()  # frees peers blocked in a collective on the GPU
        except Exception:  # noqa: BLE001 - ending anyway
            pass
        super().abort(code)


def mpiexec_path() -> str | None:
    """The ``mpiexec`` beside this interpreter (where the mpich wheel puts it), else the PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def mpi_unusable() -> str | None:
    """None when mpi4py is installed and an ``mpiexec`` is found; else one line saying what to
    install. MPI itself is not started."""
    try:
        import mpi4py  # noqa: F401 - only whether it is there, without starting MPI
    except ImportError:
        return f"mpi4py is not installed: {install_mpi_hint()}"
    if mpiexec_path() is None:
        return f"mpi4py is installed but no mpiexec is on the PATH: {install_mpi_hint()}"
    return None


def nccl_unusable() -> str | None:
    """None when CuPy has NCCL and a GPU here; else one line saying why not."""
    from .cupy_backend import probe_cupy

    cupy, reason = probe_cupy(0)
    if reason:
        return f"NCCL needs CuPy on a GPU: {reason}"
    try:
        from cupy.cuda import nccl
    except Exception as exc:  # noqa: BLE001 - CuPy built without NCCL raises ImportError or others
        return (f"CuPy cannot load NCCL ({type(exc).__name__}): {install_hint('nccl12')} for a CUDA 12 "
                f"driver, or the nccl13 extra for CUDA 13")
    if not getattr(nccl, "available", True):
        return ("CuPy found no NCCL library: pip install nvidia-nccl-cu12 (or -cu13, matching "
                "cupy-cudaXXx)")
    return None


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec/mpirun/srun)."""
    markers = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALRANKID", "SLURM_PROCID")
    return any(name in os.environ for name in markers)


def connect(gpu: bool = False, *, nccl: bool | None = None) -> Communicator:
    """The communicator of the job this process belongs to.

    ``gpu``: the gradients live on CuPy GPUs, so NCCL is used when it is usable
    (``nccl=None``), required (True) or never (False: MPI through the host).
    Raises BackendUnavailable, with what to install and how to launch, when MPI is missing.
    """
    if nccl is None:
        nccl = gpu and nccl_unusable() is None
    return NCCLComm() if nccl else MPIComm()


def world() -> tuple[int, int]:
    """``(rank, size)`` of the MPI job this process is in, without starting MPI: (0, 1) when
    MPI has not been started here."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized():
        return 0, 1
    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def end_job(code: int, line: str | None = None, *, grace_s: float = 0.5) -> None:
    """Print ``line`` (to stderr) and, in an MPI job of several ranks, end every rank with
    ``code``, so that none is left waiting in a collective.

    A rank other than 0 waits ``grace_s`` before printing: when every rank fails alike
    (a bad option), rank 0's line is the only one printed before it ends the job.
    """
    rank, size = world()
    if size > 1 and rank != 0:
        import time

        time.sleep(grace_s)
    if line is not None:
        print(line, file=sys.stderr, flush=True)
    if size > 1:
        sys.stdout.flush()
        sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(code)
