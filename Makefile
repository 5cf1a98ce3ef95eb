# The two commands of the README. Each one sets up .venv (idempotently) and then runs.
PY := .venv/bin/python

.PHONY: setup sweep test evaluate collect

setup:
	@bash scripts/setup_env.sh

# The main job: a quick DSPO sweep on an embedded local Ray over the shipped datasets.
sweep: setup
	$(PY) experiments/sweep.py $(ARGS)

test: setup
	$(PY) -m pytest $(ARGS)

# Evaluate a policy (random by default) in a real simulator: make evaluate ARGS="--task CarCircle"
evaluate: setup
	$(PY) experiments/evaluate.py $(ARGS)

# Collect a task's dataset with our own agent: make collect ARGS="--task CarCircle [--ship]"
collect: setup
	$(PY) experiments/collect.py $(ARGS)
