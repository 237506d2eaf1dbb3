"""The command line's conventions (issue 12): the project found from any folder inside it,
global options before or after the command, each command's --help showing the options it
uses with their defaults and the valid targets, results on stdout and logs on stderr, a
closed pipe ending quietly (the installed entry point, in a real process), usage errors as
JSON events, plurals, and long plan lines wrapped. Locks made through the CLI against real
wheels on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from envspec.cli import HEAVY, USES, build_parser, main
from envspec.render import wrap_items
from envspec.review.init import DEFAULT_TARGETS
from envspec.targets import KNOWN
from support.index_server import IndexServer
from support.lockproject import lock, spec_text


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    index_server.add_wheel("numpy", "1.26.4")
    index_server.add_wheel("app", "1.0", requires_dist=["numpy>=1.20"])
    root = tmp_path / "project"
    (root / "src" / "deep").mkdir(parents=True)
    numpy = {"name": "numpy", "requirements": ["numpy<2"]}
    text = spec_text({"pypi": index_server.url}, [numpy, {"name": "app", "requirements": ["app"]}])
    (root / "envspec.toml").write_text(text)
    assert lock(root) == 0
    return root


def _commands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


# --- finding the project ------------------------------------------------------------------


def test_the_project_is_found_from_a_folder_inside_it(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project / "src" / "deep")
    capsys.readouterr()
    assert main(["why", "numpy", "--target", "linux-x86_64"]) == 0
    assert capsys.readouterr().out.startswith("linux-x86_64: numpy 1.26.4, phase numpy\n")
    assert main(["lock", "--check"]) == 0
    assert capsys.readouterr().err == "All 2 locks are up to date.\n"
    (project / "envspec.toml").write_text("[environment\n")
    assert main(["lock", "--check"]) == 2
    assert capsys.readouterr().err == (
        "error: ../../envspec.toml:1:13: invalid TOML: expected ']' at the end of a table "
        "declaration\n"
    )


def test_project_wins_and_init_writes_here(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(project / "src")
    assert main(["lock", "--check", "--project", str(elsewhere)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {elsewhere / 'envspec.toml'}: no spec file")
    assert main(["init"]) == 0  # not in the project found above: here
    assert (project / "src" / "envspec.toml").is_file()


def test_no_project_anywhere_names_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["lock"]) == 2
    assert capsys.readouterr().err == (
        "error: envspec.toml: no spec file\nhint: run 'envspec init' to write one\n"
    )


# --- global options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--project", "{p}", "why", "app", "--target", "linux-x86_64"],
        ["why", "app", "--target", "linux-x86_64", "--project", "{p}", "--json"],
        ["--project", "{p}", "why", "--json", "app", "--target", "linux-x86_64"],
    ],
)
def test_global_options_go_before_or_after_the_command(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    capsys.readouterr()
    assert main([a.format(p=project) for a in argv]) == 0
    [event] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert event["event"] == "why" and event["targets"][0]["version"] == "1.0"


def test_a_global_option_given_twice_keeps_the_later() -> None:
    args = build_parser().parse_args(["--project", "a", "why", "x", "--project", "b"])
    assert args.project == Path("b")
    args = build_parser().parse_args(["-q", "--cache-dir", "c", "lock"])
    cache = Path("c").absolute()  # made absolute, as uv makes it (see test_sync.py)
    assert (args.quiet, args.cache_dir, args.json, args.offline) == (True, cache, False, False)


def test_the_cache_is_envspec_cache_dir_unless_the_option_names_one(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As uv's UV_CACHE_DIR: the variable is the default, relative to the current folder, and
    `--cache-dir` wins over it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVSPEC_CACHE_DIR", "from-env")
    shutil.rmtree(project / "locks")
    assert main(["lock", "-q", "--project", str(project)]) == 0
    assert sorted(p.name for p in (tmp_path / "from-env").iterdir()) == ["v1"]
    shutil.rmtree(tmp_path / "from-env")
    shutil.rmtree(project / "locks")
    assert main(["lock", "-q", "--project", str(project), "--cache-dir", "given"]) == 0
    assert (tmp_path / "given" / "v1").is_dir() and not (tmp_path / "from-env").exists()
    monkeypatch.setenv("ENVSPEC_CACHE_DIR", "")  # empty: as if not set, the user's cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shutil.rmtree(project / "locks")
    assert main(["lock", "-q", "--project", str(project)]) == 0
    assert (tmp_path / "xdg" / "envspec" / "v1").is_dir()


@pytest.mark.parametrize("command", sorted(USES))
def test_help_shows_the_options_a_command_uses_each_described(command: str) -> None:
    parser = _commands()[command]
    shown = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.help != argparse.SUPPRESS
    }
    globals_shown = {d for d in shown if d in {"project", "verbose", "quiet", "json"}}
    globals_shown |= {d for d in shown if d in {"offline", "cache_dir"}}
    assert globals_shown == set(USES[command])
    for dest, action in shown.items():
        assert action.help, f"{command} {dest}: no help"
        default = action.default
        if default not in (None, False, [], 0, argparse.SUPPRESS) and dest != "help":
            assert "default" in action.help, f"{command} {dest}: default {default!r} not said"
        if dest == "target":
            assert action.help.endswith("one of " + ", ".join(KNOWN)), command
    text = parser.format_help()
    for dest in shown:
        assert shown[dest].option_strings[-1] in text


def test_the_top_help_lists_the_targets_and_init_says_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "targets: " + ", ".join(KNOWN) + "." in " ".join(capsys.readouterr().out.split())
    init = next(a for a in _commands()["init"]._actions if a.dest == "target")
    assert f"default: {', '.join(DEFAULT_TARGETS)})" in (init.help or "")


def test_a_hidden_global_option_is_still_accepted(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`why` does not use --offline (hidden from its help), yet a script passing it to every
    command still works."""
    capsys.readouterr()
    assert main(["why", "app", "--offline", "--project", str(project)]) == 0
    assert "--offline" not in _commands()["why"].format_help()


