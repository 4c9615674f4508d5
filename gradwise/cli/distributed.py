"""`gradwise train` under ``mpiexec -n K``: data-parallel training over MPI (docs/distributed.md).

The command is distributed when an MPI launcher started it with K > 1 processes (read from the
environment: ``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``; mpi4py is imported only then) or with
``--distributed`` (also with K = 1). Every rank reads the config, builds the data, the model and
the loaders with the same seed; rank 0 creates the run directory, writes everything in it and
prints; the other ranks train silently. On any error, a rank prints it and aborts the whole job
(``MPI_Abort``), so no rank is left waiting for one that stopped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["abort", "communicator", "on_rank0", "prepare_model", "resume_source"]

_active: Any = None  # the Communicator of this command, once built

#: Seconds between printing an error and `MPI_Abort`, for the launcher to forward the message.
ABORT_GRACE_S = 0.5


def communicator(args: Any, cfg: Any) -> Any:
    """The command's `Communicator`, or None for a single process (nothing MPI is imported)."""
    global _active
    from gradwise.cli.config import ConfigError
    from gradwise.distributed import launched_size

    size = launched_size()
    if not getattr(args, "distributed", False) and size <= 1:
        return None
    train_cfg = cfg.section("train")
    for key, bad, why in (
        ("seeds", int(train_cfg["seeds"]) > 1, "an ensemble of seeds: train each seed as its own job"),
        ("histogram_epochs", bool(train_cfg["histogram_epochs"]), "histogram snapshots are not taken by the ranks"),
    ):
        if bad:
            raise ConfigError(f"{cfg.source}: [train] {key} does not combine with distributed training ({why})")
    timeout = train_cfg["distributed_timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"{cfg.source}: [train] distributed_timeout = {timeout!r} must be a number of seconds > 0")
    if not isinstance(train_cfg["sync_batchnorm"], bool):
        raise ConfigError(f"{cfg.source}: [train] sync_batchnorm = {train_cfg['sync_batchnorm']!r} must be true or false")
    from gradwise.distributed import Communicator

    try:
        comm = Communicator(timeout=float(timeout))
    except ImportError as e:
        raise ConfigError(f"started by an MPI launcher with {size} processes, but {e}") from None
    _active = comm
    if comm.rank != 0:  # one voice: rank 0 prints, the others train silently (errors still show)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    return comm


def prepare_model(comm: Any, cfg: Any, model: Any) -> None:
    """``[train] sync_batchnorm = true``: synchronize the model's BatchNorm layers over the ranks."""
    if comm is not None and cfg.section("train")["sync_batchnorm"]:
        from gradwise.distributed import convert_sync_batchnorm

        convert_sync_batchnorm(model, comm)


def on_rank0(comm: Any, create: Callable[[], Any]) -> Any:
    """The run directory: created by `create` on rank 0 only; the other ranks get its path (and
    write nothing). If rank 0 cannot create it, every rank stops with its error."""
    if comm is None:
        return create()
    from gradwise.training.rundir import RunDir

    run, error = None, None
    if comm.rank == 0:
        try:
            run = create()
        except (OSError, ValueError) as e:
            error = e
    comm.agree(error, "creating the run directory")
    path = comm.bcast_object(None if run is None else str(run.path), what="the broadcast of the run directory")
    return run if comm.rank == 0 else RunDir(path)


def resume_source(comm: Any) -> bool:
    """Whether this rank chooses the checkpoint to resume from and may change the run directory
    (rank 0); the other ranks pass the run directory and get rank 0's choice from the Trainer."""
    return comm is None or comm.rank == 0


def abort(code: int) -> None:
    """After an error was printed: end every rank of a distributed job (no-op for one process)."""
    if _active is not None and _active.size > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        # The launcher forwards each rank's output from a pipe; MPI_Abort tears the job down at
        # once and could lose what was just written (the error itself: seen in 2 of 10 runs of
        # tests/cli/test_distributed.py's hung-rank test). Give it a moment to read the pipe.
        time.sleep(ABORT_GRACE_S)
        _active.abort(code)
