"""Host-side parts of training: the data-parallel bookkeeping (MPI/NCCL), L-BFGS through
SciPy, and the gradient checker's float64 statistics. They name NumPy; the math does not."""
