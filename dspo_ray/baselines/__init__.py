"""The paper's baselines (section 4, appendix C.2), one module per method.

``METHODS[name] -> (ConfigClass, train)`` for name in bc_all, bc_safe, td3bc, iql, cql, dwbc, rgm,
cdtv; ``run_method`` trains, saves, evaluates and returns flat metrics. Every ``train(config, data,
workdir, log=None)`` takes only :class:`~dspo_ray.data.CostLabelFreeData` (no costs) and returns a
picklable policy for :func:`dspo_ray.evaluation.evaluate`; each trains with the shared loop
``common.train_steps``, which checkpoints into ``workdir`` so that a rerun there resumes.
"""

from dspo_ray.baselines.common import (METHODS, ConfigError, UnknownMethodError, config_from_dict,
                                       get_method, run_method)

# registers the "cdt" policy kind with dspo_ray.policies.POLICY_KINDS (for load_policy)
from dspo_ray.baselines import cdtv as _cdtv  # noqa: E402,F401

__all__ = ["METHODS", "ConfigError", "UnknownMethodError", "config_from_dict", "get_method",
           "run_method"]