def test_each_heavy_command_is_named_with_its_own_module() -> None:
    from envspec import cli_bundle, cli_cache, cli_edit, cli_env

    modules = (cli_edit, cli_env, cli_bundle, cli_cache)
    owners = {c: m.__name__.split(".")[-1] for m in modules for c in m.COMMANDS}
    assert owners == HEAVY


def test_a_command_imports_only_its_own_commands_module(tmp_path: Path) -> None:
    """`history` (a `cli_env` command) builds the parsers of its module and of the lock and
    review commands, and runs, without importing the other modules' (tomlkit, the bundle
    commands): a `sync` with nothing to do spent a fifth of its instructions on them."""
    script = (
        "import sys; from envspec.cli import main; "
        f"code = main(['history', '--python', {str(tmp_path / 'none')!r}]); "
        "print(code, sorted(m for m in sys.modules if m.startswith(('envspec.cli_', 'tomlkit', "
        "'envspec.commands.bundle'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.stdout == "2 ['envspec.cli_env', 'envspec.cli_lock']\n", done.stderr


# --- output ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--import-timeout", "nan"], "--import-timeout: 'nan' is not a number of "
         "seconds (more than 0)"),
        (["check", "--import-timeout", "inf"], "--import-timeout: 'inf' is not a number of "
         "seconds (more than 0)"),
        (["check", "--import-timeout", "-5"], "--import-timeout: '-5' is not a number of "
         "seconds (more than 0)"),
        (["sync", "--lock-timeout", "-1"], "--lock-timeout: '-1' is not a number of seconds "
         "(0 or more)"),
    ],
)
def test_a_timeout_is_a_finite_number_of_seconds(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """'nan' and 'inf' were taken and failed with a traceback (int(nan) in the import probe);
    '-5' failed every import check, 'timed out after -5s'."""
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[0] == f"error: argument {message}"


def test_usage_errors_are_error_events_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--json", "why"], ["why", "x", "--json", "--targt", "x"], ["--json", "nope"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        [event] = [json.loads(line) for line in captured.out.splitlines()]
        assert event["event"] == "error" and event["exit_code"] == 2
        assert captured.err.startswith(f"error: {event['message']}\n")
    assert main(["--json", "sync", "--lock-timeout", "soon"]) == 2
    event = json.loads(capsys.readouterr().out)
    assert event["message"] == (
        "argument --lock-timeout: 'soon' is not a number of seconds (0 or more)"
    )
    assert main(["--", "--json"]) == 2  # not an option after "--": no event
    assert capsys.readouterr().out == ""


def _entry_point() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "envspec")


