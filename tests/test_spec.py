"""`envspec.toml` → `Spec`: the DESIGN.md §3 example, normalization, defaults, and every bad
input with its exact message and hint."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from envspec.errors import EXIT_USAGE, SpecError
from envspec.model import DependencyMetadata, Index, TargetSettings, utc_text
from envspec.spec import load_spec, parse_spec

DESIGN_EXAMPLE = """
[environment]
name = "trainer"
python = "3.11"                                   # the interpreter version locked for
targets = ["windows-x86_64", "linux-x86_64", "macos-arm64"]

[indexes]                                         # named indexes; the first is the default
pypi = "https://pypi.org/simple"
pytorch-cu121 = { url = "https://download.pytorch.org/whl/cu121", explicit = true }

[[phases]]
name = "numpy"
requirements = ["numpy<2"]

[[phases]]
name = "torch"
index = { windows-x86_64 = "pytorch-cu121", linux-x86_64 = "pytorch-cu121" }  # or one name
requirements = ["torch", "torchvision", "torchaudio", "xformers"]

[[phases]]
name = "transformers"
requirements = ["transformers>=4.40", "huggingface_hub"]

[[phases]]
name = "bitsandbytes"
requirements = ["bitsandbytes"]

[[phases]]
name = "triton"
requirements = ["triton-windows"]
targets = ["windows-x86_64"]
optional = true                                   # may fail to resolve or install

[[phases]]
name = "unsloth"
requirements = ["unsloth[colab-new] @ git+https://github.com/unslothai/unsloth.git"]

[[phases]]
name = "training"
requirements = ["trl", "peft", "accelerate", "datasets", "tensorboard"]

[resolution]
constraints = []            # extra bounds on any package, direct or transitive
overrides = []              # replace what upstream metadata says about a name
prereleases = "if-necessary"  # "allow" | "disallow" | "if-necessary"
exclude-newer = ""          # optional RFC 3339 cut-off for reproducible resolution
no-build = []               # names never built from an sdist (":all:" for every name)
no-binary = []              # names always taken from their sdist

