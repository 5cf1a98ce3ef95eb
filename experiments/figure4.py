"""Runs ``dspo-figure4`` (dspo_ray/commands/figure4.py; see ``--help``) from a checkout.

It runs the dspo_ray installed in the environment: ``make setup`` installs this checkout, editable.
"""

import sys

from dspo_ray.commands.figure4 import cli

if __name__ == "__main__":
    sys.exit(cli())
