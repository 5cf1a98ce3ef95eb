"""Typed configs: the generic loader's errors name the key; profiles and the shipped YAML files load."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from dspo_ray.config import ConfigError, bounded, from_dict, to_dict, with_overrides
from dspo_ray.data import SplitConfig
from dspo_ray.dspo.config import DSPOConfig, load_dspo_config, profile_config

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


@dataclass(frozen=True)
class Inner:
    rate: float = bounded(0.1, gt=0, le=1)
    kind: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int = bounded(3, ge=1)
    flag: bool = True
    maybe: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_from_dict_builds_nested_and_converts():
    cfg = from_dict(Outer, {"count": 5, "maybe": 2, "inner": {"rate": 1, "sizes": [4, 5, 6]}})
    assert cfg == Outer(count=5, maybe=2.0, inner=Inner(rate=1.0, sizes=(4, 5, 6)))
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize("data,key,words", [
    ({"cout": 1}, "cout", "unknown setting"),
    ({"inner": {"rat": 0.5}}, "inner.rat", "unknown setting"),
    ({"count": "3"}, "count", "expected an integer"),
    ({"count": 2.5}, "count", "expected an integer"),
    ({"flag": 1}, "flag", "true/false"),
    ({"count": 0}, "count", "out of range"),
    ({"inner": {"rate": 0.0}}, "inner.rate", "out of range"),
    ({"inner": {"kind": "c"}}, "inner.kind", "not one of"),
    ({"inner": {"sizes": ["a"]}}, "inner.sizes[0]", "expected an integer"),
    ({"inner": 3}, "inner", "expected a mapping"),
    ({"maybe": "no"}, "maybe", "does not fit"),
])
def test_from_dict_errors_name_the_key(data, key, words):
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data)
    assert str(e.value).startswith(key + ":") and words in str(e.value)


def test_dspo_defaults_are_the_papers():
    cfg = DSPOConfig()
    assert cfg.discriminator.learning_rate == 3e-5 and cfg.discriminator.vclub_coef == 0.1
    assert cfg.discriminator.return_bins == 10 and cfg.discriminator.return_agnostic
    assert cfg.discriminator.variant == "safety_transformer" and cfg.discriminator.gradient_penalty == 0
    d = cfg.diffusion
    assert (d.n_diffusion_steps, d.batch_size, d.steps, d.learning_rate, d.loss) == (100, 64, 200_000, 3e-4, "l1")
    assert (d.ema_start, d.ema_decay, d.ema_every, d.dim, d.attention_dim) == (1000, 0.995, 5, 64, 128)
    assert cfg.bc.batch_size == 64 and cfg.eval_episodes == 20
    assert cfg.generation.return_condition is None and cfg.generation.safety_condition is None
    assert isinstance(cfg.split, SplitConfig)


def test_profiles_yaml_and_overrides():
    quick = profile_config("quick", task="DroneRun", **{"discriminator.vclub_coef": 0.3})
    assert quick.profile == "quick" and quick.task == "DroneRun"
    assert quick.discriminator.vclub_coef == 0.3 and quick.diffusion.steps < DSPOConfig().diffusion.steps
    assert load_dspo_config(CONFIGS / "dspo_quick.yaml") == profile_config("quick")
    assert load_dspo_config(CONFIGS / "dspo_paper.yaml") == DSPOConfig()
    cfg = with_overrides(quick, {"generation.return_condition": 1.0, "split.n_safe": 5})
    assert cfg.generation.return_condition == 1.0 and cfg.split.n_safe == 5
    with pytest.raises(ConfigError, match="^profile:"):
        load_dspo_config({"profile": "fast"})
    with pytest.raises(ConfigError, match="diffusion.horizon"):
        profile_config("paper", **{"diffusion.horizon": 20})
    with pytest.raises(ConfigError, match="^split.demo_selection:"):
        load_dspo_config({"split": {"demo_selection": "best"}})
    with pytest.raises(Exception, match="unknown task"):
        load_dspo_config({"task": "CarSquare"})