[checks]
imports = ["numpy", "torch", "transformers:AutoProcessor"]
versions = { numpy = "<2", transformers = ">=4.40" }
"""

HEAD = """
[environment]
name = "t"
python = "3.11"
targets = ["linux-x86_64", "windows-x86_64"]
"""
PHASE = """
[[phases]]
name = "numpy"
requirements = ["numpy<2"]
"""


def spec_text(*parts: str) -> str:
    return "".join(parts)


def torch_phase(index: str) -> str:
    return f'[[phases]]\nname = "t"\n{index}\nrequirements = ["torch"]\n'


def test_design_example_parses() -> None:
    spec = parse_spec(DESIGN_EXAMPLE, environ={})
    assert spec.name == "trainer"
    assert spec.python == "3.11"
    assert spec.targets == ("windows-x86_64", "linux-x86_64", "macos-arm64")
    assert spec.indexes == (
        Index(name="pypi", url="https://pypi.org/simple/"),
        Index(name="pytorch-cu121", url="https://download.pytorch.org/whl/cu121/", explicit=True),
    )
    assert [p.name for p in spec.phases] == [
        "numpy", "torch", "transformers", "bitsandbytes", "triton", "unsloth", "training"
    ]  # fmt: skip
    numpy, torch, transformers, _, triton, unsloth, _ = spec.phases
    assert numpy.requirements == (Requirement("numpy<2"),)
    assert [str(r) for r in transformers.requirements] == [
        "transformers>=4.40",
        "huggingface-hub",
    ]
    assert triton.targets == ("windows-x86_64",)
    assert triton.optional and not triton.no_build_isolation
    assert triton.applies_to("windows-x86_64") and not triton.applies_to("linux-x86_64")
    git = unsloth.requirements[0]
    assert (git.name, git.extras, git.url) == (
        "unsloth",
        {"colab-new"},
        "git+https://github.com/unslothai/unsloth.git",
    )
    assert spec.resolution.prereleases == "if-necessary"
    assert spec.resolution.exclude_newer is None
    assert spec.checks.imports == ("numpy", "torch", "transformers:AutoProcessor")
    assert spec.checks.versions == (("numpy", "<2"), ("transformers", ">=4.40"))
    assert torch.index_for("macos-arm64") is None  # routed per target, not for every one


def test_index_routing_per_target() -> None:
    torch = parse_spec(DESIGN_EXAMPLE, environ={}).phases[1]
    assert torch.routes == (
        ("linux-x86_64", "pytorch-cu121"),
        ("windows-x86_64", "pytorch-cu121"),
    )
    assert torch.index_for("windows-x86_64") == "pytorch-cu121"
    assert torch.index_for("linux-x86_64") == "pytorch-cu121"
    assert torch.index_for("macos-arm64") is None  # default routing on the Mac


def test_single_index_routes_every_target() -> None:
    text = spec_text(
        HEAD,
        '[indexes]\npypi = "https://pypi.org/simple"\ncu = { url = "https://x/cu", explicit ='
        " true }\n",
        '[[phases]]\nname = "torch"\nindex = "cu"\nrequirements = ["torch"]\n',
    )
    torch = parse_spec(text, environ={}).phases[0]
    assert torch.routes == (("linux-x86_64", "cu"), ("windows-x86_64", "cu"))
    assert torch.index_for("linux-x86_64") == torch.index_for("windows-x86_64") == "cu"


def test_index_urls_expand_environment_variables() -> None:
    text = spec_text(
        HEAD,
        "[indexes]\n",
        'private = "https://${USER_NAME}:${TOKEN}@repo.example/simple"\n',
        'wheels = { url = "${WHEELS}/dist", flat = true }\n',
        PHASE,
    )
    env = {"USER_NAME": "me", "TOKEN": "s3cret", "WHEELS": "/srv"}
    spec = parse_spec(text, environ=env)
    assert spec.indexes == (
        Index(name="private", url="https://me:s3cret@repo.example/simple/"),
        Index(name="wheels", url="/srv/dist", flat=True),
    )


@pytest.mark.parametrize(
    ("command", "then"),
    [
        (["lock", "--check"], "error: locks out of date: linux-x86_64 (missing)"),
        (["sync", "--dry-run"], "Would create {venv} (Python 3.11)"),
        (["check"], "error: project: no Python interpreter at {venv}/bin/python"),
    ],
)
def test_commands_expand_variables_from_the_process_environment(
    command: list[str],
    then: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI's one snapshot of the environment reaches the spec of every command (the lock
    and the environment commands alike); the parser has no default of its own."""
    from envspec.cli import main

    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv("ENVSPEC_TEST_HOST", raising=False)
    text = spec_text(HEAD, '[indexes]\nm = "https://${ENVSPEC_TEST_HOST}/simple"\n', PHASE)
    (tmp_path / "envspec.toml").write_text(text.replace(', "windows-x86_64"', ""))
    assert main([*command, "--project", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: {tmp_path / 'envspec.toml'}: indexes.m: undefined environment variable "
        "'ENVSPEC_TEST_HOST'"
    )
    monkeypatch.setenv("ENVSPEC_TEST_HOST", "mirror.example")
    main([*command, "--project", str(tmp_path)])
    venv = tmp_path.resolve() / ".venv"
    assert capsys.readouterr().err.splitlines()[0] == then.format(venv=venv)


def test_defaults() -> None:
    spec = parse_spec(spec_text(HEAD, PHASE), environ={})
    assert spec.indexes == (Index(name="pypi", url="https://pypi.org/simple/"),)
    assert spec.resolution.prereleases == "if-necessary"
    assert spec.resolution.constraints == spec.resolution.dependency_metadata == ()
    assert spec.checks.imports == ()
    assert spec.checks.versions == ()
    assert spec.target_settings == ()
    assert spec.settings_for("linux-x86_64") == TargetSettings()
    phase = spec.phases[0]
    assert phase.targets is None and phase.routes == ()
    assert not phase.optional and not phase.no_build_isolation


def test_normalization() -> None:
    text = spec_text(
        HEAD,
        """
[targets.linux-x86_64]
glibc = "2.31"
[targets.macos-arm64]
macos = "14.0"

[[phases]]
name = "p"
requirements = ["Foo_Bar[Some_Extra]>=1,<2; python_version >= '3.8'"]
targets = ["windows-x86_64", "linux-x86_64"]
no-build-isolation = true

[resolution]
constraints = ["NumPy<2; sys_platform == 'win32'"]
overrides = ["Torch==2.3.1"]
prereleases = "allow"
exclude-newer = "2024-06-01T12:30:00+02:00"
no-build = ["B_Pkg", "a.pkg", "b-pkg"]
no-binary = ["x", ":all:"]

[[resolution.dependency-metadata]]
name = "Flash_Attn"
version = "2.6.3"
requires-dist = ["torch", "Einops"]
requires-python = ">=3.9"
provides-extra = ["Dev_Tools"]

[checks]
versions = { Transformers = ">=4.40", NumPy = "<2,>=1.20" }
""",
    )
    spec = parse_spec(text, environ={})
    phase = spec.phases[0]
    assert [str(r) for r in phase.requirements] == [
        'foo-bar[some-extra]<2,>=1; python_version >= "3.8"'
    ]
    assert phase.targets == ("linux-x86_64", "windows-x86_64")  # environment order
    assert phase.no_build_isolation
    res = spec.resolution
    assert [str(r) for r in res.constraints] == ['numpy<2; sys_platform == "win32"']
    assert [str(r) for r in res.overrides] == ["torch==2.3.1"]
    assert res.prereleases == "allow"
    assert res.exclude_newer == dt.datetime(2024, 6, 1, 10, 30, tzinfo=dt.timezone.utc)
    assert res.no_build == ("a-pkg", "b-pkg")
    assert res.no_binary == (":all:",)
    assert res.dependency_metadata == (
        DependencyMetadata(
            name="flash-attn",  # type: ignore[arg-type]
            version=Version("2.6.3"),
            requires_dist=(Requirement("torch"), Requirement("einops")),
            requires_python=">=3.9",
            provides_extra=("dev-tools",),  # type: ignore[arg-type]
        ),
    )
    assert spec.checks.versions == (("numpy", "<2,>=1.20"), ("transformers", ">=4.40"))
    assert spec.target_settings == (
        ("linux-x86_64", TargetSettings(glibc=(2, 31))),
        ("macos-arm64", TargetSettings(macos=(14, 0))),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"2024-06-01"', "2024-06-01T00:00:00Z"),
        ('"2024-06-01T08:00:00Z"', "2024-06-01T08:00:00Z"),
        ('"2024-06-01t08:00:00.5z"', "2024-06-01T08:00:00.500000Z"),
        ("2024-06-01T08:00:00-01:00", "2024-06-01T09:00:00Z"),  # a TOML date-time
        ("2024-06-01", "2024-06-01T00:00:00Z"),  # a TOML date
    ],
)
def test_exclude_newer_forms(value: str, expected: str) -> None:
    text = spec_text(HEAD, PHASE, f"[resolution]\nexclude-newer = {value}\n")
    cutoff = parse_spec(text, environ={}).resolution.exclude_newer
    assert cutoff is not None and utc_text(cutoff) == expected


