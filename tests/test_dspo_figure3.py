"""Figure 3's claim on its 2-D toy: the return-agnostic term recalls the low-return safe samples
that the plain discriminator misses."""

from dataclasses import replace

import torch

from dspo_ray.commands import figure3

torch.set_num_threads(1)


def test_return_agnostic_recalls_more_low_return_safe_samples(tmp_path):
    data = figure3.make_toy_data(seed=0)
    config = replace(figure3.TOY_CONFIG, steps=1000)
    plain = figure3.recalls(figure3.train_toy(data, "plain", config=config), data)
    agnostic_model = figure3.train_toy(data, "return-agnostic", config=config)
    agnostic = figure3.recalls(agnostic_model, data)
    assert agnostic["recall_low_return"] > plain["recall_low_return"] + 0.5, (plain, agnostic)
    assert agnostic["recall"] > plain["recall"]
    assert agnostic["false_positive_unsafe_high_return"] < 0.3  # it did not just call everything safe
    path = figure3.draw(data, {"plain": agnostic_model}, tmp_path / "fig.png")
    assert path.stat().st_size > 10_000
