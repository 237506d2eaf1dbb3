"""`envspec lock` end to end through the CLI against a real index on 127.0.0.1: freshness
without network, --check, determinism, PEP 751 validity, credentials kept out, bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from envspec.cli import main
from support import procs
from support.envproject import clean_environ
from support.index_server import IndexServer

SPEC = """\
[environment]
name = "t"
python = "3.11"
targets = ["linux-x86_64", "windows-x86_64", "macos-arm64"]

[indexes]
pypi = "{url}"

[[phases]]
name = "numpy"
requirements = ["numpy<2"]

[[phases]]
name = "app"
requirements = ["app"]
"""


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    index_server.add_wheel("numpy", "1.26.4", tag="cp311-cp311-manylinux_2_17_x86_64")
    index_server.add_wheel("numpy", "1.26.4", tag="cp311-cp311-win_amd64")
    index_server.add_wheel("numpy", "1.26.4", tag="cp311-cp311-macosx_11_0_arm64")
    index_server.add_wheel("numpy", "2.1.0")
    index_server.add_wheel("app", "1.0", requires_dist=["numpy>=1.20", "six"])
    index_server.add_wheel("six", "1.16.0", pad_bytes=3_000_000)
    root = tmp_path / "project"
    root.mkdir()
    (root / "envspec.toml").write_text(SPEC.format(url=index_server.url))
    return root


def lock(project: Path, *args: str) -> int:
    return main(["lock", "--project", str(project), "--cache-dir", str(project / ".cache"), *args])


def lock_bytes(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "locks").glob("*.toml"))}


def test_lock_writes_one_valid_pep751_lock_per_target(project: Path) -> None:
    assert lock(project) == 0
    locks = lock_bytes(project)
    assert sorted(locks) == [
        "pylock.linux-x86_64.toml",
        "pylock.macos-arm64.toml",
        "pylock.windows-x86_64.toml",
    ]
    for data in locks.values():
        doc = tomllib.loads(data.decode())
        Pylock.from_dict(doc)  # raises when the lock is not valid PEP 751
        pins = {p["name"]: p["version"] for p in doc["packages"]}
        assert pins == {"numpy": "1.26.4", "app": "1.0", "six": "1.16.0"}
    windows = tomllib.loads(locks["pylock.windows-x86_64.toml"].decode())
    numpy = next(p for p in windows["packages"] if p["name"] == "numpy")
    assert numpy["wheels"][0]["name"] == "numpy-1.26.4-cp311-cp311-win_amd64.whl"
    assert windows["environments"] == ["sys_platform == 'win32' and platform_machine == 'AMD64'"]


def test_metadata_never_downloads_a_whole_wheel(project: Path, index_server: IndexServer) -> None:
    index_server.metadata = False
    assert lock(project) == 0
    six = "six-1.16.0-py3-none-any.whl"
    assert 0 < index_server.file_bytes_sent(six) < 200_000


def test_locking_twice_gives_the_same_bytes(project: Path) -> None:
    assert lock(project) == 0
    first = lock_bytes(project)
    for path in (project / "locks").iterdir():
        path.unlink()
    assert lock(project, "--refresh") == 0
    assert lock_bytes(project) == first


def test_locking_some_targets_reads_the_pages_a_full_lock_parsed(project: Path) -> None:
    """The cache keeps pages parsed per file filter; the filter is the spec's targets', not
    the ones locked now, so `--target` (or sync relocking one stale target) reuses them."""
    assert lock(project) == 0
    first = lock_bytes(project)
    parsed = sorted((project / ".cache").rglob("*.listing"))
    for path in (project / "locks").iterdir():
        path.unlink()
    for target in ("linux-x86_64", "windows-x86_64", "macos-arm64"):
        assert lock(project, "--target", target, "--offline") == 0
    assert sorted((project / ".cache").rglob("*.listing")) == parsed
    assert lock_bytes(project) == first


def test_fresh_locks_need_no_network(
    project: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project) == 0
    before = lock_bytes(project)
    index_server.stop()
    capsys.readouterr()
    assert lock(project) == 0
    assert lock_bytes(project) == before
    assert "linux-x86_64: up to date (locks/pylock.linux-x86_64.toml)" in capsys.readouterr().err


def test_an_unchanged_relock_imports_no_resolver_network_or_apply_code(project: Path) -> None:
    """What keeps an unchanged relock fast: it reads the spec and the locks, nothing else;
    locks it read before come from the checked-lock memo (no `parse`, no `packaging.pylock`)."""
    assert lock(project) == 0
    assert lock(project) == 0  # the locks read in full once: memoized
    cache = str(project / ".cache")
    script = (
        "import sys; from envspec.cli import main; "
        f"code = main(['lock', '-q', '--project', {str(project)!r}, '--cache-dir', {cache!r}]); "
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('urllib3', 'resolvelib', 'tomlkit') or m.startswith(('envspec.apply', "
        "'envspec.resolve', 'envspec.index', 'envspec.review', 'envspec.commands', "
        "'packaging.pylock', 'envspec.lockfile.parse'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.stdout == "0 []\n", done.stderr


def test_check_names_missing_and_stale_locks_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project, "--check") == 3
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "error: locks out of date: linux-x86_64 (missing), windows-x86_64 (missing), "
        "macos-arm64 (missing)"
    )
    assert not (project / "locks").exists()
    assert lock(project) == 0
    assert lock(project, "--check") == 0
    spec = project / "envspec.toml"
    spec.write_text(spec.read_text().replace('"numpy<2"', '"numpy<1.27"'))
    before = lock_bytes(project)
    assert lock(project, "--check") == 3
    assert "linux-x86_64 (stale: phase numpy: numpy<2 → numpy<1.27)" in capsys.readouterr().err
    assert lock_bytes(project) == before


def test_check_resolves_nothing_so_it_takes_no_upgrade_and_ignores_refresh(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fresh locks with --check --refresh were "out of date (fresh)", exit 3."""
    assert lock(project) == 0
    before = lock_bytes(project)
    capsys.readouterr()
    assert lock(project, "--check", "--refresh") == 0
    for flags, hint in (
        (["--upgrade"], "'envspec lock --upgrade'"),
        (["--upgrade-package", "six"], "'envspec lock --upgrade-package NAME'"),
        (["--upgrade", "--upgrade-package", "six"], "'envspec lock --upgrade'"),
    ):
        capsys.readouterr()
        assert lock(project, "--check", *flags) == 2
        assert capsys.readouterr().err == (
            f"error: argument {flags[0]}: not allowed with argument --check\n"
            "hint: --check compares the locks with the spec and resolves nothing: relock with "
            f"{hint}\n"
        )
    assert lock_bytes(project) == before


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (
            "six==1.15.0",
            "envspec lock --upgrade-package six; for a version bound, write it in envspec.toml "
            "(envspec add 'six==1.15.0')",
        ),
        ("six[socks]", "envspec lock --upgrade-package six"),
        ("==1", ""),
    ],
)
def test_upgrade_package_takes_a_name_only(
    project: Path, capsys: pytest.CaptureFixture[str], value: str, hint: str
) -> None:
    """'six==1.15.0' was taken, lifted no pin (its canonical form, six-1-15-0, names no
    package) and was ignored without a word: six stayed at its pin."""
    assert lock(project) == 0
    before = lock_bytes(project)
    capsys.readouterr()
    assert lock(project, "--upgrade-package", value) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --upgrade-package: '{value}' is not a package name",
        *([f"hint: {hint}"] if hint else []),
    ]
    assert lock_bytes(project) == before


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_a_read_stalls_ends_the_lock_at_once_with_its_error_event(
    project: Path, index_server: IndexServer, sent: signal.Signals, code: int
) -> None:
    """Not after the stalled read's timeout (30 s), and not killed without a word (SIGTERM's
    default); nothing written."""
    index_server.fault_sleep = 60.0
    index_server.fail(".metadata", "timeout", times=100)
    proc = subprocess.Popen(
        [sys.executable, "-m", "envspec", "--json", "lock", "--project", str(project),
         "--cache-dir", str(project / ".cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environ(),
    )  # fmt: skip
    out, err = procs.interrupt_on_stall(proc, index_server, lambda p: p.endswith(".metadata"), sent)
    assert proc.returncode == code
    assert err.splitlines()[-1:] == [f"error: interrupted by {sent.name}"]
    assert json.loads(out.splitlines()[-1]) == {
        "event": "error", "message": f"interrupted by {sent.name}", "hint": "", "exit_code": code,
    }  # fmt: skip
    assert not (project / "locks").exists()


def test_credentials_never_reach_the_lock(tmp_path: Path, index_server: IndexServer) -> None:
    index_server.auth = ("alice", "s3cret-pw")
    index_server.add_wheel("six", "1.16.0")
    root = tmp_path / "p"
    root.mkdir()
    url = index_server.url_with_auth("alice", "s3cret-pw")
    spec = SPEC.format(url=url).replace('requirements = ["app"]', 'requirements = ["six"]')
    (root / "envspec.toml").write_text(spec.replace('"numpy<2"', '"six"'))
    assert lock(root, "--target", "linux-x86_64") == 0
    text = (root / "locks" / "pylock.linux-x86_64.toml").read_text()
    assert "s3cret-pw" not in text and "alice" not in text
    assert all("s3cret-pw" not in p.read_text(errors="ignore") for p in _files(root / ".cache"))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_unknown_target_is_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lock(project, "--target", "linux-x86") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --target: target 'linux-x86' is not in the spec",
        "hint: did you mean 'linux-x86_64'?",
    ]
    assert not (project / "locks").exists()


def test_corrupt_lock_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lock(project) == 0
    path = project / "locks" / "pylock.linux-x86_64.toml"
    path.write_text('lock-version = "2.0"\n')
    capsys.readouterr()
    assert lock(project) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: unsupported lock-version '2.0' (this envspec reads 1.x)",
        "hint: upgrade envspec to read this lock",
    ]
    assert path.read_text() == 'lock-version = "2.0"\n'