def test_python_full_version_is_kept() -> None:
    text = spec_text(HEAD.replace('"3.11"', '"3.11.4"'), PHASE)
    assert parse_spec(text, environ={}).python == "3.11.4"


def test_a_name_may_repeat_under_different_markers() -> None:
    text = HEAD + (
        '[[phases]]\nname = "x"\n'
        "requirements = [\"a>=2; sys_platform == 'linux'\", \"a<2; sys_platform == 'win32'\"]\n"
    )
    phase = parse_spec(text, environ={}).phases[0]
    assert [str(r) for r in phase.requirements] == [
        'a>=2; sys_platform == "linux"',
        'a<2; sys_platform == "win32"',
    ]


def test_repeated_requirements_on_one_name_are_combined() -> None:
    text = HEAD + (
        '[[phases]]\nname = "x"\nrequirements = ["NumPy>=1.20", "scipy", "numpy[dev]<2", '
        '"b @ https://h/b-1.0.tar.gz", "b", "b @ https://h/b-1.0.tar.gz", "c>=1", "c==1.5"]\n'
    )
    phase = parse_spec(text, environ={}).phases[0]
    assert [str(r) for r in phase.requirements] == [
        "numpy[dev]<2,>=1.20",
        "scipy",
        "b @ https://h/b-1.0.tar.gz",
        "c==1.5,>=1",
    ]


def test_load_spec_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "envspec.toml"
    path.write_text(DESIGN_EXAMPLE, encoding="utf-8")
    assert load_spec(path, {}) == parse_spec(DESIGN_EXAMPLE, environ={})


def test_load_spec_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "envspec.toml"
    with pytest.raises(SpecError) as missing:
        load_spec(path, {})
    assert str(missing.value) == f"{path}: no spec file"
    assert missing.value.hint == "run 'envspec init' to write one"
    path.write_text(spec_text(HEAD, '[[phases]]\nname = "x"\nrequirements = ["a", 1]\n'))
    with pytest.raises(SpecError) as bad:
        load_spec(path, {})
    assert str(bad.value) == f"{path}: phases[0].requirements[1]: expected a string, got integer"


