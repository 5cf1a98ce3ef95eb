"""dspo-ray: Diffusion-guided Safe Policy Optimization and its baselines, with sweeps on Ray.

The library runs in one process without Ray; only ``dspo_ray.distributed`` imports ray.
"""

__version__ = "0.1.0"
