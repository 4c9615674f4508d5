"""Resumable checkpoints: everything `Trainer.fit` needs to continue a run exactly where it stopped.

A checkpoint is a directory of the run's ``checkpoints/`` folder (``docs/checkpoints.md``)::

    RUN/checkpoints/
      latest                      "step-00000420\\n": the checkpoint to resume from
      step-00000420/              after the 420th optimizer step, in the middle of an epoch
      step-00000448-end/          at the end of an epoch (the next one starts at its first batch)
        model.safetensors         weights and buffers under PyTorch's names (loads into torch)
        state.json                "optimizer": class, step count, param groups, scalar state;
                                  "trainer": position (epoch, batch, step), history, best value,
                                  callback states, every random generator's state
        state.safetensors         the arrays state.json refers to: the optimizer's per-parameter
                                  buffers ("optimizer/state_dict/state/<param>/<name>"),
                                  per-iteration losses, the epoch's order and scores so far,
                                  callback arrays
        manifest.json             format, version, position, and the size and SHA-256 of every
                                  other file; written last
      step-00000476-end.corrupt/  a checkpoint that failed verification on resume, kept as evidence

Atomicity: the files are written into a temporary directory next to the final one, each fsynced,
with the manifest last; the directory is fsynced and renamed to its final name (one ``rename``, atomic
on POSIX), the parent is fsynced, and only then is ``latest`` replaced (`atomic_write_bytes`). A
crash at any instant leaves ``latest`` naming a complete checkpoint (the previous one or the new
one); a torn temporary directory is ignored by readers and swept by the next writer. Older
checkpoints are removed only after ``latest`` has moved, by renaming them away first.

Reading (`load_checkpoint`) checks every file against the manifest (size, SHA-256) and its format
before anything is returned, and `resume` checks the model, optimizer, callbacks, generators and
loader against the checkpoint before it changes any of them. If ``latest`` is damaged, resuming
falls back to the newest older checkpoint that verifies (`find_resumable`).

The modules, from the disk up:

- `tree`: the state-tree encoding (JSON for the structure, safetensors for the arrays);
- `store`: the folder: write atomically, list, follow ``latest``, prune, set a damaged one aside;
- `verify`: read a checkpoint back and verify it (`load_checkpoint`, `check_model`, ...);
- `fallback`: choose the checkpoint to resume from (`find_resumable`);
- `trainer_state`: what a trainer saves and restores (`save`, `resume`, `generators`).
"""

from gradwise.training.checkpoint.fallback import NoIntactCheckpoint
from gradwise.training.checkpoint.fallback import Rejected
from gradwise.training.checkpoint.fallback import Resumable
from gradwise.training.checkpoint.fallback import find_resumable
from gradwise.training.checkpoint.store import KEEP
from gradwise.training.checkpoint.store import LATEST
from gradwise.training.checkpoint.store import CorruptCheckpoint
from gradwise.training.checkpoint.store import latest_checkpoint
from gradwise.training.checkpoint.store import list_checkpoints
from gradwise.training.checkpoint.store import set_aside
from gradwise.training.checkpoint.store import write_checkpoint
from gradwise.training.checkpoint.trainer_state import ResumePoint
from gradwise.training.checkpoint.trainer_state import ResumeWarning
from gradwise.training.checkpoint.trainer_state import generators
from gradwise.training.checkpoint.trainer_state import resume
from gradwise.training.checkpoint.trainer_state import save
from gradwise.training.checkpoint.verify import Checkpoint
from gradwise.training.checkpoint.verify import check_model
from gradwise.training.checkpoint.verify import check_optimizer
from gradwise.training.checkpoint.verify import load_checkpoint

__all__ = [
    "KEEP",
    "LATEST",
    "Checkpoint",
    "CorruptCheckpoint",
    "NoIntactCheckpoint",
    "Rejected",
    "ResumePoint",
    "ResumeWarning",
    "Resumable",
    "check_model",
    "check_optimizer",
    "find_resumable",
    "generators",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "resume",
    "save",
    "set_aside",
    "write_checkpoint",
]