ENV_TARGETS = "known targets: " + ", ".join(
    ["linux-x86_64", "linux-aarch64", "windows-x86_64", "macos-arm64", "macos-x86_64"]
)
TWO_INDEXES = '[indexes]\npypi = "https://pypi.org/simple"\npytorch-cu121 = "https://x/cu121"\n'
BAD = [
    # --- syntax and structure
    pytest.param(
        "[environment\n",
        "envspec.toml:1:13: invalid TOML: expected ']' at the end of a table declaration",
        "",
        id="syntax",
    ),
    pytest.param(  # Notepad's UTF-8: "invalid statement", and no word of why
        "\ufeff" + spec_text(HEAD, PHASE),
        "envspec.toml:1:1: invalid TOML: invalid statement",
        "the file starts with a UTF-8 byte-order mark, which TOML does not allow: save it as "
        "UTF-8 without one",
        id="byte-order mark",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, "[phase]\n"),
        "envspec.toml: unknown key 'phase'",
        "did you mean 'phases'?",
        id="unknown top key",
    ),
    pytest.param(
        spec_text("zzz = 1\n", HEAD, PHASE),
        "envspec.toml: unknown key 'zzz'",
        "allowed keys: environment, targets, indexes, phases, resolution, checks, rules, variants",
        id="unknown key no match",
    ),
    pytest.param(
        PHASE,
        "envspec.toml: missing required table [environment]",
        "add [environment] with name, python and targets",
        id="no environment",
    ),
    pytest.param(
        'environment = "x"\n' + PHASE,
        "envspec.toml: environment: expected a table, got string",
        "",
        id="environment type",
    ),
    # --- [environment]
    pytest.param(
        '[environment]\nname = "t"\ntargets = ["linux-x86_64"]\n' + PHASE,
        "envspec.toml: environment: missing required key 'python'",
        "",
        id="missing python",
    ),
    pytest.param(
        HEAD.replace('"3.11"', "3.11") + PHASE,
        "envspec.toml: environment.python: expected a string, got float",
        "",
        id="python type",
    ),
    pytest.param(
        HEAD.replace('"3.11"', '"3"') + PHASE,
        "envspec.toml: environment.python: invalid python version '3'",
        'expected "3.<minor>" or "3.<minor>.<patch>", e.g. "3.11"',
        id="bad python",
    ),
    pytest.param(
        HEAD.replace('"t"', '"my env"') + PHASE,
        "envspec.toml: environment.name: invalid environment name 'my env'",
        "use letters, digits, '-', '_' and '.'",
        id="bad env name",
    ),
    pytest.param(
        HEAD + 'target = ["x"]\n' + PHASE,
        "envspec.toml: environment: unknown key 'target'",
        "did you mean 'targets'?",
        id="env key typo",
    ),
    pytest.param(
        HEAD.replace('"linux-x86_64", "windows-x86_64"', "") + PHASE,
        "envspec.toml: environment.targets: expected at least one target",
        ENV_TARGETS,
        id="no targets",
    ),
    pytest.param(
        HEAD.replace('"windows-x86_64"', '"windows-amd64"') + PHASE,
        "envspec.toml: environment.targets[1]: unknown target 'windows-amd64'",
        "did you mean 'windows-x86_64'?",
        id="unknown target",
    ),
    pytest.param(
        HEAD.replace('"windows-x86_64"', '"linux-x86_64"') + PHASE,
        "envspec.toml: environment.targets[1]: duplicate target 'linux-x86_64'",
        "",
        id="duplicate target",
    ),
    # --- [targets.<name>]
    pytest.param(
        spec_text(HEAD, PHASE, '[targets.linux]\nglibc = "2.28"\n'),
        "envspec.toml: targets.linux: unknown target 'linux'",
        ENV_TARGETS,
        id="settings unknown target",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[targets.linux-x86_64]\nglibc = "3.1"\n'),
        "envspec.toml: targets.linux-x86_64.glibc: invalid glibc version '3.1'",
        'expected "2.<minor>", e.g. "2.28"',
        id="bad glibc",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[targets.macos-arm64]\nmacos = "14"\n'),
        "envspec.toml: targets.macos-arm64.macos: invalid macos version '14'",
        'expected "<major>.<minor>", e.g. "14.0"',
        id="bad macos",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[targets.windows-x86_64]\nglibc = "2.28"\n'),
        "envspec.toml: targets.windows-x86_64.glibc: 'glibc' does not apply to windows-x86_64",
        "'glibc' is set for linux targets only",
        id="glibc on windows",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[targets.linux-x86_64]\nmacos = "14.0"\n'),
        "envspec.toml: targets.linux-x86_64.macos: 'macos' does not apply to linux-x86_64",
        "'macos' is set for macos targets only",
        id="macos on linux",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[targets.linux-x86_64]\nglib = "2.28"\n'),
        "envspec.toml: targets.linux-x86_64: unknown key 'glib'",
        "did you mean 'glibc'?",
        id="settings key typo",
    ),
    # --- [indexes]
    pytest.param(
        spec_text(HEAD, "[indexes]\n", PHASE),
        "envspec.toml: indexes: no indexes defined",
        'add pypi = "https://pypi.org/simple" or remove [indexes]',
        id="empty indexes",
    ),
    pytest.param(
        spec_text(HEAD, "[indexes]\npypi = 3\n", PHASE),
        "envspec.toml: indexes.pypi: expected a string or a table, got integer",
        "",
        id="index type",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\npypi = { uri = "https://x" }\n', PHASE),
        "envspec.toml: indexes.pypi: unknown key 'uri'",
        "did you mean 'url'?",
        id="index key typo",
    ),
    pytest.param(
        spec_text(HEAD, "[indexes]\npypi = { explicit = false }\n", PHASE),
        "envspec.toml: indexes.pypi: missing required key 'url'",
        "",
        id="index no url",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\npypi = { url = "https://x", explicit = "yes" }\n', PHASE),
        "envspec.toml: indexes.pypi.explicit: expected a boolean, got string",
        "",
        id="index explicit type",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = "https://${TOKEN}@x/simple"\n', PHASE),
        "envspec.toml: indexes.p: undefined environment variable 'TOKEN'",
        "set TOKEN, or remove ${TOKEN} from the URL",
        id="undefined var",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = { url = "https://${HOST}/simple" }\n', PHASE),
        "envspec.toml: indexes.p.url: undefined environment variable 'HOST'",
        "set HOST, or remove ${HOST} from the URL",
        id="undefined var table",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = ""\n', PHASE),
        "envspec.toml: indexes.p: index URL is empty",
        "",
        id="empty url",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = "pypi.org/simple"\n', PHASE),
        "envspec.toml: indexes.p: index URL must start with http://, https:// or file://",
        "for a local folder or page of files, set flat = true",
        id="url scheme",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = "https://u:secret@x:99999/simple"\n', PHASE),
        "envspec.toml: indexes.p: index URL has a port that is not a number from 0 to 65535",
        "",
        id="url port",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = { url = "https://x:port/simple" }\n', PHASE),
        "envspec.toml: indexes.p.url: index URL has a port that is not a number from 0 to 65535",
        "",
        id="url port text",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = "http://[::1/simple"\n', PHASE),
        "envspec.toml: indexes.p: index URL has an unclosed '[' in the host",
        "",
        id="url ipv6",
    ),
    pytest.param(
        "a = " + "[" * 2000 + "]" * 2000 + "\n",
        "envspec.toml: invalid TOML: nested too deeply",
        "",
        id="deep nesting",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\n"my index" = "https://x"\n', PHASE),
        "envspec.toml: indexes.\"my index\": invalid index name 'my index'",
        "use letters, digits, '-', '_' and '.'",
        id="index name",
    ),
    pytest.param(
        spec_text(HEAD, '[indexes]\np = { url = "https://x", explicit = true }\n', PHASE),
        "envspec.toml: indexes: no default index: every index is explicit",
        "mark one index not explicit: it serves every name no phase routes",
        id="all explicit",
    ),
    # --- [[phases]]
    pytest.param(
        HEAD,
        "envspec.toml: no phases defined",
        "add a [[phases]] table with a name and requirements",
        id="no phases",
    ),
    pytest.param(
        HEAD + '[phases]\nname = "x"\n',
        "envspec.toml: phases: expected an array of tables, got table",
        "write each phase as [[phases]], with two brackets",
        id="phases table",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirement = ["a"]\n',
        "envspec.toml: phases[0]: unknown key 'requirement'",
        "did you mean 'requirements'?",
        id="phase key typo",
    ),
    pytest.param(
        HEAD + '[[phases]]\nrequirements = ["a"]\n',
        "envspec.toml: phases[0]: missing required key 'name'",
        "",
        id="phase no name",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "a b"\nrequirements = ["a"]\n',
        "envspec.toml: phases[0].name: invalid phase name 'a b'",
        "use letters, digits, '-', '_' and '.'",
        id="phase bad name",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, PHASE.replace("numpy<2", "scipy")),
        "envspec.toml: phases[1].name: duplicate phase name 'numpy'",
        "first defined at phases[0]",
        id="duplicate phase",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\n',
        "envspec.toml: phases[0]: missing required key 'requirements'",
        "",
        id="no requirements key",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirements = []\n',
        "envspec.toml: phases[0].requirements: phase has no requirements",
        "add some with 'envspec add REQ --phase x', or remove the phase",
        id="no requirements",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirements = "numpy"\n',
        "envspec.toml: phases[0].requirements: expected an array, got string",
        "",
        id="requirements type",
    ),
    pytest.param(
        spec_text(
            HEAD, PHASE, '[[phases]]\nname = "x"\nrequirements = ["a", "b", "c", "numpy<<2"]\n'
        ),
        "envspec.toml: phases[1].requirements[3]: invalid requirement 'numpy<<2': expected"
        " semicolon (after name with no version specifier) or end",
        "",
        id="bad requirement",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[[phases]]\nname = "x"\nrequirements = ["attrs~=23"]\n'),
        "envspec.toml: phases[1].requirements[0]: invalid requirement 'attrs~=23': ~= needs two"
        " or more release segments (~=23.0, not ~=23)",
        "",
        id="compatible release of one segment",
    ),
    pytest.param(
        HEAD
        + '[[phases]]\nname = "x"\nrequirements = '
        + '["a @ https://u:secret@h/a-1.0.tar.gz", "b", "a @ https://h/a-2.0.tar.gz"]\n',
        "envspec.toml: phases[0].requirements[2]: two direct references for 'a'",
        "a name comes from one source; keep one of them",
        id="two direct references",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirements = ["a @ https://u:secret@h:99999/a.whl"]\n',
        "envspec.toml: phases[0].requirements[0]: invalid requirement: its URL has a port that"
        " is not a number from 0 to 65535",
        "",
        id="requirement URL port",
    ),
    pytest.param(  # the resolver's Version() raised ValueError past int()'s limit: a traceback
        HEAD + '[[phases]]\nname = "x"\nrequirements = ["six==1.' + "1" * 4400 + '.*"]\n',
        "envspec.toml: phases[0].requirements[0]: invalid requirement: version "
        "'1." + "1" * 22 + "…' has a number past 4300 digits",
        "",
        id="version number past int digits",
    ),
    pytest.param(
        spec_text(HEAD, '[resolution]\nconstraints = ["a @ https://u:secret@h/a.whl"]\n', PHASE),
        "envspec.toml: resolution.constraints[0]: constraint 'a @ https://h/a.whl' may not be a"
        " direct reference",
        "put 'name @ URL' in a phase's requirements",
        id="constraint URL redacted",
    ),
    pytest.param(
        spec_text(
            HEAD,
            TWO_INDEXES,
            torch_phase('index = "pytorch"'),
        ),
        "envspec.toml: phases[0].index: unknown index 'pytorch'",
        "did you mean 'pytorch-cu121'?",
        id="unknown index",
    ),
    pytest.param(
        spec_text(HEAD, TWO_INDEXES, torch_phase('index = "zzz"')),
        "envspec.toml: phases[0].index: unknown index 'zzz'",
        "defined indexes: pypi, pytorch-cu121",
        id="unknown index no match",
    ),
    pytest.param(
        spec_text(
            HEAD,
            TWO_INDEXES,
            torch_phase('index = { linux-x86_64 = "pytorch-cu12" }'),
        ),
        "envspec.toml: phases[0].index.linux-x86_64: unknown index 'pytorch-cu12'",
        "did you mean 'pytorch-cu121'?",
        id="index map unknown index",
    ),
    pytest.param(
        spec_text(
            HEAD,
            TWO_INDEXES,
            torch_phase('index = { linux = "pytorch-cu121" }'),
        ),
        "envspec.toml: phases[0].index.linux: unknown target 'linux'",
        ENV_TARGETS,
        id="index map unknown target",
    ),
    pytest.param(
        spec_text(
            HEAD,
            TWO_INDEXES,
            torch_phase('index = { macos-arm64 = "pypi" }'),
        ),
        "envspec.toml: phases[0].index.macos-arm64: target 'macos-arm64' is not in"
        " environment.targets",
        "add it to environment.targets",
        id="index map foreign target",
    ),
    pytest.param(
        spec_text(
            HEAD,
            TWO_INDEXES,
            torch_phase("index = { linux-x86_64 = 1 }"),
        ),
        "envspec.toml: phases[0].index.linux-x86_64: expected a string, got integer",
        "",
        id="index map value type",
    ),
    pytest.param(
        spec_text(HEAD, torch_phase('index = ["pypi"]')),
        "envspec.toml: phases[0].index: expected a string or a table, got array",
        "",
        id="index type",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirements = ["a"]\ntargets = ["macos-arm64"]\n',
        "envspec.toml: phases[0].targets[0]: target 'macos-arm64' is not in environment.targets",
        "add it to environment.targets",
        id="phase foreign target",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirements = ["a"]\ntargets = []\n',
        "envspec.toml: phases[0].targets: expected at least one target",
        "known targets: linux-x86_64, windows-x86_64",
        id="phase no target",
    ),
    pytest.param(
        HEAD + '[[phases]]\nname = "x"\nrequirements = ["a"]\noptional = "yes"\n',
        "envspec.toml: phases[0].optional: expected a boolean, got string",
        "",
        id="optional type",
    ),
    # --- [resolution]
    pytest.param(
        spec_text(HEAD, PHASE, "[resolution]\nprerelease = 'allow'\n"),
        "envspec.toml: resolution: unknown key 'prerelease'",
        "did you mean 'prereleases'?",
        id="resolution key typo",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nconstraints = ["numpy>=1", "torch=2"]\n'),
        "envspec.toml: resolution.constraints[1]: invalid requirement 'torch=2': expected"
        " semicolon (after name with no version specifier) or end",
        "",
        id="bad constraint",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nconstraints = ["torch[cuda]<3"]\n'),
        "envspec.toml: resolution.constraints[0]: constraint 'torch[cuda]<3' may not have extras",
        "constraints only bound versions; ask for extras in a phase's requirements",
        id="constraint extras",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nconstraints = ["x @ https://h/x-1.0.tar.gz"]\n'),
        "envspec.toml: resolution.constraints[0]: constraint 'x @ https://h/x-1.0.tar.gz' may"
        " not be a direct reference",
        "put 'name @ URL' in a phase's requirements",
        id="constraint url",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\noverrides = ["a[b]==1"]\n'),
        "envspec.toml: resolution.overrides[0]: override 'a[b]==1' may not have extras",
        "overrides only bound versions; ask for extras in a phase's requirements",
        id="override extras",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nprereleases = "if_necessary"\n'),
        "envspec.toml: resolution.prereleases: invalid prereleases 'if_necessary'",
        "did you mean 'if-necessary'?",
        id="prereleases",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nprereleases = "sometimes"\n'),
        "envspec.toml: resolution.prereleases: invalid prereleases 'sometimes'",
        "expected one of: allow, disallow, if-necessary",
        id="prereleases no match",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nexclude-newer = "last week"\n'),
        "envspec.toml: resolution.exclude-newer: invalid exclude-newer 'last week'",
        'expected an RFC 3339 date-time or date, e.g. "2024-06-01T00:00:00Z"',
        id="exclude-newer",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nexclude-newer = "2024-13-01"\n'),
        "envspec.toml: resolution.exclude-newer: invalid exclude-newer '2024-13-01'",
        'expected an RFC 3339 date-time or date, e.g. "2024-06-01T00:00:00Z"',
        id="exclude-newer month",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nexclude-newer = "2024-06-01T00:00:00"\n'),
        "envspec.toml: resolution.exclude-newer: exclude-newer '2024-06-01T00:00:00' has no time"
        " zone",
        'add Z for UTC, e.g. "2024-06-01T00:00:00Z"',
        id="exclude-newer naive",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, "[resolution]\nexclude-newer = 2024\n"),
        "envspec.toml: resolution.exclude-newer: expected a string, got integer",
        "",
        id="exclude-newer type",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nno-build = ["ok", "not ok"]\n'),
        "envspec.toml: resolution.no-build[1]: invalid package name 'not ok'",
        "",
        id="no-build name",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nno-build = ["Six"]\nno-binary = ["six", "x"]\n'),
        "envspec.toml: resolution.no-binary: 'six' is in both no-build and no-binary: no file "
        "of it could be installed",
        "keep it in one of them",
        id="a name in no-build and no-binary",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[resolution]\nno-build = [":all:"]\nno-binary = [":all:"]\n'),
        "envspec.toml: resolution.no-binary: no-build and no-binary are both ':all:': no file "
        "could be installed",
        "keep it in one of them",
        id="all in no-build and no-binary",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[[resolution.dependency-metadata]]\nversion = "1"\n'),
        "envspec.toml: resolution.dependency-metadata[0]: missing required key 'name'",
        "",
        id="metadata no name",
    ),
    pytest.param(
        spec_text(
            HEAD, PHASE, '[[resolution.dependency-metadata]]\nname = "a"\nrequires_dist = []\n'
        ),
        "envspec.toml: resolution.dependency-metadata[0]: unknown key 'requires_dist'",
        "did you mean 'requires-dist'?",
        id="metadata key typo",
    ),
    pytest.param(
        spec_text(
            HEAD, PHASE, '[[resolution.dependency-metadata]]\nname = "a"\nversion = "1..0"\n'
        ),
        "envspec.toml: resolution.dependency-metadata[0].version: invalid version '1..0'",
        "",
        id="metadata version",
    ),
    pytest.param(
        spec_text(
            HEAD,
            PHASE,
            '[[resolution.dependency-metadata]]\nname = "a"\nrequires-python = ">=3.x"\n',
        ),
        "envspec.toml: resolution.dependency-metadata[0].requires-python: invalid"
        " requires-python '>=3.x'",
        "",
        id="metadata requires-python",
    ),
    pytest.param(
        spec_text(
            HEAD,
            PHASE,
            '[[resolution.dependency-metadata]]\nname = "a"\nrequires-dist = ["b", "c >"]\n',
        ),
        "envspec.toml: resolution.dependency-metadata[0].requires-dist[1]: invalid requirement"
        " 'c >': expected semicolon (after name with no version specifier) or end",
        "",
        id="metadata requires-dist",
    ),
    pytest.param(
        spec_text(
            HEAD,
            PHASE,
            '[[resolution.dependency-metadata]]\nname = "A"\n',
            '[[resolution.dependency-metadata]]\nname = "a"\n',
        ),
        "envspec.toml: resolution.dependency-metadata[1].name: duplicate dependency-metadata for"
        " 'a'",
        "",
        id="metadata duplicate",
    ),
    # --- [checks]
    pytest.param(
        spec_text(HEAD, PHASE, '[checks]\nimport = ["numpy"]\n'),
        "envspec.toml: checks: unknown key 'import'",
        "did you mean 'imports'?",
        id="checks key typo",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[checks]\nimports = ["numpy", "transformers AutoProcessor"]\n'),
        "envspec.toml: checks.imports[1]: invalid import check 'transformers AutoProcessor'",
        'expected "module" or "module:attribute", e.g. "transformers:AutoProcessor"',
        id="import check",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[checks]\nversions = { numpy = "<<2" }\n'),
        "envspec.toml: checks.versions.numpy: invalid version specifier '<<2'",
        "",
        id="version check",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, "[checks]\nversions = { numpy = 2 }\n"),
        "envspec.toml: checks.versions.numpy: expected a string, got integer",
        "",
        id="version check type",
    ),
    pytest.param(
        spec_text(HEAD, PHASE, '[checks]\nversions = { NumPy = "<2", numpy = "<3" }\n'),
        "envspec.toml: checks.versions.numpy: duplicate package 'numpy'",
        "",
        id="version check duplicate",
    ),
]


