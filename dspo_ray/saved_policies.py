"""Reading back a policy file written by :func:`dspo_ray.policies.save_policy`, whatever method
trained it.

The one module that knows every kind of saved policy, so it sits above both dspo_ray.policies and
the methods that define their own policy classes (dspo_ray.baselines.cdtv); neither of those
imports it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dspo_ray.baselines.cdtv import CDTPolicy
from dspo_ray.policies import POLICY_FILE, MLPPolicy, PolicyError

# the "kind" a file records -> the class rebuilt from the file's config
POLICY_KINDS: dict[str, type[nn.Module]] = {"mlp": MLPPolicy, "cdt": CDTPolicy}


def load_policy(path: str | Path) -> nn.Module:
    """The policy saved at ``path`` by save_policy (or in a run folder holding ``policy.pt``,
    :data:`~dspo_ray.policies.POLICY_FILE`); raises :class:`~dspo_ray.policies.PolicyError` naming
    the file for anything else."""
    path = Path(path)
    if path.is_dir():
        if not (path / POLICY_FILE).is_file():
            raise FileNotFoundError(f"{path} is a folder without a {POLICY_FILE}; give the policy "
                                    f"file itself (a run's {POLICY_FILE})")
        path = path / POLICY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"policy file {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        policy = POLICY_KINDS[saved["kind"]](**saved["config"])
        policy.load_state_dict(saved["state_dict"])
    except Exception as e:  # torch.load raises many types for a file that is not a checkpoint
        # the first sentence only: torch's advice that follows (weights_only=False) is wrong here
        text = str(e).strip()
        reason = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
        raise PolicyError(f"{path} is not a dspo-ray policy file (written by save_policy): "
                          f"{type(e).__name__}: {reason}") from e
    return policy.eval()
