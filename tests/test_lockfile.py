"""`Lock` ⇄ PEP 751 TOML: conformance (checked by `packaging.pylock`), layout, round trips,
byte determinism, atomic writes, and every bad lock with its exact message."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import stat
import string
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.pylock import PackageSdist, PackageVcs, PackageWheel, Pylock
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.errors import EXIT_STALE, EXIT_USAGE, LockFileError, StaleLockError
from envspec.lockfile import dump_lock, load_lock, lock_path, parse_lock, write_lock
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase, VcsSource, utc_text

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SHA_A, SHA_B = "a" * 64, "b" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PYPI = "https://pypi.org/simple/"
FILES = "https://files.pythonhosted.org/packages/ab/cd"
NUMPY_WHEEL = "numpy-1.26.4-cp311-cp311-win_amd64.whl"
NOT_HEX = "g" * 64
DAMAGED = "the lock was edited or damaged: restore it, or delete it and run 'envspec lock'"


def package(name: str, version: str, **fields: Any) -> LockedPackage:
    return LockedPackage(name=canonicalize_name(name), version=Version(version), **fields)


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def wheel(filename: str, sha256: str | None = SHA_A, **fields: Any) -> Artifact:
    url = f"{FILES}/{filename}"
    return Artifact(filename=filename, url=url, kind="wheel", sha256=sha256, **fields)


def sample_lock(**changes: Any) -> Lock:
    fields: dict[str, Any] = {
        "target": "windows-x86_64",
        "requires_python": "==3.11.*",
        "environments": ("sys_platform == 'win32' and platform_machine == 'AMD64'",),
        "packages": (
            package(
                "numpy",
                "1.26.4",
                index=PYPI,
                artifact=wheel(
                    NUMPY_WHEEL, size=15772810, upload_time=moment("2024-02-05T23:48:01Z")
                ),
                phase="numpy",
                required_by=("<spec>", "unsloth"),
            ),
            package(
                "antlr4-python3-runtime",
                "4.9.3",
                index=PYPI,
                artifact=Artifact(
                    filename="antlr4-python3-runtime-4.9.3.tar.gz",
                    url=f"{FILES}/antlr4-python3-runtime-4.9.3.tar.gz",
                    kind="sdist",
                    sha256=SHA_B,
                    size=117034,
                ),
                phase="training",
                required_by=("unsloth",),
            ),
            package(
                "unsloth",
                "2025.1.5",
                vcs=VcsSource(
                    url="https://github.com/unslothai/unsloth.git",
                    requested_revision="main",
                    commit_id=COMMIT,
                ),
                phase="unsloth",
                required_by=("<spec>",),
            ),
        ),
        "phases": (
            LockedPhase(name="numpy"),
            LockedPhase(name="torch", index="pytorch-cu121"),
            LockedPhase(name="triton", optional=True, skipped="no wheel fits windows-x86_64"),
            LockedPhase(name="unsloth"),
            LockedPhase(name="training"),
        ),
        "inputs": {
            "python": "3.11",
            "target": {"glibc": "2.28", "macos": "13.0"},
            "phases": [
                {"name": "numpy", "requirements": ["numpy<2"]},
                {"name": "torch", "index": "pytorch-cu121", "requirements": ["torch"]},
            ],
            "resolution": {"constraints": [], "prereleases": "if-necessary"},
        },
    }
    fields.update(changes)
    return Lock(**fields)


EXPECTED = f"""\
lock-version = "1.0"
environments = ["sys_platform == 'win32' and platform_machine == 'AMD64'"]
requires-python = "==3.11.*"
created-by = "envspec"

[[packages]]
name = "antlr4-python3-runtime"
version = "4.9.3"
index = "{PYPI}"

[packages.sdist]
name = "antlr4-python3-runtime-4.9.3.tar.gz"
url = "{FILES}/antlr4-python3-runtime-4.9.3.tar.gz"
size = 117034
hashes = {{sha256 = "{SHA_B}"}}

[packages.tool.envspec]
phase = "training"
required-by = ["unsloth"]

[[packages]]
name = "numpy"
version = "1.26.4"
index = "{PYPI}"
wheels = [
    {{name = "{NUMPY_WHEEL}", url = "{FILES}/{NUMPY_WHEEL}", size = 15772810, \
upload-time = 2024-02-05T23:48:01Z, hashes = {{sha256 = "{SHA_A}"}}}},
]

[packages.tool.envspec]
phase = "numpy"
required-by = ["<spec>", "unsloth"]

