"""DSPO (the paper's method): stage 1 trajectory-wise safety signal (SafetyTransformer + vCLUB),
stage 2 conditional trajectory diffusion, generation of safe high-return data, behaviour cloning.

``run_dspo(config, workdir)`` (pipeline.py) runs it all; each stage is a file of its own.
"""

from dspo_ray.dspo.config import (BCConfig, DiffusionConfig, DiscriminatorConfig, DSPOConfig,
                                  GenerationConfig, PROFILES, load_dspo_config, profile_config)

__all__ = ["BCConfig", "DiffusionConfig", "DiscriminatorConfig", "DSPOConfig", "GenerationConfig",
           "PROFILES", "load_dspo_config", "profile_config", "run_dspo"]


def __getattr__(name):  # run_dspo pulls in the simulators' evaluation: import it lazily
    if name == "run_dspo":
        from dspo_ray.dspo.pipeline import run_dspo
        return run_dspo
    raise AttributeError(name)
