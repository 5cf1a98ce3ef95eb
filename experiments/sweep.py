"""Runs ``dspo-sweep`` (dspo_ray/commands/sweep.py; see ``--help``) from a checkout.

It runs the dspo_ray installed in the environment: ``make setup`` installs this checkout, editable.
"""

import sys

from dspo_ray.commands.sweep import cli

if __name__ == "__main__":
    sys.exit(cli())
