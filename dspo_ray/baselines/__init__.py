"""The paper's baselines (section 4, appendix C.2), one module per method.

``get_method(name) -> (ConfigClass, train)`` for each name of ``METHODS`` (bc_all, bc_safe, td3bc,
iql, cql, dwbc, rgm, cdtv); ``run_method`` trains, saves, evaluates and returns flat metrics.
Every ``train(config, data, workdir, log=None)`` takes only :class:`~dspo_ray.data.CostLabelFreeData`
(no costs) and returns a picklable policy for :func:`dspo_ray.evaluation.evaluate`; each trains
with the shared loop ``common.train_steps``, which checkpoints into ``workdir`` so that a rerun
there resumes.
"""

from dspo_ray.baselines.common import (METHODS, ConfigError, UnknownMethodError, config_from_dict,
                                       get_method, run_method)

__all__ = ["METHODS", "ConfigError", "UnknownMethodError", "config_from_dict", "get_method",
           "run_method"]
