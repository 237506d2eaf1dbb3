"""`envspec init --from` on requirements files shaped like published ones (tests/reqfiles/):
everything pip reads in them is mapped to the spec, or dropped with a warning saying so.
Index URLs are written as given; nothing here touches the network."""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from envspec.cli import main
from envspec.review.init import _index_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FILES = Path(__file__).parent / "reqfiles"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A copy of tests/reqfiles/, so paths in messages are the test's own."""
    return Path(shutil.copytree(FILES, tmp_path / "reqfiles"))


def convert(files: Path, *names: str) -> dict[str, Any]:
    project = files.parent / "project"
    project.mkdir(exist_ok=True)
    args = [a for name in names for a in ("--from", str(files / name))]
    assert main(["init", "--project", str(project), *args]) == 0
    return tomllib.loads((project / "envspec.toml").read_text())


def phases(doc: dict[str, Any]) -> list[tuple[str, str | None, list[str]]]:
    return [(p["name"], p.get("index"), p["requirements"]) for p in doc["phases"]]


BASE = [
    "Django<5.1,>=4.2",
    "django-environ==0.11.2",
    "requests[security]>=2.31.0",
    "Pillow>=10.0",
    "whitenoise==6.7.0",
]


def test_includes_and_constraints(files: Path) -> None:
    doc = convert(files, "webapp.txt")
    assert phases(doc) == [
        (
            "webapp",
            None,
            [
                *BASE,
                "gunicorn==22.0.0",
                'psycopg[c]==3.2.1; sys_platform == "linux"',
                'psycopg[binary]==3.2.1; sys_platform != "linux"',
                "sentry-sdk[django]==2.10.0",
            ],
        )
    ]
    assert doc["resolution"] == {"constraints": ["urllib3<3", "certifi>=2024.2.2"]}


def test_includes_are_relative_to_the_file_naming_them(files: Path) -> None:
    doc = convert(files, "nested/dev.txt")
    assert phases(doc) == [
        (
            "dev",
            None,
            [
                *BASE,
                "ruff==0.5.5",
                'mypy>=1.10; python_version >= "3.8"',
                "pytest>=8",
                "pytest-django",
            ],
        )
    ]
    assert doc["resolution"] == {"prereleases": "allow"}


def test_extra_index_urls_are_searched_first_and_named_for_what_they_are(files: Path) -> None:
    doc = convert(files, "torch-cu118.txt")
    assert doc["indexes"] == {
        "pytorch-cu118": "https://download.pytorch.org/whl/cu118",
        "autogptq-cu118": "https://huggingface.github.io/autogptq-index/whl/cu118/",
        "pypi": "https://pypi.org/simple",
    }
    assert phases(doc)[0][1] is None  # not routed: every other name still comes from PyPI


def test_a_requirement_lines_own_index_routes_it(files: Path) -> None:
    doc = convert(files, "pinned-cuda.txt")
    assert doc["indexes"] == {
        "pypi": "https://pypi.org/simple",
        "pytorch-cu118": {"url": "https://download.pytorch.org/whl/cu118", "explicit": True},
    }
    assert phases(doc) == [
        ("pytorch-cu118", "pytorch-cu118", ["torch==2.4.0+cu118", "torchvision==0.19.0+cu118"]),
        ("pinned-cuda", None, ["numpy<2"]),
    ]


def test_bare_urls_and_git_eggs_become_direct_references(files: Path) -> None:
    assert phases(convert(files, "urls.txt"))[0][2] == [
        "flash-attn @ https://github.com/Dao-AILab/flash-attention/releases/download/v2.6.3/"
        "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp311-cp311-linux_x86_64.whl ; "
        'sys_platform == "linux"',
        "six @ https://files.pythonhosted.org/packages/source/s/six/six-1.16.0.tar.gz",
        "transformers @ git+https://github.com/huggingface/transformers.git@v4.44.0",
        "clip @ git+https://github.com/openai/CLIP.git",
        "peft @ git+https://github.com/huggingface/peft.git@v0.12.0",
        "xformers @ https://download.pytorch.org/whl/cu121/"
        "xformers-0.0.27.post2-cp311-cp311-manylinux2014_x86_64.whl",
    ]


