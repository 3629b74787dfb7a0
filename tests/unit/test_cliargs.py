"""Global options are accepted before or after the subcommand, as kubectl accepts -n."""

import pytest
import typer

from deployer.cli import app
from deployer.cliargs import hoist, table_of

TABLE = table_of(typer.main.get_command(app))


@pytest.mark.parametrize(("argv", "expected"), [
    (["promote", "--app", "hello", "-n", "shop"], ["-n", "shop", "promote", "--app", "hello"]),
    (["promote", "--app", "hello", "-nshop"], ["-nshop", "promote", "--app", "hello"]),
    (["status", "--app", "web", "--context=lab", "-ojson", "-v"],
     ["--context=lab", "-ojson", "-v", "status", "--app", "web"]),
    (["-o", "json", "rollback", "--app", "web", "-n", "b"],
     ["-o", "json", "-n", "b", "rollback", "--app", "web"]),
    (["canary", "--app", "web", "--image", "v2", "--timeout", "5m", "--insecure-skip-tls-verify"],
     ["--timeout", "5m", "--insecure-skip-tls-verify", "canary", "--app", "web", "--image",
      "v2"]),
])
def test_global_options_after_the_subcommand_move_before_it(argv, expected):
    assert hoist(argv, TABLE).argv == expected


def test_a_value_that_looks_like_a_global_option_stays_with_its_option():
    argv = ["rolling", "--app", "web", "--image", "v2", "--reason", "-n was wrong"]
    assert hoist(argv, TABLE).argv == argv
    argv = ["rolling", "--app", "web", "--image", "v2", "--reason", "-v"]
    assert hoist(argv, TABLE).argv == argv


def test_nothing_after_a_double_dash_and_nothing_before_the_subcommand_moves():
    argv = ["-o", "json", "status", "--app", "web", "--", "-n", "x"]
    assert hoist(argv, TABLE).argv == argv


@pytest.mark.parametrize("argv", [
    ["status", "--app", "web", "-o", "json"],
    ["status", "--app", "web", "-ojson"],
    ["status", "--app", "web", "--output=json"],
    ["--output", "json", "status", "--app", "web"],
])
def test_the_output_format_is_read_as_the_parser_reads_it(argv):
    assert hoist(argv, TABLE).output == "json"


@pytest.mark.parametrize("argv", [
    ["--log-format", "json", "status", "--app", "web"],
    ["status", "--app", "json"],
    ["rolling", "--app", "web", "--image", "v2", "--reason", "-o json"],
])
def test_the_word_json_elsewhere_is_not_the_output_format(argv):
    assert hoist(argv, TABLE).output != "json"


def test_an_unknown_subcommand_is_left_for_the_parser_to_refuse():
    argv = ["ship", "--app", "web", "-n", "x"]
    assert hoist(argv, TABLE).argv == argv


def test_every_global_option_is_known_with_its_arity():
    assert all(TABLE.globals[o].takes_value for o in ("-n", "--namespace", "--context", "-o"))
    assert TABLE.globals["-n"].name == TABLE.globals["--namespace"].name == "namespace"
    assert not TABLE.globals["-v"].takes_value
    assert not TABLE.globals["--allow-system-namespace"].takes_value
    assert "--help" not in TABLE.globals and "--version" not in TABLE.globals
    assert set(TABLE.commands) >= {"rolling", "recreate", "canary", "blue-green", "rollback",
                                   "promote", "abort", "status", "history"}


def test_a_global_option_after_the_subcommand_is_parsed_not_refused(capsys):
    from deployer.cli import run

    assert run(["promote", "--app", "Bad_Name", "-n", "shop"]) == 2
    err = capsys.readouterr().err
    assert "No such option" not in err and "Bad_Name" in err
    assert run(["status", "--app", "web", "-oxml"]) == 2
    assert "--output 'xml' is invalid" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "name"), [
    (["rolling", "--app", "hello", "--image", "v2", "--app", "web"], "app_name"),
    (["-n", "a", "rollback", "--app", "web", "--namespace", "b"], "namespace"),
    (["status", "--app", "web", "-ojson", "--output=text"], "output"),
])
def test_an_option_given_twice_is_reported(argv, name):
    assert list(hoist(argv, TABLE).repeated) == [name]


def test_flags_may_repeat():
    assert hoist(["status", "--app", "web", "-v", "-v"], TABLE).repeated == {}


def test_a_repeated_app_is_an_input_error_naming_both(capsys):
    from deployer.cli import run

    assert run(["rolling", "--app", "hello", "--image", "v2", "--app", "web"]) == 2
    err = capsys.readouterr().err
    assert "--app hello" in err and "--app web" in err and "once" in err