def test_impossible_resolution_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = project / "envspec.toml"
    spec.write_text(spec.read_text().replace('"app"]', '"app", "numpy>=2"]'))
    assert lock(project) == 1
    err = capsys.readouterr().err
    assert "numpy<2 (phase numpy) conflicts with numpy>=2 (phase app)" in err
    assert "Traceback" not in err
    assert not (project / "locks").exists()


def test_macos_targets_lock_for_macos_14_by_default_and_say_so(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # bitsandbytes >= 0.49 (and torch >= 2.12) ship macOS 14 wheels only
    index_server.add_wheel("bnb", "0.42.0")
    index_server.add_wheel("bnb", "0.50.2", tag="py3-none-macosx_14_0_arm64")
    index_server.add_wheel("bnb", "0.50.2", tag="py3-none-manylinux_2_24_x86_64")
    index_server.add_wheel("six", "1.16.0")
    root = tmp_path / "project"
    root.mkdir()
    spec = SPEC.format(url=index_server.url).split("[[phases]]")[0]
    spec = spec.replace('"linux-x86_64", "windows-x86_64", ', '"linux-x86_64", ')
    phase = '[[phases]]\nname = "main"\nrequirements = ["bnb", "six"]\n'
    (root / "envspec.toml").write_text(spec + phase)
    capsys.readouterr()
    assert lock(root) == 0
    err = re.sub(r" in \d+\.\d\ds$", "", capsys.readouterr().err, flags=re.M)
    lines = err.splitlines()
    assert "linux-x86_64: 2 packages (new lock), wrote locks/pylock.linux-x86_64.toml" in lines
    assert (
        "macos-arm64: 2 packages (new lock), wrote locks/pylock.macos-arm64.toml (for macOS 14.0)"
        in lines
    )
    mac = tomllib.loads((root / "locks" / "pylock.macos-arm64.toml").read_text())
    assert {p["name"]: p["version"] for p in mac["packages"]} == {"bnb": "0.50.2", "six": "1.16.0"}
    assert mac["tool"]["envspec"]["inputs"]["target"]["macos"] == "14.0"


def test_a_target_setting_stales_only_the_locks_it_is_read_for(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock(project) == 0
    linux = project / "locks" / "pylock.linux-x86_64.toml"
    # a lock made when macOS 13.0 was the default: what it says of macOS is not its concern
    text = linux.read_text()
    assert 'macos = "14.0"' in text
    linux.write_text(text.replace('macos = "14.0"', 'macos = "13.0"'))
    assert lock(project, "--check") == 0
    spec = project / "envspec.toml"
    spec.write_text(spec.read_text() + '\n[targets.macos-arm64]\nmacos = "15.0"\n')
    capsys.readouterr()
    assert lock(project, "--check") == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: locks out of date: macos-arm64 (stale: target macos 14.0 → 15.0)"
    )


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_cache_folder_that_is_a_file_fails_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    """It was a NotADirectoryError traceback from the first page stored."""
    blocker = project.parent / "cachefile"
    blocker.write_text("")
    cache = blocker / under if under else blocker
    capsys.readouterr()
    argv = ["lock", "--project", str(project), "--cache-dir", str(cache)]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {cache}: cannot write the cache: Not a directory",
        "hint: pass --cache-dir DIR (or set ENVSPEC_CACHE_DIR) to a folder envspec can write",
    ]
    assert not (project / "locks").exists()


