"""Callbacks: code that runs at fixed points of `Trainer.fit`, in Keras' vocabulary.

Subclass `Callback` and override the hooks you need; the trainer calls them in this order::

    on_train_begin(logs)
        on_epoch_begin(epoch, logs)
            on_train_batch_begin(batch, logs)   # logs: {"size": n}
            on_train_batch_end(batch, logs)     # logs: {"loss": this batch's loss, "size": n,
                                                #        "grad_norm": pre-clip norm when clipping by norm}
            ...
            on_test_begin(logs)                 # validation, through Trainer.evaluate
            on_test_end(logs)                   # logs: {"loss": ..., <metric>: ...}
        on_epoch_end(epoch, logs)               # logs: epoch, loss, <metric>, val_loss, ..., lr, time
    on_train_end(logs)                          # logs: the last epoch's logs

    on_train_diverged(error, inputs, targets)   # a batch loss is NaN/inf, before its update;
                                                # return True to stop cleanly instead of raising

`epoch` and `batch` are 0-based indices, as in Keras. The epoch logs dict passed to
`on_epoch_end` is the row stored in `History` and written to ``history.csv``: a key a callback adds
there is recorded too. Set ``self.trainer.stop_training = True`` to stop after the current batch
(from a batch hook) or epoch (from an epoch hook). `self.trainer` gives access to the model, the
optimizer (``trainer.optimizer.param_groups``) and the history.

Every callback has ``state_dict()`` / ``load_state_dict(state)`` so that a resumed run continues
with the same counters, best values and averages (``gradwise/training/checkpoint.py`` saves the
states of the callbacks that override them). A state is a dict of plain Python values (floats may
be ``inf``) and NumPy arrays (weights), which the checkpoint stores in safetensors.

Importable from here: `Callback` and `CallbackList` (defined in ``callback_base.py``) and the
built-in callbacks, each in a file of its own: `EMA` (``ema.py``), `EarlyStopping` and
`TerminateOnNaN` (``stopping.py``), `ModelCheckpoint` and `CSVLogger` (``logging_callbacks.py``),
`ReduceLROnPlateau` and `CycleMomentum` (``schedule_callbacks.py``), `TensorBoard`
(``tensorboard.py``, ``docs/tensorboard.md``). See ``docs/callbacks.md``.
"""

from gradwise.training.babysitter import Babysitter
from gradwise.training.callback_base import Callback, CallbackList, Logs, infer_mode, resolve_mode  # noqa: F401
from gradwise.training.ema import EMA
from gradwise.training.logging_callbacks import CSVLogger, ModelCheckpoint
from gradwise.training.schedule_callbacks import CycleMomentum, ReduceLROnPlateau
from gradwise.training.stopping import EarlyStopping, TerminateOnNaN
from gradwise.training.tensorboard import TensorBoard  # tensorboardX is imported only when it writes

__all__ = [
    "EMA",
    "Babysitter",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "CycleMomentum",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "infer_mode",
]
