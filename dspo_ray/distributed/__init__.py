"""Ray for dspo-ray: training stages on Ray Train, sweeps on Ray Tune + Optuna, parallel data
collection (``collect``), clusters.

The only package of the project that imports ray. ``config`` (the sweep's YAML schema) does not,
so a bad config fails in a second; ``train_runner`` and ``sweep`` do.
"""