def test_a_lock_edited_to_say_when_it_installs_is_stale(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited `environments`, `requires-python` or package `marker` was fresh for
    `lock --check` (it compares the recorded inputs), so CI passed a lock that `sync` then
    applied differently; relocking writes it back."""
    assert lock(project) == 0
    path = project / "locks" / "pylock.linux-x86_64.toml"
    written = path.read_bytes()
    text = written.decode()
    edited = text.replace(
        "environments = [\"sys_platform == 'linux' and platform_machine == 'x86_64'\"]",
        "environments = [\"sys_platform == 'linux'\"]",
    ).replace('requires-python = "==3.11.*"', 'requires-python = ">=3.10"')
    edited = edited.replace(
        'name = "six"\nversion = "1.16.0"\n',
        'name = "six"\nversion = "1.16.0"\nmarker = "python_version < \'3.0\'"\n',
    )
    assert edited.count("\n") == text.count("\n") + 1 and ">=3.10" in edited
    path.write_text(edited)
    capsys.readouterr()
    assert lock(project, "--check") == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: locks out of date: linux-x86_64 (stale: environments "
        "\"sys_platform == 'linux'\" are not linux-x86_64's, requires-python '>=3.10' is not "
        "the spec's ('==3.11.*'), six has a marker (\"python_version < '3.0'\"), which envspec "
        "does not write)"
    )
    assert path.read_text() == edited
    assert lock(project) == 0
    assert path.read_bytes() == written


@pytest.mark.parametrize("module", ["envspec.cli", "envspec.cli_lock", "envspec.output"])
def test_a_sigterm_while_the_command_line_is_imported_is_reported(
    tmp_path: Path, module: str
) -> None:
    """SIGTERM's default action ended the process with 143 and no word for the first ~0.1 s,
    while `envspec.cli` was imported. The signal is sent from an import hook, at the import
    of `module`, into the script's own entry (`envspec.entry:run`, as `[project.scripts]`)."""
    script = (
        "import os, signal, sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        "from envspec.entry import run\n"
        "raise SystemExit(run())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "lock", "--project", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_environ(),
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (143, "error: interrupted by SIGTERM\n")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            ('{name = "app"}', '{name = "app", skipped = "hand-edited"}'),
            "phase app recorded as skipped, but it is required",
        ),
        (('{name = "app"}', '{name = "app", optional = true}'), "phase app recorded as optional"),
        (
            ('{name = "app"}', '{name = "app", index = "pypi"}'),
            "phase app recorded with index pypi",
        ),
        (
            ('[{name = "numpy"}, {name = "app"}]', '[{name = "app"}, {name = "numpy"}]'),
            "phases recorded as app, numpy, not the spec's",
        ),
        (
            ('{name = "app"}]', '{name = "app"}, {name = "ghost"}]'),
            "phases recorded as numpy, app, ghost, not the spec's",
        ),
    ],
)
def test_an_edited_phases_table_is_stale(
    project: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], reason: str
) -> None:
    """`[tool.envspec] phases` is not in the recorded inputs: a phase edited to be skipped was
    "up to date", and sync left it out and said "Synced."; reordered, it installed app first."""
    assert lock(project) == 0
    path = project / "locks" / "pylock.linux-x86_64.toml"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    capsys.readouterr()
    assert lock(project, "--check") == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: locks out of date: linux-x86_64 (stale: {reason})"
    )


