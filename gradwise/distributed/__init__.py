"""Data-parallel training over MPI (mpi4py): ``mpiexec -n K gradwise train CONFIG``.

Each global batch is split across the K ranks, their gradients are summed by one ``Allreduce`` of
a flat buffer per optimizer step, rank 0's initial weights are broadcast to all, and only rank 0
writes the run directory. See ``docs/distributed.md``. Importing this package does not import
mpi4py; building a `Communicator` does.

- `Communicator`, `DistributedError`, `launched_size`: the MPI collectives, with deadlines;
- `DataParallel`: the flat gradient buffer, the weight broadcast, the batch sharding;
- `ShardedGenerator`: a layer's generator that draws for the global batch and keeps a rank's rows;
- `convert_sync_batchnorm`, `SyncBatchNorm1d`, `SyncBatchNorm2d`: global-batch BatchNorm.
"""

from gradwise.distributed.comm import DEFAULT_TIMEOUT
from gradwise.distributed.comm import Communicator
from gradwise.distributed.comm import DistributedError
from gradwise.distributed.comm import launched_size
from gradwise.distributed.data_parallel import DataParallel
from gradwise.distributed.data_parallel import ShardedGenerator
from gradwise.distributed.data_parallel import shard_bounds
from gradwise.distributed.sync_batchnorm import SyncBatchNorm1d
from gradwise.distributed.sync_batchnorm import SyncBatchNorm2d
from gradwise.distributed.sync_batchnorm import convert_sync_batchnorm

__all__ = [
    "DEFAULT_TIMEOUT",
    "Communicator",
    "DataParallel",
    "DistributedError",
    "ShardedGenerator",
    "SyncBatchNorm1d",
    "SyncBatchNorm2d",
    "convert_sync_batchnorm",
    "launched_size",
    "shard_bounds",
]
