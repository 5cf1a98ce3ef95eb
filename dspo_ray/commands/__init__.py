"""The project's commands, installed as console scripts (pyproject.toml) and run by the
``experiments/*.py`` and ``analysis/make_tables.py`` wrappers in a checkout:

=================  ==============================  =========================================
command            wrapper                         what it does
=================  ==============================  =========================================
``dspo-sweep``     ``experiments/sweep.py``        hyperparameter sweeps on Ray (sweep.py)
``dspo-run``       ``experiments/dspo.py``         DSPO on one task, resumable (run.py)
``dspo-train``     ``experiments/train.py``        one baseline on one task (train.py)
``dspo-evaluate``  ``experiments/evaluate.py``     a policy in a simulator (evaluate.py)
``dspo-collect``   ``experiments/collect.py``      a task's dataset with our agents (collect.py)
``dspo-tables``    ``analysis/make_tables.py``     the paper's tables and plots (tables.py)
``dspo-figure3``   ``experiments/figure3.py``      the paper's Figure 3 toy (figure3.py)
``dspo-figure4``   ``experiments/figure4.py``      the paper's Figure 4 protocol (figure4.py)
=================  ==============================  =========================================

Each module has ``main(argv)`` (raises on bad input) and ``cli()`` (the command: bad input is one
line and exit status 2, dspo_ray.cli.run_cli). The spellings are shared: ``--task`` (repeated for
several), ``--seed``, ``--method``, ``--dataset``, ``--out``, ``--set KEY=VALUE``,
``--eval-episodes``, ``--eval-workers``; old spellings still work, with a warning.
"""