RULES_HEAD = HEAD + PHASE.replace('["numpy<2"]', '["app"]')
RULE = """
[[rules]]
id = "app-lib"
package = "app"
versions = "<2"
requires = ["lib<2"]
source = "https://example.com/app/issues/1"
reason = "app 1.x crashes with lib 2"
"""


def _rule(body: str) -> str:
    head = '\n[[rules]]\nid = "r"\npackage = "app"\nsource = "https://e.com/1"\nreason = "x"\n'
    return head + body


# [[rules]] and [resolution] ignore-rules (see compat/parse.py)
BAD += [
    pytest.param(
        RULES_HEAD + '[resolution]\nignore-rules = ["torchao-torhc"]\n',
        "envspec.toml: resolution.ignore-rules[0]: unknown rule 'torchao-torhc'",
        "did you mean 'torchao-torch'?",
        id="unknown ignored rule",
    ),
    pytest.param(
        RULES_HEAD + '[resolution]\nignore-rules = ["zzz"]\n',
        "envspec.toml: resolution.ignore-rules[0]: unknown rule 'zzz'",
        "list the rules with 'envspec rules'",
        id="unknown ignored rule, nothing close",
    ),
    pytest.param(
        RULES_HEAD + RULE.replace('"app-lib"', '"torchao-torch"'),
        "envspec.toml: rules[0].id: rule 'torchao-torch' is a built-in rule",
        "to replace it, add it to [resolution] ignore-rules and give yours another id",
        id="built-in id",
    ),
    pytest.param(
        RULES_HEAD + RULE + RULE,
        "envspec.toml: rules[1].id: duplicate rule id 'app-lib'",
        "",
        id="duplicate id",
    ),
    pytest.param(
        RULES_HEAD + RULE.replace('"app-lib"', '"App Lib"'),
        "envspec.toml: rules[0].id: invalid rule id 'App Lib'",
        "use lower-case letters, digits, '-' and '.', e.g. 'torchao-torch'",
        id="bad id",
    ),
    pytest.param(
        RULES_HEAD + RULE.replace('requires = ["lib<2"]', 'require = ["lib<2"]'),
        "envspec.toml: rules[0]: unknown key 'require'",
        "did you mean 'requires'?",
        id="unknown key",
    ),
    pytest.param(
        RULES_HEAD + RULE.replace('"https://example.com/app/issues/1"', '"issue 1"'),
        "envspec.toml: rules[0].source: source must be an http(s) URL",
        "where the fact is written down",
        id="source not a URL",
    ),
    pytest.param(
        RULES_HEAD + RULE.replace('reason = "app 1.x crashes with lib 2"', 'reason = " "'),
        "envspec.toml: rules[0]: reason is empty",
        "say in one line what goes wrong without the rule",
        id="empty reason",
    ),
    pytest.param(
        RULES_HEAD + _rule('versions = "<<2"\nrequires = ["lib"]\n'),
        "envspec.toml: rules[0].versions: invalid version specifier '<<2'",
        "",
        id="bad versions",
    ),
    pytest.param(
        RULES_HEAD + _rule('marker = "os == 1"\nrequires = ["lib"]\n'),
        "envspec.toml: rules[0].marker: invalid marker 'os == 1'",
        "",
        id="bad marker",
    ),
    pytest.param(
        RULES_HEAD + _rule('targets = ["windows-x86"]\nrequires = ["lib"]\n'),
        "envspec.toml: rules[0].targets[0]: unknown target 'windows-x86'",
        "did you mean 'windows-x86_64'?",
        id="unknown target",
    ),
    pytest.param(
        RULES_HEAD + _rule('requires = ["lib<<2"]\n'),
        "envspec.toml: rules[0].requires[0]: invalid requirement 'lib<<2': expected "
        "semicolon (after name with no version specifier) or end",
        "",
        id="bad requirement",
    ),
    pytest.param(
        RULES_HEAD + _rule('requires = ["lib @ https://e.com/lib-1.0.tar.gz"]\n'),
        "envspec.toml: rules[0].requires[0]: requirement 'lib @ https://e.com/lib-1.0.tar.gz' "
        "may not be a direct reference",
        "",
        id="direct reference",
    ),
    pytest.param(
        RULES_HEAD + _rule('constraints = ["lib[fast]<2"]\n'),
        "envspec.toml: rules[0].constraints[0]: constraint 'lib[fast]<2' may not have extras",
        "",
        id="constraint with extras",
    ),
    pytest.param(
        RULES_HEAD + _rule('requires = ["app<3"]\n'),
        "envspec.toml: rules[0].requires[0]: the rule's package 'app' may not bound itself",
        "",
        id="bounds itself",
    ),
    pytest.param(
        RULES_HEAD + _rule('versions = "<2"\n'),
        "envspec.toml: rules[0]: the case adds nothing",
        "give requires or constraints",
        id="adds nothing",
    ),
    pytest.param(
        RULES_HEAD + _rule('versions = "<2"\ncases = [{ versions = "<1", requires = ["lib"] }]\n'),
        "envspec.toml: rules[0].versions: 'versions' belongs in each of the rule's cases",
        "",
        id="versions beside cases",
    ),
    pytest.param(
        RULES_HEAD + _rule("cases = []\n"),
        "envspec.toml: rules[0].cases: a rule needs at least one case",
        "",
        id="no cases",
    ),
    pytest.param(
        RULES_HEAD + _rule('cases = [{ versions = "<1", requires = ["lib"], marker = "x" }]\n'),
        "envspec.toml: rules[0].cases[0]: unknown key 'marker'",
        "allowed keys: versions, requires, constraints, note",
        id="marker in a case",
    ),
    pytest.param(
        RULES_HEAD + '[rules]\nid = "r"\n',
        "envspec.toml: rules: expected an array, got table",
        "",
        id="rules as a table",
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), BAD)
def test_bad_spec(text: str, message: str, hint: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, environ={})
    assert str(caught.value) == message
    assert caught.value.hint == hint
    assert caught.value.exit_code == EXIT_USAGE


def test_errors_never_show_an_expanded_url() -> None:
    text = spec_text(HEAD, '[indexes]\np = "${SECRET}"\n', PHASE)
    with pytest.raises(SpecError) as caught:
        parse_spec(text, environ={"SECRET": "user:hunter2@host/simple"})
    assert "hunter2" not in str(caught.value) + caught.value.hint