def test_a_closed_pipe_ends_quietly(project: Path) -> None:
    """The installed `envspec`, its stdout a pipe whose reader has gone (as `| head -1`
    leaves it): no traceback, no "Exception ignored", exit 141 (128 + SIGPIPE)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [_entry_point(), "why", "numpy", "--project", str(project)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_reader_that_stops_early_gets_its_lines(project: Path) -> None:
    """`envspec export | head -1` through a real shell pipe: the first line arrives, and
    nothing is said on stderr however the race between the two ends."""
    shell = subprocess.run(
        ["sh", "-c", f'"{_entry_point()}" export --target linux-x86_64 | head -1'],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shell.stdout == (
        "# target linux-x86_64, exported by envspec from locks/pylock.linux-x86_64.toml\n"
    )
    assert shell.stderr == ""


def test_history_is_a_result_on_stdout_and_why_logs_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["why", "numpy", "-q", "--project", str(project)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("numpy 1.26.4, phase numpy") == 2  # -q keeps the result
    assert captured.err == ""


def test_plurals(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("one", "1.0")
    root = tmp_path / "single"
    root.mkdir()
    phases = [{"name": "main", "requirements": ["one"]}]
    (root / "envspec.toml").write_text(
        spec_text({"pypi": index_server.url}, phases, targets=("linux-x86_64",))
    )
    assert lock(root) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"linux-x86_64: 1 package \(new lock\), wrote locks/pylock.linux-x86_64.toml in "
        r"\d+\.\d\ds",
        line,
    )
    index_server.add_wheel("two", "1.0")
    (root / "envspec.toml").write_text(
        spec_text(
            {"pypi": index_server.url},
            [{"name": "main", "requirements": ["one", "two"]}],
            targets=("linux-x86_64",),
        )
    )
    assert lock(root) == 0
    assert "linux-x86_64: 2 packages (1 added), wrote" in capsys.readouterr().err
    assert lock(root, "--check") == 0
    assert capsys.readouterr().err == "The lock is up to date.\n"


def test_long_plan_lines_wrap_between_steps() -> None:
    steps = [f"install package-{i} 1.0" for i in range(5)]
    assert wrap_items("  phase app: ", steps, 60) == [
        "  phase app: install package-0 1.0, install package-1 1.0,",
        "    install package-2 1.0, install package-3 1.0,",
        "    install package-4 1.0",
    ]
    assert wrap_items("  phase app: ", steps, None) == ["  phase app: " + ", ".join(steps)]
    assert wrap_items("  x: ", ["a-very-long-step-that-cannot-fit"], 10) == [
        "  x: a-very-long-step-that-cannot-fit"
    ]


def test_python_m_envspec_is_the_same_command(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "envspec", "why", "six", "--project", str(project), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["message"] == "locks: package 'six' is not in any lock"


def test_a_dry_runs_plan_is_on_stdout_wrapped_at_columns(
    tmp_path: Path,
    index_server: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from support.envproject import EnvProject

    names = ["alpha", "beta", "gamma", "delta"]
    for name in names:
        index_server.add_wheel(name, "1.0")
    env = EnvProject(tmp_path, index_server)
    env.write_spec([{"name": "main", "requirements": names}])
    env.lock()
    env.make_env()
    monkeypatch.setenv("COLUMNS", "50")
    capsys.readouterr()
    assert env.run("sync", "--dry-run") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "Plan (dry run):",
        "  phase main: install alpha 1.0, install beta 1.0,",
        "    install delta 1.0, install gamma 1.0",
    ]
    assert "Plan" not in captured.err


def test_a_removed_current_folder_is_one_line(tmp_path: Path) -> None:
    """It was a FileNotFoundError traceback from Path.cwd() while looking for the project."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m envspec lock --check'
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        ["error: the current folder no longer exists",
         "hint: cd into the project, or pass --project DIR"],
    )  # fmt: skip
