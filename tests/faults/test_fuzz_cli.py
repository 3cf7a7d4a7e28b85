"""Fuzzing every CLI's arguments (issue 35, item 3): ``python -m pathviz.train``, ``export``,
``inspect``, ``retrain`` and ``baselines`` get random command lines drawn from their real flags
(read from each parser), with good values, hostile ones (text, empty, huge, NaN, infinity,
negative, paths that are files or do not exist) and one certain mistake per case where drawn:
a flag that does not exist, a flag without its value, or a value of the wrong kind.

Each command's ``main(argv)`` runs in this process (a CLI takes seconds to start). The step
where a command would start its real work (load the data and train, write the export, retrain,
measure) is replaced by a sentinel, so a command line that is accepted costs nothing and is
seen as accepted. Every case asserts: exit 2 with one sentence on stderr (``pathviz.X: error:
...``), or acceptance (exit 0 for inspect); never a traceback; a certain mistake is always
refused; and the folder of runs hashes the same before and after (a refused train also leaves
no claimed folder behind). A few cases run the real ``python -m`` commands as well.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from pathviz import export, runs, train
from pathviz import inspect as inspect_cli
from pathviz.tickets import baselines_cli, retrain_cli
from tests.faults.fuzz import fuzz, one_sentence, tree_hash
from tests.test_retrain import write_run

ROOT = Path(__file__).resolve().parents[2]


class Accepted(BaseException):
    """Raised where a command would start its real work: the command line was accepted.
    (A BaseException, so no ``except Exception`` in a command turns it into a message.)"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A folder of runs: a finished LeNet-5 run ``demo`` (weights at 0, 10, 20), a folder that
    is not a run, a plain file, and config files good and bad."""
    root = tmp_path_factory.mktemp("world")
    write_run(root / "checkpoints")
    write_run(root / "checkpoints", "demo_sgd", {"optimizer": "sgd"})  # the dense reference
    runs.write_status(runs.run_paths("demo", root / "checkpoints"), state="finished",
                      snapshots=5, iteration=20, total_iterations=20)
    (root / "notarun").mkdir()
    (root / "notarun" / "notes.txt").write_text("mine")
    (root / "afile").write_text("not a folder")
    (root / "good.json").write_text(json.dumps({"epochs": 1, "lr": 0.05}))
    (root / "bad.json").write_text('{"epochs": NaN, "lr": [1e999]}')
    (root / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    (root / "good.toml").write_text("epochs = 1\n")
    (root / "bad.toml").write_text("epochs = = 1\n")
    return root


@pytest.fixture
def sentinels(monkeypatch, world):
    """Every command stops where its real work would begin; runs live under the world."""
    def accept(*args, **kwargs):
        raise Accepted

    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(world / "checkpoints"))
    monkeypatch.setattr(train, "load_plan", accept)
    monkeypatch.setattr(export, "_example", accept)
    monkeypatch.setattr(retrain_cli, "run", accept)
    monkeypatch.setattr(baselines_cli, "run", accept)


# ---- command lines ----------------------------------------------------------------------------

# text a shell can pass: no NUL, no lone surrogates (those come from undecodable bytes, below)
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=24)
HOSTILE = ["", " ", "-1", "0", "-0", "1e999", "-1e999", "nan", "NaN", "inf", "-inf", "1e-320",
           "9" * 40, "-" + "9" * 40, "0x10", " 3", "3 ", "1,2,,3", ",", "1.5", "²", "١٢",
           "../..", "/", ".", "stop", "all", "none", "true", "cuda:99", "points:nan",
           "points:-1", "points:inf", "points:", "1se ", "\udcff\udcfe", "a\nb", "%s%n",
           "[x](http://e.x)", "<script>", "$(touch pwned)"]
hostile = st.sampled_from(HOSTILE) | text | st.integers(-2 ** 70, 2 ** 70).map(str)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def _typed_bad(action: argparse.Action) -> list[str]:
    """Values that are certainly wrong for ``action`` (a wrong kind, or not a choice)."""
    if action.choices:
        return ["not-a-choice", "", "SGD ", "\u00a0"]
    name = getattr(action.type, "__name__", "")
    if name == "int" or action.type is int:
        return ["abc", "1.5", "", "1e3", "0x10", "²", "9" * 25]
    if name == "float" or action.type is float:
        return ["abc", "", "1,5", "0x1p3", "nan", "inf", "-inf", "1e999"]
    return []


@st.composite
def command_lines(draw, parser: argparse.ArgumentParser, positional: list[str],
                  good: dict[str, list[str]]):
    """(argv, a certain mistake or None): flags of ``parser`` with good or hostile values."""
    options = _options(parser)
    argv: list[str] = []
    if positional:  # the first place is the sound run: most cases use it, to get past it
        argv.append(positional[0] if draw(st.integers(0, 2)) else
                    draw(st.sampled_from(positional) | text))
    for action in draw(st.lists(st.sampled_from(options), max_size=5)):
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            argv.append(flag)
            continue
        goods = good.get(action.dest) or list(action.choices or [])
        value = draw(st.sampled_from(goods) if goods and draw(st.integers(0, 2)) else hostile)
        argv += [flag, value] if action.nargs != "?" or draw(st.booleans()) else [flag]
    # the flags a command requires, most of the time, so that cases get past the parser
    for action in options:
        if action.required and draw(st.integers(0, 9)) > 0:
            argv += [action.option_strings[0], draw(st.sampled_from(good[action.dest]))]
    typed = [a for a in options if _typed_bad(a)]
    mistake = draw(st.sampled_from([None, None, "unknown", "no value"] +
                                   (["wrong kind"] if typed else [])))
    if mistake == "unknown":
        argv.insert(draw(st.integers(0, len(argv))), "--" + draw(st.sampled_from(
            ["bogus", "epochz", "out-dir", "x" * 300])))
    elif mistake == "no value":
        needs = [a for a in options if a.nargs is None]
        argv.append(draw(st.sampled_from(needs)).option_strings[0])
    elif mistake == "wrong kind":
        action = draw(st.sampled_from(typed))
        argv += [action.option_strings[0], draw(st.sampled_from(_typed_bad(action)))]
    return argv, mistake


def _call(main, argv: list[str]) -> tuple[int | str, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc: int | str = main(argv)
        except Accepted:
            rc = "accepted"
    return rc, out.getvalue(), err.getvalue()


def _judge(world: Path, prog: str, main, argv: list[str], mistake: str | None,
           ok: tuple = ("accepted",)) -> None:
    before = tree_hash(world)
    rc, out, err = _call(main, argv)
    said = re.sub(r"'[^']*'|/\S*|\d+", "_", err.partition("error: ")[2])[:50]
    event(f"{prog}: {f'exit 2: {said}' if rc == 2 else rc}")
    if rc == 2:
        one_sentence(err, f"{prog}: error: ")
    else:
        assert rc in ok, (rc, out[-500:], err[-2000:])
        assert mistake is None, f"{mistake} was accepted: {argv!r}"
    assert tree_hash(world) == before, f"{argv!r} changed the folder of runs"


# ---- the five commands --------------------------------------------------------------------


def _places(world: Path) -> list[str]:
    return [str(world / "checkpoints" / "demo"), str(world / "checkpoints" / "nope"),
            str(world / "notarun"), str(world / "afile"), str(world), "", "/",
            str(world / "checkpoints" / "demo" / runs.PATH_FILE)]


@fuzz(60)
@given(data=st.data())
def test_train_arguments(world, sentinels, data):
    parser = train.build_parser()
    places = _places(world) + [str(world / "checkpoints" / "fresh")]
    configs = [str(world / n) for n in ("good.json", "bad.json", "deep.json", "good.toml",
                                        "bad.toml", "missing.json", "afile", "notarun")]
    good = {"out": places, "config": configs, "preset": ["demo", "vit_demo", "mnist_lenet"],
            "model": ["lenet5", "vit_tiny", "resnet"], "dataset": ["digits", "mnist"],
            "epochs": ["1", "2"], "lr": ["0.05"], "optimizer": ["slbi", "sgd"],
            "cpu_isa": ["avx2", "native"], "impl": ["foreach"], "seed": ["0", "7"],
            "device": ["cpu", "cuda"], "data_root": places}
    argv, mistake = data.draw(command_lines(parser, [], good), label="argv")
    _judge(world, "pathviz.train", train.main, argv, mistake)


@fuzz(60)
@given(data=st.data())
def test_export_arguments(world, sentinels, data):
    import pathviz.export as ex

    parser = argparse.ArgumentParser()
    # the export parser is built inside main: rebuild its flags here from its --help text
    good = {"iteration": ["0", "10", "20", "stop", "5"], "mode": ["masked", "compact"],
            "fmt": list(ex.FORMATS), "out": [str(world / "net.pt2"), str(world / "afile"),
                                             str(world / "notarun"), str(world / "x" / "n.pt")],
            "data_root": _places(world)}
    for flag, dest, nargs in (("--iteration", "iteration", None), ("--mode", "mode", None),
                              ("--format", "fmt", None), ("--out", "out", None),
                              ("--overwrite", "overwrite", 0), ("--data-root", "data_root", None)):
        if nargs == 0:
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, dest=dest, required=dest == "iteration")
    argv, mistake = data.draw(command_lines(parser, _places(world), good), label="argv")
    _judge(world, "pathviz.export", export.main, argv, mistake)


@fuzz(60)
@given(data=st.data())
def test_inspect_arguments(world, sentinels, data):
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rule")
    good = {"rule": ["1se", "points:1", "points:0.5"]}
    argv, mistake = data.draw(command_lines(parser, _places(world), good), label="argv")
    _judge(world, "pathviz.inspect", inspect_cli.main, argv, mistake, ok=(0,))


@fuzz(50)
@given(data=st.data())
def test_retrain_arguments(world, sentinels, data):
    parser = retrain_cli.build_parser()
    good = {"iteration": ["20", "10", "stop", "7"], "init": ["rewind", "reinit,uniform",
                                                             "magnitude", "rewind:5", "x"],
            "epochs": ["1", "0"], "lr": ["0.05"], "seeds": ["0", "0,1", "1,1"],
            "name": ["t1", "../up", "a/b"], "device": ["cpu", "cuda", "cuda:0"],
            "data_root": _places(world)}
    argv, mistake = data.draw(command_lines(parser, _places(world), good), label="argv")
    _judge(world, "pathviz.retrain", retrain_cli.main, argv, mistake)


@fuzz(50)
@given(data=st.data())
def test_baselines_arguments(world, sentinels, data):
    parser = baselines_cli.build_parser()
    good = {"methods": ["magnitude", "taylor,magnitude", "slimming", "x"],
            "reference": ["self", "sgd"],
            "iterations": ["all", "20", "10,20", "7"], "epochs": ["0", "1"], "seed": ["0"],
            "data_root": _places(world)}
    argv, mistake = data.draw(command_lines(parser, _places(world), good), label="argv")
    _judge(world, "pathviz.baselines", baselines_cli.main, argv, mistake)


# ---- a few real processes -------------------------------------------------------------------

REAL = [
    ("pathviz.train", ["--epochs", "many"]),
    ("pathviz.export", ["{run}", "--iteration"]),
    ("pathviz.inspect", ["{run}", "--rule", "points:nan"]),
    ("pathviz.retrain", ["{run}", "--iteration", "20", "--init", "rewind", "--epochs", "1",
                         "--bogus"]),
    ("pathviz.baselines", ["{run}", "--iterations", "1e3"]),
]


@pytest.mark.parametrize("module,args", REAL, ids=[m for m, _ in REAL])
def test_the_real_commands_exit_2_in_one_sentence(world, module, args):
    run = str(world / "checkpoints" / "demo")
    before = tree_hash(world)
    p = subprocess.run([sys.executable, "-m", module, *(a.format(run=run) for a in args)],
                       capture_output=True, text=True, timeout=300, cwd=world,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT),
                            "PATHVIZ_CHECKPOINTS": str(world / "checkpoints")})
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    one_sentence(p.stderr, f"{module}: error: ")
    assert tree_hash(world) == before
