"""The hyperparameter names train.py accepts: its training-loop knobs and XGBoost's booster
parameters (XGBoost documentation, "XGBoost Parameters": general, tree booster and learning
task parameters). A light module, so settings can check a stack file's
`models.<name>.training.hyperparameters` without importing XGBoost: a misspelt name would
otherwise reach XGBoost, which warns and ignores it, and the model trains with the default.
"""

from __future__ import annotations

import difflib

#: Hyperparameters that steer the training loop rather than the booster.
LOOP_KEYS = frozenset({"num_boost_round", "early_stopping_rounds", "checkpoint_interval"})
BOOSTER_KEYS = frozenset(
    {
        # general
        "booster", "device", "nthread", "verbosity", "seed", "seed_per_iteration",
        "disable_default_eval_metric",
        # tree booster
        "eta", "learning_rate", "gamma", "min_split_loss", "max_depth", "min_child_weight",
        "max_delta_step", "subsample", "sampling_method", "colsample_bytree",
        "colsample_bylevel", "colsample_bynode", "lambda", "reg_lambda", "alpha", "reg_alpha",
        "tree_method", "scale_pos_weight", "updater", "refresh_leaf", "process_type",
        "grow_policy", "max_leaves", "max_bin", "num_parallel_tree", "monotone_constraints",
        "interaction_constraints", "multi_strategy", "max_cat_to_onehot", "max_cat_threshold",
        # learning task
        "objective", "num_class", "base_score", "eval_metric",
    }
)  # fmt: skip
KNOWN = LOOP_KEYS | BOOSTER_KEYS


def unknown_hyperparameters(names: list[str]) -> list[str]:
    """One problem per name train.py does not know, with the closest known name."""
    problems = []
    for name in names:
        if name in KNOWN or name.startswith(("sagemaker_", "_")):
            continue
        close = difflib.get_close_matches(name, sorted(KNOWN), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{name!r} is not a hyperparameter train.py or XGBoost knows{hint}")
    return problems