[[packages]]
name = "unsloth"
version = "2025.1.5"

[packages.vcs]
type = "git"
url = "https://github.com/unslothai/unsloth.git"
requested-revision = "main"
commit-id = "{COMMIT}"

[packages.tool.envspec]
phase = "unsloth"
required-by = ["<spec>"]

[tool.envspec]
target = "windows-x86_64"
phases = [
    {{name = "numpy"}},
    {{name = "torch", index = "pytorch-cu121"}},
    {{name = "triton", optional = true, skipped = "no wheel fits windows-x86_64"}},
    {{name = "unsloth"}},
    {{name = "training"}},
]

[tool.envspec.inputs]
python = "3.11"

[[tool.envspec.inputs.phases]]
name = "numpy"
requirements = ["numpy<2"]

[[tool.envspec.inputs.phases]]
index = "pytorch-cu121"
name = "torch"
requirements = ["torch"]

[tool.envspec.inputs.resolution]
constraints = []
prereleases = "if-necessary"

[tool.envspec.inputs.target]
glibc = "2.28"
macos = "13.0"
"""


def test_dump_layout() -> None:
    assert dump_lock(sample_lock()) == EXPECTED


def test_dump_is_a_valid_pylock_with_wheel_sdist_and_vcs_packages() -> None:
    pylock = Pylock.from_dict(tomllib.loads(dump_lock(sample_lock())))
    assert str(pylock.lock_version) == "1.0"
    assert pylock.created_by == "envspec"
    sources: dict[str, object] = {}
    for entry in pylock.packages:
        sources[entry.name] = entry.vcs or entry.sdist or (entry.wheels or [])[0]
    assert isinstance(sources["numpy"], PackageWheel)
    assert sources["numpy"].hashes == {"sha256": SHA_A}
    assert isinstance(sources["antlr4-python3-runtime"], PackageSdist)
    assert isinstance(sources["unsloth"], PackageVcs)
    assert sources["unsloth"].commit_id == COMMIT


def test_empty_lock_is_a_valid_pylock() -> None:
    lock = sample_lock(packages=(), environments=(), requires_python="")
    text = dump_lock(lock)
    assert Pylock.from_dict(tomllib.loads(text)).packages == []
    assert parse_lock(text, path="x") == lock


def test_round_trip() -> None:
    lock = sample_lock()
    text = dump_lock(lock)
    again = parse_lock(text, path="pylock.windows-x86_64.toml")
    assert sorted(again.packages, key=lambda p: p.name) == sorted(
        lock.packages, key=lambda p: p.name
    )
    assert (again.target, again.phases, again.inputs) == (lock.target, lock.phases, lock.inputs)
    assert (again.environments, again.requires_python) == (lock.environments, lock.requires_python)
    assert dump_lock(again) == text
    assert parse_lock(dump_lock(again), path="x") == again


def test_dump_is_byte_deterministic_whatever_the_order() -> None:
    lock = sample_lock()
    shuffled = sample_lock(
        packages=tuple(
            LockedPackage(
                name=p.name,
                version=p.version,
                index=p.index,
                artifact=p.artifact,
                vcs=p.vcs,
                phase=p.phase,
                required_by=tuple(reversed(p.required_by)),
            )
            for p in reversed(lock.packages)
        ),
        inputs=dict(reversed(list(lock.inputs.items()))),
    )
    assert dump_lock(lock) == dump_lock(lock) == dump_lock(shuffled)


def test_upload_times_are_written_in_utc() -> None:
    numpy = package(
        "numpy",
        "1.26.4",
        artifact=wheel(NUMPY_WHEEL, upload_time=moment("2024-02-06T01:48:01.250+02:00")),
        phase="numpy",
        required_by=("<spec>",),
    )
    lock = parse_lock(dump_lock(sample_lock(packages=(numpy,))), path="x")
    artifact = lock.packages[0].artifact
    assert artifact is not None
    utc = dt.timezone.utc
    assert artifact.upload_time == dt.datetime(2024, 2, 5, 23, 48, 1, 250000, tzinfo=utc)
    assert utc_text(artifact.upload_time) == "2024-02-05T23:48:01.250000Z"


def test_credentials_never_reach_the_lock() -> None:
    secret = "https://user:hunter2@repo.example"
    git = package(
        "private",
        "1.0",
        vcs=VcsSource(url=f"git+{secret}/p.git", requested_revision=None, commit_id=COMMIT),
    )
    ssh = package(
        "other",
        "1.0",
        vcs=VcsSource(url="git+ssh://git@host/o.git", requested_revision=None, commit_id=COMMIT),
    )
    numpy = package("numpy", "1.26.4", index=f"{secret}/simple/", artifact=wheel(NUMPY_WHEEL))
    numpy = LockedPackage(
        name=numpy.name,
        version=numpy.version,
        index=numpy.index,
        artifact=numpy.artifact.with_(url=f"{secret}/{NUMPY_WHEEL}") if numpy.artifact else None,
    )
    text = dump_lock(sample_lock(packages=(git, ssh, numpy)))
    assert "hunter2" not in text and "user" not in text
    assert 'url = "git+https://repo.example/p.git"' in text
    assert 'url = "git+ssh://git@host/o.git"' in text  # an ssh account name is no secret
    assert 'index = "https://repo.example/simple/"' in text


def test_inputs_of_every_shape_round_trip() -> None:
    inputs = {
        "z": [[1, 2], ["a"], []],
        "a": {"deep": {"deeper": {"x": 1.5, "flag": False}}, "empty": {}},
        "mixed": [{"k": "v"}, "s"],
        "tables": [{"b": [{"in": "line"}], "a": {"sub": 1}}, {}],
        "long": [f"requirement-number-{i}>=1.0" for i in range(6)],
        "key with space": "ok",
    }
    lock = sample_lock(inputs=inputs)
    text = dump_lock(lock)
    assert parse_lock(text, path="x").inputs == inputs
    assert tomllib.loads(text)["tool"]["envspec"]["inputs"] == inputs
    assert '    "requirement-number-0>=1.0",\n' in text  # a long array gets one item per line


def test_the_committed_locks_are_written_again_byte_for_byte() -> None:
    """The writer's layout is the one the committed locks were written in (tomlkit's)."""
    for path in sorted((Path(__file__).parents[1] / "locks").glob("pylock.*.toml")):
        assert dump_lock(load_lock(path)) == path.read_text("utf-8"), path.name


def test_inputs_of_random_shapes_round_trip_through_tomllib() -> None:
    """Seeded: keys and strings with quotes, backslashes, control characters and non-ASCII,
    nested tables and arrays of tables at every depth, empty ones included."""
    rnd = random.Random(20261201)
    alphabet = string.ascii_letters + ' "\\\n\t\x01\x1b\x7fé-_.=#['

    def text() -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))

    def value(depth: int) -> Any:
        kind = rnd.randint(0, 8 if depth < 3 else 4)
        if kind == 0:
            return text()
        if kind == 1:
            return rnd.choice([True, False])
        if kind == 2:
            return rnd.randint(-5, 10**12)
        if kind == 3:
            return rnd.choice([1.5, -0.0, 1e100, -2.5e-7])
        if kind == 4:
            return text() * 10
        if kind in (5, 6):
            return [value(depth + 1) for _ in range(rnd.randint(0, 4))]
        if kind == 7:
            return [mapping(depth + 1) for _ in range(rnd.randint(1, 3))]
        return mapping(depth + 1)

    def mapping(depth: int) -> dict[str, Any]:
        return {text(): value(depth) for _ in range(rnd.randint(0, 5))}

    for _ in range(300):
        inputs = mapping(0)
        text_ = dump_lock(sample_lock(inputs=inputs))
        assert tomllib.loads(text_)["tool"]["envspec"]["inputs"] == inputs
        assert parse_lock(text_, path="x").inputs == inputs


def test_dump_refuses_what_a_lock_cannot_hold() -> None:
    unhashed = package("numpy", "1.26.4", artifact=wheel(NUMPY_WHEEL, sha256=None))
    with pytest.raises(LockFileError) as caught:
        dump_lock(sample_lock(packages=(unhashed,)))
    assert (
        str(caught.value)
        == f"lock for windows-x86_64: cannot lock '{NUMPY_WHEEL}' without a sha256 hash"
    )
    assert caught.value.hint == "the resolver must hash files whose index gives no hash"
    with pytest.raises(LockFileError) as caught:
        dump_lock(sample_lock(packages=(package("numpy", "1.26.4"),)))
    assert str(caught.value) == (
        "lock for windows-x86_64: cannot lock 'numpy' 1.26.4: no artifact or git source"
    )
    with pytest.raises(LockFileError) as caught:
        dump_lock(sample_lock(inputs={"a": {"b": [1, None]}}))
    assert str(caught.value) == "tool.envspec.inputs.a.b[1]: cannot write NoneType to a lock"


def test_lock_path() -> None:
    assert lock_path(Path("proj"), "linux-x86_64") == Path("proj/locks/pylock.linux-x86_64.toml")


def test_write_lock_is_atomic_and_skips_unchanged_bytes(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "windows-x86_64")
    assert write_lock(path, sample_lock()) is True
    assert path.read_text(encoding="utf-8") == EXPECTED
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_lock(path, sample_lock()) is False
    assert path.stat().st_mtime_ns == 1_000_000_000  # untouched
    assert write_lock(path, sample_lock(target="linux-x86_64")) is True
    assert load_lock(path) == parse_lock(path.read_text(encoding="utf-8"), path=str(path))
    assert load_lock(path).target == "linux-x86_64"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_write_lock_keeps_the_mode_of_an_existing_lock(tmp_path: Path) -> None:
    path = tmp_path / "pylock.x.toml"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o664)
    assert write_lock(path, sample_lock()) is True
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_load_lock_of_a_missing_file_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "pylock.linux-x86_64.toml"
    with pytest.raises(StaleLockError) as caught:
        load_lock(path)
    assert str(caught.value) == f"{path}: no lock file"
    assert caught.value.hint == "run 'envspec lock' to write it"
    assert caught.value.exit_code == EXIT_STALE


def test_newer_minor_version_warns(caplog: pytest.LogCaptureFixture) -> None:
    text = dump_lock(sample_lock()).replace('lock-version = "1.0"', 'lock-version = "1.3"')
    text += "\n[packages-extra]\nnew-field = 1\n"  # keys a newer 1.x may add are ignored
    with caplog.at_level(logging.WARNING, logger="envspec"):
        lock = parse_lock(text, path="locks/pylock.windows-x86_64.toml")
    assert lock == parse_lock(dump_lock(sample_lock()), path="x")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "envspec",
            logging.WARNING,
            "locks/pylock.windows-x86_64.toml: lock-version 1.3 is newer than 1.0; "
            "fields this envspec does not know are ignored",
        )
    ]


GOOD = dump_lock(sample_lock())
P = "locks/pylock.windows-x86_64.toml"
NUMPY_BLOCK = GOOD[GOOD.index('name = "numpy"') : GOOD.index('[[packages]]\nname = "unsloth"')]
WHEEL_LINE = next(line for line in GOOD.splitlines() if line.startswith('    {name = "numpy-'))


def numpy_block(old: str, new: str) -> str:
    """GOOD with `old` replaced by `new` inside the numpy package (packages[1])."""
    assert old in NUMPY_BLOCK
    return GOOD.replace(NUMPY_BLOCK, NUMPY_BLOCK.replace(old, new))


BAD = [
    pytest.param(
        GOOD.replace('created-by = "envspec"', 'created-by = "envspec'),
        f"{P}:4:22: invalid TOML: illegal character '\\n'",
        "",
        id="syntax",
    ),
    pytest.param(
        GOOD.replace('lock-version = "1.0"', 'lock-version = "2.0"'),
        f"{P}: unsupported lock-version '2.0' (this envspec reads 1.x)",
        "upgrade envspec to read this lock",
        id="major",
    ),
    pytest.param(
        GOOD.replace('lock-version = "1.0"', 'lock-version = "0.9"'),
        f"{P}: unsupported lock-version '0.9' (this envspec reads 1.x)",
        "upgrade envspec to read this lock",
        id="old major",
    ),
    pytest.param(
        GOOD.replace('lock-version = "1.0"', 'lock-version = "one"'),
        f"{P}: invalid lock-version 'one'",
        "",
        id="bad version",
    ),
    pytest.param(
        GOOD.replace('lock-version = "1.0"', "lock-version = 1.0"),
        f"{P}: lock-version: expected a string, got float",
        "",
        id="version type",
    ),
    pytest.param(
        GOOD.replace('lock-version = "1.0"\n', ""),
        f"{P}: missing required key 'lock-version'",
        "",
        id="no version",
    ),
    pytest.param(
        GOOD.replace('created-by = "envspec"\n', ""),
        f"{P}: missing required key 'created-by'",
        "",
        id="no created-by",
    ),
    pytest.param(
        GOOD.replace("sys_platform == 'win32'", "sys_platform = 'win32'"),
        f"{P}: environments[0]: invalid marker "
        "'sys_platform = 'win32' and platform_machine == 'AMD64''",
        "",
        id="marker",
    ),
    pytest.param(  # parsed, then UndefinedComparison tracebacks in sync and check
        GOOD.replace("sys_platform == 'win32'", "sys_platform === 'win32'"),
        f"{P}: environments[0]: invalid marker "
        "'sys_platform === 'win32' and platform_machine == 'AMD64''",
        "",
        id="marker that cannot be evaluated",
    ),
    pytest.param(  # a set compared with '==': UndefinedComparison tracebacks in sync and check
        GOOD.replace("sys_platform == 'win32' and", "extras == 'foo' and"),
        f"{P}: environments[0]: invalid marker 'extras == 'foo' and platform_machine == "
        "'AMD64''",
        "",
        id="a set-valued marker variable compared with ==",
    ),
    pytest.param(
        GOOD.replace('"==3.11.*"', '"=3.11"'),
        f"{P}: requires-python: invalid requires-python '=3.11'",
        "",
        id="requires-python",
    ),
    pytest.param(
        GOOD[: GOOD.index("[tool.envspec]")],
        f"{P}: missing required table [tool.envspec]",
        "envspec reads the locks it writes; run 'envspec lock'",
        id="no tool.envspec",
    ),
    pytest.param(
        GOOD.replace('target = "windows-x86_64"\n', ""),
        f"{P}: tool.envspec: missing required key 'target'",
        "",
        id="no target",
    ),
    pytest.param(
        GOOD[: GOOD.index("[tool.envspec.inputs]")],
        f"{P}: tool.envspec: missing required key 'inputs'",
        "",
        id="no inputs",
    ),
    pytest.param(
        GOOD.replace('{name = "torch", index = "pytorch-cu121"}', '{name = "torch", index = 1}'),
        f"{P}: tool.envspec.phases[1].index: expected a string, got integer",
        "",
        id="phase index type",
    ),
    pytest.param(
        GOOD.replace("optional = true", 'optional = "yes"'),
        f"{P}: tool.envspec.phases[2].optional: expected a boolean, got string",
        "",
        id="phase optional type",
    ),
    pytest.param(
        GOOD[: GOOD.index("[[packages]]")] + GOOD[GOOD.index("[tool.envspec]") :],
        f"{P}: missing required key 'packages'",
        "",
        id="no packages",
    ),
    pytest.param(
        numpy_block('version = "1.26.4"\n', ""),
        f"{P}: packages[1]: missing required key 'version'",
        "",
        id="no version",
    ),
    pytest.param(
        numpy_block('version = "1.26.4"', 'version = "1..26"'),
        f"{P}: packages[1].version: invalid version '1..26'",
        "",
        id="invalid version",
    ),
    pytest.param(  # a ValueError traceback from int() in every command reading the lock
        numpy_block('version = "1.26.4"', 'version = "1.' + "9" * 5000 + '"'),
        f"{P}: packages[1].version: invalid version '1.{'9' * 69}…'",
        "",
        id="version past int's digits",
    ),
    pytest.param(
        numpy_block('name = "numpy"', 'name = "NumPy"'),
        f"{P}: packages[1].name: package name 'NumPy' is not normalized",
        "write 'numpy'",
        id="name not normalized",
    ),
    pytest.param(
        numpy_block('index = "', 'index = 3\nx = "'),
        f"{P}: packages[1].index: expected a string, got integer",
        "",
        id="index type",
    ),
    pytest.param(
        numpy_block(f"wheels = [\n{WHEEL_LINE}\n]\n", ""),
        f"{P}: packages[1]: no source: expected one of wheels, sdist, vcs",
        "",
        id="no source",
    ),
    pytest.param(
        numpy_block("wheels = [", 'sdist = { url = "https://x/numpy-1.26.4.tar.gz" }\nwheels = ['),
        f"{P}: packages[1]: more than one source: wheels, sdist",
        "",
        id="two sources",
    ),
    pytest.param(
        numpy_block("wheels = [", 'directory = { path = "." }\nwheels = ['),
        f"{P}: packages[1]: unsupported source 'directory' "
        "(envspec locks hold wheels, sdist or vcs)",
        "",
        id="directory",
    ),
    pytest.param(
        numpy_block(WHEEL_LINE, f"{WHEEL_LINE}\n{WHEEL_LINE}"),
        f"{P}: packages[1].wheels: expected exactly one wheel, got 2",
        "",
        id="two wheels",
    ),
    pytest.param(
        numpy_block("wheels = [", "wheels = 1\nx = ["),
        f"{P}: packages[1].wheels: expected an array, got integer",
        "",
        id="wheels type",
    ),
    pytest.param(
        numpy_block(WHEEL_LINE, '    "numpy.whl",'),
        f"{P}: packages[1].wheels[0]: expected a table, got string",
        "",
        id="wheel type",
    ),
    pytest.param(
        numpy_block("size = 15772810", 'size = "15 MB"'),
        f"{P}: packages[1].wheels[0].size: expected an integer, got string",
        "",
        id="size type",
    ),
    pytest.param(
        numpy_block(f', hashes = {{sha256 = "{SHA_A}"}}', ""),
        f"{P}: packages[1].wheels[0]: missing required key 'hashes'",
        "",
        id="no hashes",
    ),
    pytest.param(
        numpy_block(f'hashes = {{sha256 = "{SHA_A}"}}', f'hashes = {{md5 = "{SHA_A}"}}'),
        f"{P}: packages[1].wheels[0].hashes: missing required key 'sha256'",
        "",
        id="no sha256",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/{NUMPY_WHEEL}", ', ""),
        f"{P}: packages[1].wheels[0]: missing required key 'url'",
        "",
        id="no url",
    ),
    pytest.param(
        numpy_block("upload-time = 2024-02-05T23:48:01Z", 'upload-time = "yesterday"'),
        f"{P}: packages[1].wheels[0].upload-time: expected a datetime, got string",
        "",
        id="upload-time type",
    ),
    pytest.param(
        GOOD.replace('type = "git"', 'type = "hg"'),
        f"{P}: packages[2].vcs.type: unsupported vcs type 'hg'",
        "envspec locks git sources only",
        id="vcs type",
    ),
    pytest.param(
        GOOD.replace(f'commit-id = "{COMMIT}"\n', ""),
        f"{P}: packages[2].vcs: missing required key 'commit-id'",
        "",
        id="no commit",
    ),
    pytest.param(
        GOOD.replace(f'hashes = {{sha256 = "{SHA_B}"}}', "hashes = {}"),
        f"{P}: packages[0].sdist.hashes: missing required key 'sha256'",
        "",
        id="sdist no sha256",
    ),
    pytest.param(
        numpy_block(
            '[packages.tool.envspec]\nphase = "numpy"', '[packages.tool.other]\nphase = "numpy"'
        ),
        f"{P}: packages[1]: missing required table [packages.tool.envspec]",
        "",
        id="no package tool",
    ),
    pytest.param(
        numpy_block('required-by = ["<spec>", "unsloth"]\n', ""),
        f"{P}: packages[1].tool.envspec: missing required key 'required-by'",
        "",
        id="no required-by",
    ),
    pytest.param(
        numpy_block('name = "numpy"', 'name = "num py"'),
        f"{P}: packages[1].name: invalid package name 'num py'",
        "",
        id="name not PEP 508",
    ),
    pytest.param(
        numpy_block('index = "', 'marker = "os_name =="\nindex = "'),
        f"{P}: packages[1].marker: invalid marker 'os_name =='",
        "",
        id="package marker",
    ),
    pytest.param(
        numpy_block('index = "', 'requires-python = ">=3.x"\nindex = "'),
        f"{P}: packages[1].requires-python: invalid requires-python '>=3.x'",
        "",
        id="package requires-python",
    ),
    pytest.param(
        GOOD.replace("sys_platform == 'win32'", "(" * 2000),
        f"{P}: environments[0]: invalid marker '{'(' * 71}…'",
        "",
        id="marker nested too deep",
    ),
    pytest.param(
        numpy_block(f'sha256 = "{SHA_A}"', 'sha256 = ""'),
        f"{P}: packages[1].wheels[0].hashes.sha256: empty hash (expected 64 hexadecimal digits)",
        DAMAGED,
        id="empty sha256",
    ),
    pytest.param(
        numpy_block(f'sha256 = "{SHA_A}"', 'sha256 = "abc123"'),
        f"{P}: packages[1].wheels[0].hashes.sha256: invalid sha256 hash 'abc123' "
        "(expected 64 hexadecimal digits)",
        DAMAGED,
        id="short sha256",
    ),
    pytest.param(
        numpy_block(f'sha256 = "{SHA_A}"', f'sha256 = "{NOT_HEX}"'),
        f"{P}: packages[1].wheels[0].hashes.sha256: invalid sha256 hash '{NOT_HEX}' "
        "(expected 64 hexadecimal digits)",
        DAMAGED,
        id="sha256 not hex",
    ),
    pytest.param(
        GOOD.replace(f'hashes = {{sha256 = "{SHA_B}"}}', f'hashes = {{sha256 = "{SHA_B}b"}}'),
        f"{P}: packages[0].sdist.hashes.sha256: invalid sha256 hash '{SHA_B}b' "
        "(expected 64 hexadecimal digits)",
        DAMAGED,
        id="sdist sha256 of 65 digits",
    ),
    pytest.param(
        numpy_block(f'sha256 = "{SHA_A}"', f'sha256 = "{SHA_A}", md5 = "{SHA_A}"'),
        f"{P}: packages[1].wheels[0].hashes.md5: invalid md5 hash '{SHA_A}' "
        "(expected 32 hexadecimal digits)",
        DAMAGED,
        id="md5 of the wrong length",
    ),
    pytest.param(
        numpy_block(f'sha256 = "{SHA_A}"', "sha256 = 7"),
        f"{P}: packages[1].wheels[0].hashes.sha256: expected a string, got integer",
        "",
        id="sha256 type",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/', 'url = "ftp://mirror.example/'),
        f"{P}: packages[1].wheels[0].url: URL 'ftp://mirror.example/{NUMPY_WHEEL}' has "
        "scheme 'ftp' (expected an http, https or file URL)",
        DAMAGED,
        id="ftp URL",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/', 'url = "dist/'),
        f"{P}: packages[1].wheels[0].url: URL 'dist/{NUMPY_WHEEL}' has no scheme "
        "(expected an http, https or file URL)",
        DAMAGED,
        id="relative URL",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/', 'url = "https://files.example:99999/'),
        f"{P}: packages[1].wheels[0].url: invalid URL 'https://files.example:99999/"
        f"{NUMPY_WHEEL}'",
        DAMAGED,
        id="bad port",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/', 'url = "https://[::1/'),
        f"{P}: packages[1].wheels[0].url: invalid URL 'https://[::1/{NUMPY_WHEEL}'",
        DAMAGED,
        id="unclosed IPv6 bracket",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/', 'url = "https:///'),
        f"{P}: packages[1].wheels[0].url: URL 'https:///{NUMPY_WHEEL}' has no host",
        DAMAGED,
        id="no host",
    ),
    pytest.param(
        numpy_block(f'url = "{FILES}/', 'url = "gopher://user:s3cret@host/'),
        f"{P}: packages[1].wheels[0].url: URL 'gopher://host/{NUMPY_WHEEL}' has scheme "
        "'gopher' (expected an http, https or file URL)",
        DAMAGED,
        id="credentials are not shown",
    ),
    pytest.param(
        numpy_block("size = 15772810", "size = -1"),
        f"{P}: packages[1].wheels[0].size: invalid size -1 (a file's size is 0 bytes or more)",
        DAMAGED,
        id="negative size",
    ),
    pytest.param(
        numpy_block(f'name = "{NUMPY_WHEEL}"', 'name = "numpy-1.26.3-cp311-cp311-win_amd64.whl"'),
        f"{P}: packages[1].wheels[0].name: wheel 'numpy-1.26.3-cp311-cp311-win_amd64.whl' is "
        "not numpy 1.26.4",
        DAMAGED,
        id="wheel of another version",
    ),
    pytest.param(
        numpy_block(f'name = "{NUMPY_WHEEL}"', 'name = "numpy.whl"'),
        f"{P}: packages[1].wheels[0].name: invalid wheel file name 'numpy.whl'",
        DAMAGED,
        id="not a wheel file name",
    ),
    pytest.param(
        GOOD.replace(f'commit-id = "{COMMIT}"', 'commit-id = "main"'),
        f"{P}: packages[2].vcs.commit-id: invalid commit-id 'main' (expected a full commit id: "
        "40 hexadecimal digits, or 64 for a SHA-256 repository)",
        DAMAGED,
        id="commit-id not a commit",
    ),
    pytest.param(
        numpy_block('required-by = ["<spec>", "unsloth"]', 'required-by = ["<spec>", 1]'),
        f"{P}: packages[1].tool.envspec.required-by[1]: expected a string, got integer",
        "",
        id="required-by item",
    ),
    # what only packaging.pylock checks (envspec does not read it), in envspec's form
    pytest.param(
        GOOD.replace("runtime-4.9.3.tar.gz", "runtime-4.9.2.tar.gz"),
        f"{P}: packages[0].sdist: version in 'antlr4-python3-runtime-4.9.2.tar.gz' is not "
        "consistent with package version '4.9.3'",
        DAMAGED,
        id="pylock: sdist of another version",
    ),
    pytest.param(
        GOOD.replace('created-by = "envspec"', 'created-by = "envspec"\nextras = ["Not_Normal"]'),
        f"{P}: extras[0]: name 'Not_Normal' is not normalized",
        DAMAGED,
        id="pylock: extras",
    ),
    pytest.param(
        numpy_block('version = "1.26.4"', 'version = "1.26.4"\ndependencies = "x"'),
        f"{P}: packages[1].dependencies: unexpected type str (expected Sequence)",
        DAMAGED,
        id="pylock: dependencies",
    ),
    pytest.param(  # export pinned it twice; each command took one of the two
        GOOD.replace(NUMPY_BLOCK, NUMPY_BLOCK + "[[packages]]\n" + NUMPY_BLOCK),
        f"{P}: packages[2].name: duplicate package 'numpy'",
        f"first at packages[1]; {DAMAGED}",
        id="duplicate package",
    ),
    pytest.param(  # sync and export left it out, and said all was well
        numpy_block('phase = "numpy"', 'phase = "nosuch"'),
        f"{P}: packages[1].tool.envspec.phase: unknown phase 'nosuch'",
        "phases: numpy, torch, triton, unsloth, training",
        id="unknown phase",
    ),
    pytest.param(  # a parent deleted: sync installed what only it needed, and said all was well
        numpy_block('required-by = ["<spec>", "unsloth"]', 'required-by = ["<spec>", "torch"]'),
        f"{P}: packages[1].tool.envspec.required-by: 'numpy' is required by 'torch', which the "
        "lock does not have",
        DAMAGED,
        id="required by a package the lock does not have",
    ),
    pytest.param(  # an orphan: sync installed it, why showed no chain
        numpy_block('required-by = ["<spec>", "unsloth"]', "required-by = []"),
        f"{P}: packages[1].tool.envspec.required-by: 'numpy' is required by nothing",
        DAMAGED,
        id="required by nothing",
    ),
    pytest.param(
        numpy_block('required-by = ["<spec>", "unsloth"]', 'required-by = ["numpy"]'),
        f"{P}: packages[1].tool.envspec.required-by: 'numpy' lists itself",
        DAMAGED,
        id="required by itself",
    ),
    pytest.param(  # why printed its chain twice
        numpy_block('required-by = ["<spec>", "unsloth"]', 'required-by = ["unsloth", "unsloth"]'),
        f"{P}: packages[1].tool.envspec.required-by: 'numpy' lists 'unsloth' twice",
        DAMAGED,
        id="a parent listed twice",
    ),
    pytest.param(  # sync installed the phase twice, export pinned its packages twice
        GOOD.replace('{name = "unsloth"},\n', '{name = "unsloth"},\n    {name = "numpy"},\n'),
        f"{P}: tool.envspec.phases[4].name: duplicate phase 'numpy'",
        DAMAGED,
        id="a phase listed twice",
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), BAD)
def test_bad_lock(text: str, message: str, hint: str) -> None:
    with pytest.raises(LockFileError) as caught:
        parse_lock(text, path=P)
    assert str(caught.value) == message
    assert caught.value.hint == hint
    assert caught.value.exit_code == EXIT_USAGE


def test_hashes_and_commits_are_read_in_lower_case() -> None:
    text = GOOD.replace(SHA_A, SHA_A.upper()).replace(COMMIT, COMMIT.upper())
    assert parse_lock(text, path=P) == parse_lock(GOOD, path=P)


def test_a_file_url_and_a_sha256_commit_are_accepted() -> None:
    text = numpy_block(f'url = "{FILES}/', 'url = "file:///srv/wheels/').replace(
        COMMIT, "c" * 64
    )
    lock = parse_lock(text, path=P)
    assert lock.packages[1].artifact is not None
    assert lock.packages[1].artifact.url == f"file:///srv/wheels/{NUMPY_WHEEL}"


def test_bad_lock_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "pylock.windows-x86_64.toml"
    text = GOOD.replace('lock-version = "1.0"', 'lock-version = "2.0"')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LockFileError) as caught:
        load_lock(path)
    assert str(caught.value) == f"{path}: unsupported lock-version '2.0' (this envspec reads 1.x)"
    assert path.read_text(encoding="utf-8") == text