def test_a_long_hand_edited_marker_is_cut_in_the_stale_reason(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 66 KB marker was printed whole, by lock --check and by every sync warning."""
    assert lock(project) == 0
    path = project / "locks" / "pylock.linux-x86_64.toml"
    marker = " or ".join(["python_version < '3.0'"] * 3000)
    head = 'name = "six"\nversion = "1.16.0"\n'
    path.write_text(path.read_text().replace(head, f'{head}marker = "{marker}"\n'))
    capsys.readouterr()
    assert lock(project, "--check") == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        f'error: locks out of date: linux-x86_64 (stale: six has a marker ("{marker[:71]}…"), '
        "which envspec does not write)"
    )


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (('name = "app"\nrequirements', 'nome = "app"\nrequirements'),
         "phase app added, phase (no name) removed"),  # it was a KeyError traceback
        (('requirements = ["app"]', 'requirements = "app"'),
         "phase app: requirements recorded as app, not a list"),  # "removed a, removed p, …"
        (('python = "3.11"', "python = 3.11"), "python 3.11 (a number) → 3.11"),  # "3.11 → 3.11"
    ],
)  # fmt: skip
def test_recorded_inputs_of_the_wrong_shape_are_stale_in_plain_words(
    project: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], reason: str
) -> None:
    assert lock(project) == 0
    path = project / "locks" / "pylock.linux-x86_64.toml"
    text = path.read_text()
    assert text.count(edit[0]) == 1, edit[0]
    path.write_text(text.replace(edit[0], edit[1]))
    capsys.readouterr()
    assert lock(project, "--check") == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: locks out of date: linux-x86_64 (stale: {reason})"
    )