def test_global_options_and_per_line_build_options(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = convert(files, "options.txt")
    assert doc["indexes"] == {
        "pypi": "https://pypi.org/simple",
        "pyg-torch-2.4.0-cu121": {
            "url": "https://data.pyg.org/whl/torch-2.4.0+cu121.html",
            "flat": True,
        },
    }
    assert phases(doc) == [("options", None, ["torch-scatter", "pyyaml", "numpy<2,>=1.24"])]
    assert doc["resolution"] == {"no-binary": ["pyyaml"], "no-build": [":all:"]}
    where = files / "options.txt"
    assert capsys.readouterr().err.splitlines()[:2] == [
        f"WARNING: {where}:5: --prefer-binary dropped: envspec takes the highest version, "
        "a wheel where one fits",
        f"WARNING: {where}:11: --config-settings setup-args=-Dblas=openblas dropped: "
        "a spec has no per-requirement build options",
    ]


def test_continuations_hashes_and_comments(files: Path) -> None:
    assert phases(convert(files, "continuation.txt")) == [
        ("continuation", None, ["aiohttp==3.9.5", "aiosignal==1.3.1", "attrs==23.2.0"])
    ]


def test_a_comment_line_after_a_continuation_ends_the_requirement(tmp_path: Path) -> None:
    """pip joins it with a space before it, so its `#` starts a comment: it was joined bare,
    'requests>=2# pinned…', and refused."""
    (tmp_path / "reqs.txt").write_text("requests>=2\\\n# pinned for py3.8\nsix\n")
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert doc["phases"][0]["requirements"] == ["requests>=2", "six"]


def test_editables(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = convert(files, "editable.txt")
    assert phases(doc) == [
        (
            "editable",
            None,
            ["detectron2 @ git+https://github.com/facebookresearch/detectron2.git@v0.6"],
        )
    ]
    where = files / "editable.txt"
    assert capsys.readouterr().err.splitlines()[:2] == [
        f"WARNING: {where}:2: -e ./localpkg left out: a local folder cannot be locked (its "
        "content has no hash); install it after 'envspec sync' with pip install -e ./localpkg",
        f"WARNING: {where}:3: -e git+https://github.com/facebookresearch/detectron2.git@v0.6"
        "#egg=detectron2 is locked as a git source, not editable",
    ]


def test_every_file_converts_in_one_go(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(str(p.relative_to(files)) for p in files.rglob("*.txt"))
    doc = convert(files, *names)
    assert len(doc["phases"]) == len(names) + 1  # pinned-cuda's routed lines: a phase of their own
    assert "phases" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://download.pytorch.org/whl/cu121", "pytorch-cu121"),
        ("https://download.pytorch.org/whl/nightly/cu121/", "pytorch-nightly-cu121"),
        ("https://huggingface.github.io/autogptq-index/whl/cu118", "autogptq-cu118"),
        ("https://abetlen.github.io/llama-cpp-python/whl/cu121", "llama-cpp-python-cu121"),
        ("https://pypi.nvidia.com", "nvidia"),
        ("https://flashinfer.ai/whl/cu121/torch2.4/", "flashinfer-cu121-torch2.4"),
        ("https://gitlab.com/api/v4/projects/123/packages/pypi/simple", "projects-123"),
        ("http://[::1/simple", "index"),
    ],
)
def test_index_names(url: str, name: str) -> None:
    assert _index_name(url) == name


# --- what pip refuses, envspec refuses too; the rest is exact --------------------------------


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("-r missing.txt\n", "{d}/reqs.txt:1: -r missing.txt: no such requirements file", ""),
        ("-r reqs.txt\nnumpy\n", "{d}/reqs.txt:1: '-r reqs.txt' includes itself", ""),
        (
            "-c https://example.com/c.txt\nnumpy\n",
            "{d}/reqs.txt:1: '-c' with a URL: https://example.com/c.txt",
            "download the file and name it by its path",
        ),
        (
            "https://u:secret@example.com/dl/archive.bin\n",
            "{d}/reqs.txt:1: cannot tell the project name of 'https://example.com/dl/archive.bin'",
            "write it as 'name @ URL' (or add #egg=name)",
        ),
        (
            "foo @ https://u:secret@example.com/foo.whl ; python_version >\n",
            "{d}/reqs.txt:1: invalid requirement 'foo @ https://example.com/foo.whl ; "
            "python_version >': expected a marker variable or quoted string",
            "",
        ),
        (
            "numpy --upgrade\n",
            "{d}/reqs.txt:1: unsupported option '--upgrade' after a requirement",
            "only --hash, -i/--index-url, --extra-index-url, --config-settings and "
            "--global-option follow one",
        ),
        ("--index-url\nnumpy\n", "{d}/reqs.txt:1: option '--index-url' needs a value", ""),
        (  # passed init, then failed lock
            "x @ hg+https://example.com/repo\n",
            "{d}/reqs.txt:1: hg+https://example.com/repo: only git sources are supported",
            "",
        ),
        (
            "git+https://example.com/r.git#egg=r&subdirectory=pkg\n",
            "{d}/reqs.txt:1: git+https://example.com/r.git#subdirectory=pkg: git subdirectories "
            "are not supported",
            "point the requirement at a repository whose root is the package",
        ),
        ("-e ./src\n", "{d}/reqs.txt: no requirements in the file", "each file becomes a phase"),
    ],
)
def test_refused_with_exact_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str, hint: str
) -> None:
    (tmp_path / "reqs.txt").write_text(text)
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "WARNING" not in line]
    assert lines == [f"error: {message.format(d=tmp_path)}", *([f"hint: {hint}"] if hint else [])]
    assert "secret" not in "\n".join(lines)
    assert not (tmp_path / "envspec.toml").exists()


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        (
            "requests[socks]<3",
            "constraint 'requests[socks]<3' may not have extras",
            "constraints only bound versions; ask for extras in a requirements file",
        ),
        (
            "requests @ https://u:secret@example.com/requests-2.0-py3-none-any.whl",
            "constraint 'requests @ https://example.com/requests-2.0-py3-none-any.whl' may not "
            "be a direct reference",
            "put 'name @ URL' in a requirements file, not a constraints file",
        ),
    ],
)
def test_a_constraint_pip_refuses_is_refused_at_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str, hint: str
) -> None:
    """It was refused later, at the spec it would have gone into: 'envspec.toml (generated):
    resolution.constraints[0]'."""
    (tmp_path / "reqs.txt").write_text("requests\n-c c.txt\n")
    (tmp_path / "c.txt").write_text(f"# pins\n{line}\n")
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'c.txt'}:2: {message}",
        f"hint: {hint}",
    ]
    assert not (tmp_path / "envspec.toml").exists()


