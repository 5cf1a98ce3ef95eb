"""benchmarks/rerun_agreement.py: the same (method, task, seed) at its defaults, run twice, paired."""

import pytest

from dspo_ray.analysis.results import ResultsError

HEADER = "method,task,seed,status,group,eval/normalized_reward,eval/normalized_cost\n"


def test_pairs_the_defaults_and_flags_a_difference(load_benchmark, tmp_path):
    ra = load_benchmark("rerun_agreement")
    new = tmp_path / "trials.csv"
    new.write_text(HEADER + "dspo,AntRun,3,finished,dspo/0,0.6,1.27\n"
                   "dspo,AntRun,4,finished,dspo/0,0.61,0.90\n"
                   "bc_safe,AntRun,3,finished,bc_safe/0,0.59,0.865\n"
                   "bc_safe,CarCircle,3,finished,bc_safe/0,0.7,0.5\n")   # no earlier run: unpaired
    earlier = tmp_path / "confirm_trials.csv"
    earlier.write_text("method,configuration,seed,eval/normalized_reward,eval/normalized_cost\n"
                       "dspo,0,3,0.6,1.27\ndspo,0,4,0.61,0.935\n"
                       "dspo,1,3,0.9,0.1\n"                                # a tuned one: not the defaults
                       "bc_safe,0,3,0.595,0.865\n")
    out = tmp_path / "agreement.md"
    assert ra.main(["--new", str(new), "--earlier", f"AntRun={earlier}", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("2 of 3 reruns agree with the earlier run within 0.01")
    assert "| AntRun | dspo | 4 | 0.610 / 0.935 | 0.610 / 0.900 | no |" in text
    assert "| AntRun | bc_safe | 3 | 0.595 / 0.865 | 0.590 / 0.865 | yes |" in text
    assert "CarCircle" not in text


def test_refuses_what_it_cannot_pair(load_benchmark, tmp_path):
    ra = load_benchmark("rerun_agreement")
    new = tmp_path / "trials.csv"
    new.write_text(HEADER + "dspo,AntRun,3,finished,dspo/0,0.6,1.2\n"
                   "dspo,AntRun,3,finished,dspo/1,0.7,1.2\n")
    with pytest.raises(ResultsError, match="2 configurations"):
        ra.main(["--new", str(new), "--earlier", str(new)])
    new.write_text(HEADER + "dspo,AntRun,3,finished,dspo/0,0.6,1.2\n")
    with pytest.raises(ResultsError, match="no 'configuration' column"):
        ra.main(["--new", str(new), "--earlier", f"AntRun={new}"])
    other = tmp_path / "confirm_trials.csv"
    other.write_text("method,configuration,seed,eval/normalized_reward,eval/normalized_cost\n"
                     "dspo,0,5,0.6,1.2\n")
    with pytest.raises(ResultsError, match="no .method, task, seed. is in both"):
        ra.main(["--new", str(new), "--earlier", f"AntRun={other}"])
