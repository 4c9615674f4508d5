"""`Communicator`: the few MPI collectives data-parallel training needs, each with a deadline.

mpi4py is imported when a `Communicator` is built, never at ``import gradwise`` (a single process
never loads it). Every collective is started non-blocking (``Iallreduce``, ``Ibcast``,
``Iallgather(v)``) and waited for with a deadline: if another rank died without taking the job
down, hangs, or took a different path through the code (one rank skipped a collective), the
waiting ranks raise `DistributedError` after ``timeout`` seconds instead of blocking forever.
The command line then aborts the whole job (`Communicator.abort`).
"""

from __future__ import annotations

import os
import pickle
import time
from typing import Any

import numpy as np

__all__ = ["DEFAULT_TIMEOUT", "Communicator", "DistributedError", "launched_size"]

#: Seconds a rank waits for the others in one collective before it gives up. Longer than any
#: work one rank does alone between two collectives (rank 0 writes checkpoints and plots).
DEFAULT_TIMEOUT = 300.0

# The environment a launcher gives each process: MPICH / Intel MPI (Hydra) and Open MPI.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")


class DistributedError(RuntimeError):
    """A collective failed or did not complete within the communicator's timeout."""


def launched_size() -> int:
    """The number of processes an MPI launcher (``mpiexec -n K``) started, read from the
    environment without importing mpi4py; 1 when the process was not started by one."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class Communicator:
    """A group of processes (MPI ranks) that train one model together.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The MPI communicator; ``MPI.COMM_WORLD`` by default.
    timeout : float
        Seconds to wait for the other ranks in any one collective before raising
        `DistributedError` (> 0).

    Attributes
    ----------
    rank : int
        This process's index, 0 .. size - 1; rank 0 writes the run directory.
    size : int
        Number of processes, K.
    calls, seconds, bytes : int, float, int
        Collectives run so far, the wall time spent in them (waiting for slower ranks included)
        and the bytes this rank contributed: what docs/distributed.md's scaling figure reads.
    """

    def __init__(self, comm: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"Communicator: {timeout=} must be a number of seconds > 0")
        try:
            from mpi4py import MPI
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "distributed training needs mpi4py and an MPI library: pip install 'gradwise[mpi]' "
                "(mpi4py and the MPICH wheel, which provides mpiexec)"
            ) from e
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        # Errors are returned as Python exceptions (mpi4py's default), turned into DistributedError below.
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        self.rank: int = int(self.comm.Get_rank())
        self.size: int = int(self.comm.Get_size())
        self.timeout = float(timeout)
        self.calls, self.seconds, self.bytes = 0, 0.0, 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Communicator:
        # A handle on the processes of the job, not data: a copied model (gradient checks,
        # `diagnose`, EMA) talks to the same ranks.
        return self

    # ------------------------------------------------------------------ waiting with a deadline
    def _run(self, start: Any, what: str, nbytes: int) -> None:
        """Start a non-blocking collective (`start()` returns its request) and wait for it."""
        began = time.perf_counter()
        try:
            try:
                request = start()
            except self._mpi.Exception as e:
                raise DistributedError(f"rank {self.rank} of {self.size}: {what} failed: {e}") from e
            self._poll(request, what)
        finally:
            self.calls += 1
            self.bytes += nbytes
            self.seconds += time.perf_counter() - began

    def _poll(self, request: Any, what: str) -> None:
        try:
            if request.Test():
                return
            deadline = time.monotonic() + self.timeout
            spins = 0
            while not request.Test():
                spins += 1
                if spins > 200:
                    os.sched_yield()  # waiting long: leave the core to the other ranks
                    if time.monotonic() > deadline:
                        raise DistributedError(
                            f"rank {self.rank} of {self.size}: {what} did not complete within "
                            f"{self.timeout:g} s: another rank has died, hangs, or skipped it "
                            f"(see docs/distributed.md)"
                        )
        except self._mpi.Exception as e:
            raise DistributedError(f"rank {self.rank} of {self.size}: {what} failed: {e}") from e

    # ------------------------------------------------------------------ collectives
    def allreduce_(self, buf: np.ndarray, what: str = "an all-reduce") -> np.ndarray:
        """Sum `buf` over the ranks, in place (one ``MPI_Iallreduce``); returns `buf`.

        `buf` must be a contiguous 1-d array; every rank gets bitwise the same sums.
        """
        if self.size > 1:
            mpi = self._mpi
            self._run(lambda: self.comm.Iallreduce(mpi.IN_PLACE, buf, op=mpi.SUM), what, buf.nbytes)
        return buf

    def bcast_(self, buf: np.ndarray, root: int = 0, what: str = "a broadcast") -> np.ndarray:
        """Overwrite `buf` on every rank with rank `root`'s (one ``MPI_Ibcast``); returns `buf`."""
        if self.size > 1:
            self._run(lambda: self.comm.Ibcast(buf, root=root), what, buf.nbytes)
        return buf

    def bcast_object(self, obj: Any, root: int = 0, what: str = "a broadcast") -> Any:
        """Rank `root`'s picklable `obj` on every rank."""
        if self.size == 1:
            return obj
        data = pickle.dumps(obj) if self.rank == root else b""
        n = self.bcast_(np.array([len(data)], dtype=np.int64), root, what)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        self.bcast_(buf, root, what)
        return obj if self.rank == root else pickle.loads(buf.tobytes())

    def allgather_object(self, obj: Any, what: str = "an all-gather") -> list[Any]:
        """Every rank's picklable `obj`, as a list in rank order (on every rank)."""
        if self.size == 1:
            return [obj]
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        mine = np.array([data.size], dtype=np.int64)
        self._run(lambda: self.comm.Iallgather(mine, sizes), what, mine.nbytes)
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        out = np.empty(int(sizes.sum()), dtype=np.uint8)
        recv = [out, sizes.tolist(), offsets.tolist(), self._mpi.BYTE]
        self._run(lambda: self.comm.Iallgatherv(data, recv), what, data.nbytes)
        return [pickle.loads(out[o : o + s].tobytes()) for o, s in zip(offsets.tolist(), sizes.tolist())]

    def agree(self, error: BaseException | None, what: str) -> None:
        """Raise on every rank if `error` happened on any: a step that may fail on one rank only
        (rank 0 creating the run directory) must not leave the others waiting for it."""
        errors = self.allgather_object(None if error is None else f"{type(error).__name__}: {error}", what)
        if error is not None:
            raise error
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            r, message = failed[0]
            raise DistributedError(f"rank {r} of {self.size} failed in {what}: {message}")

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``): after a `DistributedError`, the ranks
        that are still waiting or hang are killed by the launcher instead of waiting forever."""
        self.comm.Abort(int(code))

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"