def test_repeated_names_are_combined_by_the_spec(tmp_path: Path) -> None:
    (tmp_path / "reqs.txt").write_text("numpy>=1.20\nscipy\nnumpy<2\n")
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    from envspec.spec import load_spec

    spec = load_spec(tmp_path / "envspec.toml", {})
    assert [str(r) for r in spec.phases[0].requirements] == ["numpy<2,>=1.20", "scipy"]


def test_no_index_in_every_file_leaves_pypi_out(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "reqs.txt").write_text("--no-index\n--find-links ./wheels\nfoo\n")
    project = tmp_path / "p"
    project.mkdir()
    assert main(["init", "--project", str(project), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((project / "envspec.toml").read_text())
    assert doc["indexes"] == {"wheels": {"url": str(tmp_path / "wheels"), "flat": True}}


def test_find_links_are_searched_before_any_index(tmp_path: Path) -> None:
    """A file's own folder of wheels came after PyPI: with the first-index strategy a
    same-named project on PyPI won over the user's wheel (dependency confusion)."""
    (tmp_path / "wheels").mkdir()
    (tmp_path / "reqs.txt").write_text(
        "--extra-index-url https://download.pytorch.org/whl/cu121\n-f ./wheels\ntinypkg\n"
    )
    project = tmp_path / "p"
    project.mkdir()
    assert main(["init", "--project", str(project), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((project / "envspec.toml").read_text())
    assert list(doc["indexes"]) == ["wheels", "pytorch-cu121", "pypi"]


def test_pypi_beside_a_mirror_that_replaces_it_is_kept_after_it(tmp_path: Path) -> None:
    """`--index-url MIRROR --extra-index-url https://pypi.org/simple`: PyPI was dropped (an
    extra URL that is PyPI was taken for the default), so every name the mirror lacks failed."""
    (tmp_path / "reqs.txt").write_text(
        "--index-url https://pkgs.example.com/simple\n"
        "--extra-index-url https://pypi.org/simple\ntinypkg\n"
    )
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert doc["indexes"] == {
        "example": "https://pkgs.example.com/simple",
        "pypi": "https://pypi.org/simple",
    }


def test_no_index_and_nothing_else_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "reqs.txt").write_text("--no-index\nfoo\n")
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'reqs.txt'}: --no-index leaves no index to search\n"
        "hint: add -f/--find-links with the folder or page of the files\n"
    )
    assert not (tmp_path / "envspec.toml").exists()


def test_a_files_options_after_a_requirement_are_dropped_as_pip_ignores_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They were refused: `unsupported option '-f' after a requirement`, exit 2."""
    (tmp_path / "reqs.txt").write_text(
        "six -f https://u:secret@example.com/links/ --pre\nidna --trusted-host example.com\n"
    )
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert [p["requirements"] for p in doc["phases"]] == [["six", "idna"]]
    assert doc["indexes"] == {"pypi": "https://pypi.org/simple"} and "resolution" not in doc
    where = tmp_path / "reqs.txt"
    assert capsys.readouterr().err.splitlines()[:3] == [
        f"WARNING: {where}:1: -f https://example.com/links/ dropped: pip ignores a file's "
        "option after a requirement",
        f"WARNING: {where}:1: --pre dropped: pip ignores a file's option after a requirement",
        f"WARNING: {where}:2: --trusted-host example.com dropped: pip ignores a file's option "
        "after a requirement",
    ]


def test_byte_order_marks_and_options_after_an_editable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_bytes("\ufeffnumpy<2\r\n".encode())
    (tmp_path / "b.txt").write_bytes("scipy\n".encode("utf-16"))
    (tmp_path / "c.txt").write_text("-e git+https://h/r.git#egg=r --config-settings=k=v\n")
    args = [a for n in ("a.txt", "b.txt", "c.txt") for a in ("--from", str(tmp_path / n))]
    assert main(["init", "--project", str(tmp_path), *args]) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert [p["requirements"] for p in doc["phases"]] == [
        ["numpy<2"],
        ["scipy"],
        ["r @ git+https://h/r.git"],
    ]
    assert (
        f"WARNING: {tmp_path / 'c.txt'}:1: --config-settings k=v dropped: "
        "a spec has no per-requirement build options"
    ) in capsys.readouterr().err.splitlines()


def test_variables_are_expanded_where_no_url_holds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip expands `${VAR}` everywhere; `six==${SIX_VERSION}` was refused ('expected
    semicolon … or end'). A URL's references stay as written: they name credentials."""
    monkeypatch.setenv("SIX_VERSION", "1.16.0")
    monkeypatch.setenv("TOKEN", "secret")
    (tmp_path / "reqs.txt").write_text(
        "six==${SIX_VERSION}\nfoo @ https://${TOKEN}@example.com/foo-1.0-py3-none-any.whl\n"
    )
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert doc["phases"][0]["requirements"] == [
        "six==1.16.0",
        "foo @ https://${TOKEN}@example.com/foo-1.0-py3-none-any.whl",
    ]


def test_an_unset_variable_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIX_VERSION", raising=False)
    (tmp_path / "reqs.txt").write_text("attrs\nsix==${SIX_VERSION}\n")
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'reqs.txt'}:2: undefined environment variable 'SIX_VERSION'",
        "hint: set SIX_VERSION, or write its value in the file",
    ]
    assert not (tmp_path / "envspec.toml").exists()


