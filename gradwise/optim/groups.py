"""Param-group builders: exempt biases and normalization parameters from weight decay, and give
layers their own learning rates (discriminative fine-tuning).

Both return plain lists of param-group dicts, the ``params`` argument of every optimizer, so they
work with any of them and the groups can still be edited by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gradwise.core import Layer, Parameter
from gradwise.optim.optimizer import LearningRate

#: Name fragments whose parameters `weight_decay_groups` never decays (a generalization of the
#: BERT / HuggingFace recipe, which exempts names containing "bias" and "LayerNorm.weight").
NO_DECAY = ("bias", "norm")

NamedParameters = Layer | Iterable[tuple[str, Parameter]]


def _named(model: NamedParameters) -> list[tuple[str, Parameter]]:
    named = list(model.named_parameters() if isinstance(model, Layer) else model)
    for i, item in enumerate(named):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter)):
            raise TypeError(
                f"model must be a Layer or an iterable of (name, Parameter) pairs; "
                f"item {i} is a {type(item).__name__}"
            )
    return named


def is_decay_exempt(
    name: str, p: Parameter, no_decay: Sequence[str] = NO_DECAY, exempt_1d: bool = True
) -> bool:
    """Whether `weight_decay_groups` leaves `p` out of weight decay.

    Parameters
    ----------
    name : str
        The parameter's dotted name, such as ``"0.bias"`` or ``"encoder.norm1.weight"``.
    p : Parameter
        The parameter.
    no_decay : sequence of str
        Exempt a parameter whose name contains any of these substrings (a single string counts
        as one fragment, not as its characters).
    exempt_1d : bool
        Exempt every parameter with fewer than two dimensions.

    Returns
    -------
    bool
    """
    fragments = (no_decay,) if isinstance(no_decay, str) else no_decay
    return (exempt_1d and p.data.ndim < 2) or any(s in name for s in fragments)


def weight_decay_groups(
    model: NamedParameters,
    weight_decay: float,
    no_decay: Sequence[str] = NO_DECAY,
    exempt_1d: bool = True,
) -> list[dict[str, Any]]:
    """Split parameters into a decayed group and an exempt group (``weight_decay=0``).

    A parameter is exempt when it has fewer than two dimensions (biases, and the scales and shifts
    of BatchNorm and LayerNorm: their names in a `Sequential` are ``"1.weight"``, so only their
    shape tells them apart) or when its dotted name contains one of `no_decay`. A bias controls a
    single unit, so it needs little data to fit and decaying it mostly causes underfitting
    (Goodfellow et al., 2016, Section 7.1); a normalization scale or shift sets the size and
    offset of a whole feature, and pulling it towards 0 limits no capacity that the weights
    around it could not restore. The BERT and most AdamW recipes exempt both.

    Parameters
    ----------
    model : Layer or iterable of (str, Parameter)
        A model, or the ``named_parameters()`` of part of one.
    weight_decay : float
        The decay of the decayed group, >= 0.
    no_decay : sequence of str, default ("bias", "norm")
        Name substrings that exempt a parameter whatever its shape (an embedding table named
        ``"embed.weight"`` is exempted by adding ``"embed"``). ``()`` for the shape rule only.
    exempt_1d : bool, default True
        Exempt every parameter with fewer than two dimensions.

    Returns
    -------
    list of dict
        ``[{"params": decayed, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0}]``, in the model's parameter order, leaving out
        a group that would be empty. Hyperparameters other than the decay come from the
        optimizer's defaults.

    Examples
    --------
    >>> opt = gw.optim.AdamW(weight_decay_groups(model, 1e-2), lr=1e-3)   # doctest: +SKIP
    """
    if not weight_decay >= 0:
        raise ValueError(f"{weight_decay=} must be >= 0")
    decayed: list[Parameter] = []
    exempt: list[Parameter] = []
    for name, p in _named(model):
        (exempt if is_decay_exempt(name, p, no_decay, exempt_1d) else decayed).append(p)
    groups = [{"params": decayed, "weight_decay": weight_decay},
              {"params": exempt, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def layer_groups(
    model: NamedParameters,
    lrs: Mapping[str, LearningRate],
    weight_decay: float | None = None,
    no_decay: Sequence[str] = NO_DECAY,
    exempt_1d: bool = True,
) -> list[dict[str, Any]]:
    """One param group per name prefix with its own learning rate (discriminative learning rates).

    Parameters
    ----------
    model : Layer or iterable of (str, Parameter)
        A model, or the ``named_parameters()`` of part of one.
    lrs : mapping of str to float or schedule
        ``{prefix: lr}``. A parameter goes to the group of the longest prefix its dotted name
        starts with; write the dot (``"1."``, not ``"1"``, which would also match ``"10.weight"``).
        Parameters matching no prefix form a last group without an ``"lr"`` key, so they use the
        optimizer's ``lr``.
    weight_decay : float, optional
        If given, split every group further as `weight_decay_groups` does (a decayed part with
        this decay, an exempt part with 0), with the same `no_decay` and `exempt_1d`.
    no_decay, exempt_1d
        See `weight_decay_groups`; used only with `weight_decay`.

    Returns
    -------
    list of dict
        Groups in the order of `lrs`, then the unmatched parameters; empty groups are left out.

    Raises
    ------
    ValueError
        If a prefix matches no parameter (most likely a typo), or `weight_decay` is negative.

    Examples
    --------
    Fine-tune a pretrained body slowly and a new head fast:

    >>> groups = layer_groups(model, {"0.": 1e-4, "2.": 1e-3})   # doctest: +SKIP
    >>> opt = gw.optim.SGD(groups, lr=1e-2, momentum=0.9)       # "4." and others: lr=1e-2
    """
    if weight_decay is not None and not weight_decay >= 0:
        raise ValueError(f"{weight_decay=} must be >= 0")
    named = _named(model)
    by_prefix: dict[str | None, list[tuple[str, Parameter]]] = {prefix: [] for prefix in lrs}
    by_prefix[None] = []
    longest_first = sorted(lrs, key=len, reverse=True)
    for name, p in named:
        prefix = next((pre for pre in longest_first if name.startswith(pre)), None)
        by_prefix[prefix].append((name, p))
    unmatched = [prefix for prefix in lrs if not by_prefix[prefix]]
    if unmatched:
        raise ValueError(
            f"lrs: prefix(es) {unmatched} match no parameter; names are like "
            f"{[n for n, _ in named[:3]]}"
        )

    groups: list[dict[str, Any]] = []
    for prefix, members in by_prefix.items():
        lr = {} if prefix is None else {"lr": lrs[prefix]}
        if weight_decay is None:
            groups.append({"params": [p for _, p in members], **lr})
        else:
            split = weight_decay_groups(members, weight_decay, no_decay, exempt_1d)
            groups.extend({**g, **lr} for g in split)
    return [g for g in groups if g["params"]]
