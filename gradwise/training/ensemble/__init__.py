"""Ensembles: average the predictions of several models, or of snapshots of one run.

Averaging the predictions of models that make different errors lowers the error of the average
below the average error of the members (for a convex loss such as the cross-entropy this is
Jensen's inequality; Dietterich, 2000, "Ensemble methods in machine learning"). Members can be
trained from different seeds (Lakshminarayanan et al., 2017, "Simple and scalable predictive
uncertainty estimation using deep ensembles") or be snapshots of a single run taken at the ends
of the cycles of a cyclic learning-rate schedule (Huang et al., 2017, "Snapshot ensembles: train
1, get M for free"). See ``docs/ensembles.md``.

``model.py`` holds the `Ensemble` layer, `combine` and `ensemble_gain`; ``members.py`` the two ways
of getting members, `train_seeds` and the `Snapshots` callback. Import them from here.
"""

from gradwise.training.ensemble.members import Snapshots, train_seeds
from gradwise.training.ensemble.model import Ensemble, combine, ensemble_gain

__all__ = ["Ensemble", "Snapshots", "ensemble_gain", "train_seeds"]  # and combine, as before