@pytest.mark.parametrize(
    ("lines", "no_binary", "no_build"),
    [
        # a name after ":all:" of the other option is the exception to it (pip's order rules)
        ("--only-binary :all:\n--no-binary six\n", ["six"], [":all:"]),
        ("--no-binary six\n--only-binary :all:\n", None, [":all:"]),
        ("--no-binary six,idna\n--only-binary idna\n", ["six"], ["idna"]),
        ("--no-binary six\n--no-binary :none:\n", None, None),
        ("--no-binary :none:,six\n", ["six"], None),
        ("--no-binary=:all:\n--only-binary=Six_Pkg\n", [":all:"], ["six-pkg"]),
    ],
)
def test_binary_options_follow_pips_order_rules(
    tmp_path: Path, lines: str, no_binary: list[str] | None, no_build: list[str] | None
) -> None:
    """They were two sets: the order lost (`--only-binary :all:` then `--no-binary six` left
    six in both, so no file could be installed) and `:none:` ignored."""
    (tmp_path / "reqs.txt").write_text(lines + "six\n")
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    resolution = tomllib.loads((tmp_path / "envspec.toml").read_text()).get("resolution", {})
    assert (resolution.get("no-binary"), resolution.get("no-build")) == (no_binary, no_build)


def test_a_pep_263_coding_line_is_honoured_as_pip_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was read as UTF-8 whatever it said: 'not UTF-8 text'."""
    (tmp_path / "reqs.txt").write_bytes(
        "# -*- coding: latin-1 -*-\n# Müller's pins\nsix==1.16.0\n".encode("latin-1")
    )
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert [p["requirements"] for p in doc["phases"]] == [["six==1.16.0"]]
    (tmp_path / "envspec.toml").unlink()
    (tmp_path / "reqs.txt").write_bytes(b"# coding: no-such-codec\nsix\n")
    capsys.readouterr()
    assert main(["init", "--project", str(tmp_path), "--from", str(tmp_path / "reqs.txt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'reqs.txt'}: cannot read the file: unknown encoding "
        "'no-such-codec' in its coding line"
    ]


def test_an_include_cycle_and_a_file_url_include(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A two-file cycle said "'-r a.txt' includes itself"; `-r file:///…` was refused as a URL
    (pip reads it)."""
    (tmp_path / "a.txt").write_text("-r b.txt\nsix\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nidna\n")
    args = ["init", "--project", str(tmp_path), "--from", str(tmp_path / "a.txt")]
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'b.txt'}:1: '-r a.txt' includes a file that includes it: "
        "a.txt → b.txt → a.txt"
    ]
    (tmp_path / "b.txt").write_text("idna\n")
    (tmp_path / "a.txt").write_text(f"-r {(tmp_path / 'b.txt').as_uri()}\nsix\n")
    assert main(args) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert [p["requirements"] for p in doc["phases"]] == [["idna", "six"]]
