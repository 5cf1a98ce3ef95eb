"""The oracle decomposition table from an oracle sweep and a Table 1 trials.csv (e.g. the shipped
docs/results/table1/trials.csv, whose DSPO and BC-Safe runs it compares with):

    python benchmarks/stage1_oracle_compare.py <oracle sweep folder> <table1 trials.csv>

(With both sweeps' folders at hand, ``analysis/make_tables.py --results A --results B`` writes the
same table as oracle.md.)
"""
import sys
import pandas as pd
from dspo_ray.analysis import load_results, oracle_table
oracle, _ = load_results(sys.argv[1])
table1 = pd.read_csv(sys.argv[2])
tasks = set(oracle["task"])
both = pd.concat([table1[table1["task"].isin(tasks)], oracle], ignore_index=True)
print(oracle_table(both))
cols = ["seed", "eval/normalized_reward", "eval/normalized_cost", "generation/safety_condition",
        "diagnostic/oracle_signal"]
print(oracle[cols].sort_values("seed").to_string(index=False))
