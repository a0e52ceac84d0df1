"""Options where users type them: a command's --config and --debug before or after its subcommands,
the closest option or choice for a misspelt one, and a description in every command's --help."""

import argparse

import pytest

from tests.flows.test_fl_cli import velibcast
from velibcast.flows.cli import build_parser

SHARED = ("--config", "--debug")


def _commands(p, path=()):
    """(path, parser) of every subcommand, outermost first."""
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, c in a.choices.items():
                yield (*path, name), c
                yield from _commands(c, (*path, name))


def _chains():
    root = build_parser()
    parsers = {(): root, **dict(_commands(root))}
    leaves = [path for path in parsers if not any(p[:-1] == path for p in parsers if p)]
    return [[parsers[path[:i]] for i in range(len(path) + 1)] for path in leaves], leaves


@pytest.mark.parametrize("option", SHARED)
def test_a_commands_shared_option_is_taken_at_every_level_and_only_the_outermost_sets_its_default(option):
    chains, leaves = _chains()
    for chain, leaf in zip(chains, leaves):
        holders = [p for p in chain if option in p._option_string_actions]
        if not holders:
            continue
        assert holders == chain[chain.index(holders[0]):], (leaf, option)  # from its first level down to the leaf
        defaults = [p._option_string_actions[option].default for p in holders]
        assert argparse.SUPPRESS not in defaults[:1] and set(defaults[1:]) <= {argparse.SUPPRESS}, (leaf, defaults)
    assert any(chain[1]._option_string_actions.get("--config") for chain in chains if len(chain) > 2)  # models, transform-job


@pytest.mark.parametrize("argv", [
    ["models", "list", "--config", "X.yaml"], ["models", "--config", "X.yaml", "list"],
    ["transform-job", "list", "--config", "X.yaml"], ["transform-job", "--config", "X.yaml", "list"],
    ["run", "--as-of", "2022-05-26T06:00Z", "--config", "X.yaml"], ["score", "--config", "X.yaml", "--run-date", "2022-05-26"],
])
def test_config_reaches_the_command_wherever_it_is_typed(argv):
    assert build_parser().parse_args(argv).config == "X.yaml"
    assert build_parser().parse_args([a for a in argv if a not in ("--config", "X.yaml")]).config == "configs/local.yaml"


@pytest.mark.parametrize("argv", [["--debug", "models", "list"], ["models", "--debug", "list"], ["models", "list", "--debug"],
                                  ["run", "--debug"], ["transform-job", "list", "--debug"]])
def test_debug_is_taken_before_or_after_the_subcommands(argv):
    assert build_parser().parse_args(argv).debug is True
    assert build_parser().parse_args([a for a in argv if a != "--debug"]).debug is False


@pytest.mark.parametrize("where", ["after list", "before list"])
def test_models_list_reads_the_store_of_the_config_typed_after_or_before_list(tmp_path, where):
    root = tmp_path / "a-store"
    root.mkdir()  # an existing, empty store: what is asked is where --config is typed
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  root: {root}\n")
    argv = ["models", "list", "--config", str(cfg)] if where == "after list" else ["models", "--config", str(cfg), "list"]
    r = velibcast(*argv, cwd=tmp_path)
    assert r.returncode == 0 and f"no model under {root}/models/" in r.stdout, r.stderr


@pytest.mark.parametrize("argv, hint", [
    (["score", "--rundate", "2022-05-26"], "did you mean --run-date instead of --rundate?"),
    (["score", "--run-date", "2022-05-26", "--rundate", "2022-05-26"], "did you mean --run-date instead of --rundate?"),
    (["models", "list", "--confg", "x.yaml"], "did you mean --config instead of --confg?"),
    (["run", "--as_of", "2022-05-26T06:00Z"], "did you mean --as-of instead of --as_of?"),
    (["run", "--product", "day_ahead"], "did you mean 'day-ahead'?"),
    (["scroe", "--run-date", "2022-05-26"], "did you mean 'score'?"),
])
def test_a_misspelt_option_or_choice_is_answered_with_the_closest_one(tmp_path, argv, hint):
    r = velibcast(*argv, cwd=tmp_path)
    assert r.returncode == 2 and hint in r.stderr.splitlines()[-1], r.stderr


def test_an_unknown_option_with_nothing_close_gets_no_guess(tmp_path):
    r = velibcast("score", "--run-date", "2022-05-26", "--zzzzzz", cwd=tmp_path)
    assert r.returncode == 2 and "unrecognized arguments: --zzzzzz" in r.stderr and "did you mean" not in r.stderr


def test_every_command_says_what_it_does_in_its_help(tmp_path):
    for path, parser in _commands(build_parser()):
        assert parser.description, path
    for command, words in (("demo", "Seed ./data from the bundled sample"), ("score", "Score the forecasts a product")):
        r = velibcast(command, "--help", cwd=tmp_path)
        assert r.returncode == 0 and words in " ".join(r.stdout.split()), r.stdout
