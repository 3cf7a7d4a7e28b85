"""Every pathviz command line: abbreviations are refused, and a close miss names the flag."""

from __future__ import annotations

import pytest

from pathviz.cli_parser import StrictParser, closest_option


def test_closest_option_finds_typos_and_not_strangers():
    opts = ["--epochs", "--lam", "--overwrite", "--iterations", "--val-fraction", "--nu"]
    assert closest_option("--epoch", opts) == "--epochs"
    assert closest_option("--epoch=3", opts) == "--epochs"
    assert closest_option("--lamda", opts) == "--lam"
    assert closest_option("--overwite", opts) == "--overwrite"
    assert closest_option("--init", opts) is None
    assert closest_option("--iteration", ["--val-fraction", "--nu"]) is None


def test_a_prefix_is_not_taken_for_the_flag():
    p = StrictParser()
    p.add_argument("--epochs", type=int)
    with pytest.raises(SystemExit):  # argparse's own error(): exits 2
        p.parse_args(["--epoch", "1"])
    assert p.explain("unrecognized arguments: --epoch 1") == \
        "unrecognized arguments: --epoch 1; did you mean --epochs?"
    assert p.explain("unrecognized arguments: --zzz") == "unrecognized arguments: --zzz"
    assert p.explain("the following arguments are required: x") == \
        "the following arguments are required: x"


@pytest.mark.parametrize("module, argv, hint", [
    ("pathviz.train", ["--epoch", "1"], "did you mean --epochs?"),
    ("pathviz.inspect", ["RUN", "--jsn"], "did you mean --json?"),
    ("pathviz.export", ["RUN", "--iteration", "1", "--overwite"], "did you mean --overwrite?"),
    ("pathviz.tickets.retrain_cli", ["RUN", "--iteration", "1", "--init", "rewind",
                                     "--epochs", "1", "--seed", "3"], "did you mean --seeds?"),
    ("pathviz.tickets.baselines_cli", ["RUN", "--iteration", "7"],
     "did you mean --iterations?"),
])
def test_each_cli_refuses_an_abbreviation_in_one_sentence(module, argv, hint, capsys):
    import importlib

    rc = importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and hint in err and "unrecognized arguments" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
