"""`state_dict()` / `load_state_dict()` of the `Optimizer` base: checkpoints keyed by parameter name.

A mixin, so that optimizer.py holds the update machinery and this file the checkpoint format.
It uses the optimizer's ``param_groups``, ``state``, ``step_count`` and ``_init_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter

# Key under which `state_dict()` records that a group's lr is a schedule (the function itself lives
# in code, not in the checkpoint, so "lr" is saved as None).
_SCHEDULE_FLAG = "lr_is_schedule"


class StateDictMixin:
    """Checkpointing of an `Optimizer` (see its docstring for the attributes used)."""

    param_groups: list[dict[str, Any]]
    state: dict[Parameter, dict[str, Any]]
    step_count: int
    _init_state: Callable[[Parameter, Mapping[str, Any]], dict[str, Any]]

    def _param_keys(self) -> list[str]:
        """State-dict keys of all parameters in group order: names, or indices if names clash."""
        names = [p.name for g in self.param_groups for p in g["params"]]
        if all(names) and len(set(names)) == len(names):
            return names
        return [str(i) for i in range(len(names))]

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain Python and NumPy (copies, safe to keep while training).

        Returns
        -------
        dict
            ``{"step_count": int, "param_groups": [...], "state": {key: {name: array or number}}}``.
            Each group lists its hyperparameters and ``"params"``, the keys of its parameters:
            their names (`Parameter.name`), or their positions as strings when some names are empty
            or repeated. A schedule lr is saved as ``"lr": None`` with ``"lr_is_schedule": True``;
            the function lives in code and is supplied again at construction. Scratch is not saved.
        """
        keys = iter(self._param_keys())
        groups: list[dict[str, Any]] = []
        state: dict[str, dict[str, Any]] = {}
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            is_schedule = callable(group["lr"])
            saved["lr"] = None if is_schedule else group["lr"]
            saved[_SCHEDULE_FLAG] = is_schedule
            saved["params"] = []
            for p in group["params"]:
                key = next(keys)
                saved["params"].append(key)
                if p in self.state:
                    state[key] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else v)
                        for k, v in self.state[p].items()
                        if not k.startswith("_")
                    }
            groups.append(saved)
        return {"step_count": self.step_count, "param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`, so that training continues exactly as if never interrupted.

        Parameters are matched by position (group by group), as in `torch.optim`; the saved keys
        only locate each parameter's state. Arrays are copied into the existing buffers when there
        are some, into new ones otherwise; hyperparameters are restored, except a schedule lr,
        which must be supplied again at construction.

        Raises
        ------
        ValueError
            If the number of groups or of parameters in a group differs, a hyperparameter is
            missing or unknown, a saved schedule lr meets a constant one, or a state array's shape
            does not match (the message names the parameter). Nothing is changed in that case.
        """
        for key in ("step_count", "param_groups", "state"):
            if key not in state_dict:
                raise ValueError(f"load_state_dict: the state dict has no {key!r} entry")
        saved_groups = list(state_dict["param_groups"])
        saved_state: Mapping[str, Mapping[str, Any]] = state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: the state dict has {len(saved_groups)} param groups, "
                f"the optimizer has {len(self.param_groups)}"
            )

        # Check everything before changing anything.
        plan: list[tuple[Parameter, dict[str, Any], Mapping[str, Any] | None]] = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            keys = list(saved.get("params", []))
            if len(keys) != len(group["params"]):
                raise ValueError(
                    f"load_state_dict: param group {i} has {len(keys)} parameters in the state "
                    f"dict but {len(group['params'])} in the optimizer"
                )
            hyper = set(saved) - {"params", _SCHEDULE_FLAG}
            expected = set(group) - {"params"}
            if hyper != expected:
                raise ValueError(
                    f"load_state_dict: param group {i} has hyperparameters {sorted(hyper)} in the "
                    f"state dict but {sorted(expected)} in {type(self).__name__}"
                )
            if saved.get(_SCHEDULE_FLAG, False) and not callable(group["lr"]):
                raise ValueError(
                    f"load_state_dict: param group {i} was saved with a schedule lr; construct "
                    f"the optimizer with the same schedule before loading"
                )
            for key, p in zip(keys, group["params"]):
                entry = saved_state.get(str(key))
                if entry is not None:
                    self._check_saved_state(p, group, str(key), entry)
                plan.append((p, group, entry))

        self.step_count = int(state_dict["step_count"])
        for group, saved in zip(self.param_groups, saved_groups):
            for k, v in saved.items():
                if k in ("params", _SCHEDULE_FLAG) or (k == "lr" and saved.get(_SCHEDULE_FLAG)):
                    continue
                # A JSON round trip turns tuples (betas) into lists.
                group[k] = tuple(v) if isinstance(group[k], tuple) else v
        new_state: dict[Parameter, dict[str, Any]] = {}
        for p, group, entry in plan:
            if entry is None:
                continue
            target = self.state.get(p)
            if target is None:
                target = self._init_state(p, group)
            for k in [k for k in target if not k.startswith("_") and k not in entry]:
                del target[k]
            for k, v in entry.items():
                if isinstance(v, (np.ndarray, list)):
                    v = np.asarray(v)
                    buf = target.get(k)
                    if isinstance(buf, np.ndarray) and buf.shape == v.shape:
                        np.copyto(buf, v, casting="unsafe")
                    else:
                        dtype = p.data.dtype if np.issubdtype(v.dtype, np.floating) else v.dtype
                        target[k] = np.array(v, dtype=dtype, copy=True)
                else:
                    target[k] = v.item() if isinstance(v, np.generic) else v
            new_state[p] = target
        self.state.clear()
        self.state.update(new_state)

    def _check_saved_state(
        self, p: Parameter, group: Mapping[str, Any], key: str, entry: Mapping[str, Any]
    ) -> None:
        current = self.state.get(p)
        template = current if current is not None else self._init_state(p, group)
        for k, v in entry.items():
            if not isinstance(v, (np.ndarray, list)):
                continue
            shape = np.shape(v)
            buf = template.get(k)
            want = buf.shape if isinstance(buf, np.ndarray) else p.data.shape
            if shape != want:
                raise ValueError(
                    f"load_state_dict: state {k!r} of parameter {p.name or key!r} has shape "
                    f"{shape} in the state dict but {want} in the optimizer"
                )
