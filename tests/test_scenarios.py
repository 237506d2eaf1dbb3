"""Resolution scenarios: each `tests/scenarios/*.toml` is a spec, the packages its indexes
serve, and the expected pins (or error) per target. One parametrized runner locks each
scenario through the real CLI against real wheels served on 127.0.0.1.

Scenario format (see any file in tests/scenarios/ for an example):
- `[environment]`, `[targets]`, `[[phases]]`, `[resolution]`, `[[rules]]` (project
  compatibility rules): as in envspec.toml (`name` and `python` default to "scenario" and
  "3.11"); the built-in rules are in force as in any project;
- `[indexes.NAME]`: `explicit`, and `[[indexes.NAME.packages]]` entries with `name`,
  `version`, optional `tag`, `requires`, `requires-python`, `extras` (extra → requirements),
  `yanked`, `sdist`/`wheel` (which files exist), `upload-time`, `metadata` (the wheel's whole
  METADATA text instead of one made from the fields), `later` (published only
  before the `[then]` step), `build` (an sdist whose metadata needs a PEP 517 build by an
  in-tree backend; with `backend`/`build-requires` naming another one, `fail` a build error);
- `[repos.NAME]`: a local git repository (branch `main`) of a package built by an in-tree
  backend: `name` (default NAME), `version`, `dependencies`, `optional-dependencies`,
  `requires-python`, `static` (deps in `[project]`, else only the backend knows them),
  `fail`, and `later` (a table of changed fields committed before the `[then]` step).
  Strings anywhere may say `{repo.NAME}` (`git+file:///…/NAME`), `{commit.NAME}` (its
  first commit; `{short.NAME}` its first 12 digits), `{repos}` (their folder), `{host}` and,
  in `[expect]`, `{files.INDEX}` (the URL of that index's files folder, with its `/`) and
  `{index.INDEX}` (that index's URL) and `{project}` (the project folder);
- `[expect.TARGET]`: `pins` (the exact set name → version), `phases` and `required-by`
  (subsets), `skipped` (phase → reason), `commits` (name → "first", "later" or a commit
  id), `rules` (the ids of the compatibility rules the lock records, in order); or
  `[expect] error` with the exact message (and `hint`, the exact hint); `[expect] warnings`
  lists lines that must be logged (as `WARNING: <line>`), `[expect] no-warnings = true` says
  none may be;
- `[then]`: a second lock after `later` packages appear, with `add` (phase → requirements
  appended), `args` (CLI flags) and its own `[then.expect.TARGET]`.

A key the runner does not read is an error (`ScenarioError`), so a misspelt expectation
(`pin` for `pins`) fails instead of passing unchecked; `[environment]`, `[targets]`,
`[[phases]]`, `[resolution]` and `[[rules]]` go to envspec, which refuses unknown keys itself.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from envspec.cli import main
from envspec.targets import host_target
from support.gitrepo import make_backend_sdist, make_git_package
from support.index_server import IndexServer
from support.wheels import build_wheel

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.toml"))

_TOP = (
    *("description", "environment", "targets", "phases", "resolution", "rules", "indexes"),
    "repos",
)
_PACKAGE = (
    *("name", "version", "tag", "tags", "requires", "requires-python", "index-requires-python"),
    *("extras", "yanked", "sdist", "wheel", "upload-time", "metadata", "later"),
    *("build", "backend", "build-requires", "fail"),
)
_REPO = ("name", "version", "dependencies", "optional-dependencies", "requires-python")
_REPO_FLAGS = ("static", "fail")
_EXPECT = ("error", "hint", "exit", "warnings", "no-warnings")
_EXPECT_TARGET = ("pins", "phases", "required-by", "skipped", "commits", "rules")


class ScenarioError(Exception):
    """A scenario file with a key the runner does not read."""


def load_scenario(path: Path) -> dict[str, Any]:
    """A scenario file's tables, every key of the runner's own checked (see the docstring)."""
    scenario = tomllib.loads(path.read_text())
    _keys(scenario, (*_TOP, "expect", "then"), path.name)
    for name, index in scenario.get("indexes", {}).items():
        _keys(index, ("explicit", "packages"), f"{path.name}: indexes.{name}")
        for i, package in enumerate(index.get("packages", [])):
            _keys(package, _PACKAGE, f"{path.name}: indexes.{name}.packages[{i}]")
    for name, repo in scenario.get("repos", {}).items():
        _keys(repo, (*_REPO, *_REPO_FLAGS, "later"), f"{path.name}: repos.{name}")
        _keys(repo.get("later", {}), (*_REPO, *_REPO_FLAGS), f"{path.name}: repos.{name}.later")
    targets = tuple(scenario.get("environment", {}).get("targets", ()))
    _expect(scenario.get("expect", {}), targets, f"{path.name}: expect")
    if "then" in scenario:
        _keys(scenario["then"], ("add", "args", "expect"), f"{path.name}: then")
        _expect(scenario["then"].get("expect", {}), targets, f"{path.name}: then.expect")
    return scenario


def _expect(table: Mapping[str, Any], targets: tuple[str, ...], where: str) -> None:
    _keys(table, (*_EXPECT, *targets), where)
    for target in targets:
        _keys(table.get(target, {}), _EXPECT_TARGET, f"{where}.{target}")


def _keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ScenarioError(f"{where}: unknown key '{key}'{hint}")


def _publish(server: IndexServer, package: Mapping[str, Any]) -> None:
    extras: Mapping[str, list[str]] = package.get("extras", {})
    requires = list(package.get("requires", []))
    for extra, reqs in extras.items():
        requires += [_with_extra(r, extra) for r in reqs]
    common = {
        "requires_dist": requires,
        "requires_python": package.get("requires-python"),
        "provides_extra": list(extras),
    }
    add = {"yanked": package.get("yanked"), "upload_time": package.get("upload-time")}
    if not package.get("index-requires-python", True):
        add["index_requires_python"] = None
    name, version = package["name"], package["version"]
    if package.get("build"):
        backend = {"backend": package.get("backend", "backend")}
        server.add(
            make_backend_sdist(
                server.root / "built",
                name,
                version,
                requires=package.get("build-requires", []),
                dependencies=requires,
                fail=package.get("fail"),
                **backend,
            )
        )
        return
    if package.get("wheel", True):
        tags = package.get("tags", [package.get("tag", "py3-none-any")])
        for tag in tags:
            if "metadata" in package:  # a METADATA as written, bad or legacy
                raw = package["metadata"].encode()
                path = build_wheel(server.files_dir, name, version, tag=tag, metadata=raw)
                server.add(path, **{k: v for k, v in add.items() if v is not None})
            else:
                server.add_wheel(name, version, tag=tag, **common, **add)
    if package.get("sdist", False):
        server.add_sdist(name, version, **common, **add)


def _with_extra(requirement: str, extra: str) -> str:
    if ";" in requirement:
        head, marker = requirement.split(";", 1)
        return f"{head}; ({marker.strip()}) and extra == '{extra}'"
    return f"{requirement}; extra == '{extra}'"


def _write_spec(project: Path, scenario: Mapping[str, Any], urls: Mapping[str, str]) -> None:
    doc = tomlkit.document()
    env = dict(scenario.get("environment", {}))
    env.setdefault("name", "scenario")
    env.setdefault("python", "3.11")
    doc["environment"] = env
    if "targets" in scenario:
        doc["targets"] = scenario["targets"]
    indexes = tomlkit.table()
    for name, index in scenario["indexes"].items():
        table = tomlkit.inline_table()
        table.update({"url": urls[name], "explicit": index.get("explicit", False)})
        indexes[name] = table
    doc["indexes"] = indexes
    doc["phases"] = scenario["phases"]
    if "resolution" in scenario:
        doc["resolution"] = scenario["resolution"]
    if "rules" in scenario:
        doc["rules"] = scenario["rules"]
    (project / "envspec.toml").write_text(tomlkit.dumps(doc))


class _Repos:
    """The scenario's git repositories and the strings that name them."""

    def __init__(self, root: Path, tables: Mapping[str, Any]) -> None:
        self.root, self.tables = root, tables
        self.commits: dict[str, dict[str, str]] = {}
        for key, table in tables.items():
            self._commit(key, "first", table)

    def _commit(self, key: str, label: str, table: Mapping[str, Any]) -> None:
        fields = {k: v for k, v in table.items() if k not in ("name", "version", "later")}
        commit = make_git_package(
            self.root / key,
            table.get("name", key),
            table["version"],
            dependencies=fields.get("dependencies", []),
            optional_dependencies=fields.get("optional-dependencies"),
            requires_python=fields.get("requires-python"),
            static=fields.get("static", False),
            fail=fields.get("fail"),
        )
        self.commits.setdefault(key, {})[label] = commit

    def advance(self) -> None:
        for key, table in self.tables.items():
            if "later" in table:
                self._commit(key, "later", {**table, **table["later"]})

    def subst(self, value: Any) -> Any:
        if isinstance(value, str):
            for key, commits in self.commits.items():
                value = value.replace(f"{{repo.{key}}}", f"git+file://{self.root / key}")
                value = value.replace(f"{{commit.{key}}}", commits["first"])
                value = value.replace(f"{{short.{key}}}", commits["first"][:12])
            value = value.replace("{repos}", str(self.root))
            return value.replace("{host}", host_target() or "an unknown platform")
        if isinstance(value, list):
            return [self.subst(v) for v in value]
        if isinstance(value, dict):
            return {k: self.subst(v) for k, v in value.items()}
        return value


def _lock(project: Path, cache: Path, *args: str) -> int:
    return main(["lock", "--project", str(project), "--cache-dir", str(cache), *args])


def _check(project: Path, expect: Mapping[str, Any], code: int, err: str, repos: _Repos) -> None:
    expect = repos.subst(expect)
    for line in expect.pop("warnings", []):
        assert f"WARNING: {line}" in err.splitlines(), err
    if expect.pop("no-warnings", False):
        assert "WARNING:" not in err, err
    if "error" in expect:
        assert code == expect.get("exit", 1), err
        assert f"error: {expect['error']}" in err.splitlines()
        if "hint" in expect:
            assert f"hint: {expect['hint']}" in err.splitlines(), err
        assert not (project / "locks").exists() or not any((project / "locks").iterdir())
        return
    assert code == 0, err
    for target, want in expect.items():
        lock = tomllib.loads((project / "locks" / f"pylock.{target}.toml").read_text())
        got = {p["name"]: p["version"] for p in lock["packages"]}
        meta = {p["name"]: p.get("tool", {}).get("envspec", {}) for p in lock["packages"]}
        if "pins" in want:
            assert got == want["pins"], f"{target}: {got}"
        for name, phase in want.get("phases", {}).items():
            assert meta[name]["phase"] == phase, f"{target}: {name}"
        for name, parents in want.get("required-by", {}).items():
            assert meta[name]["required-by"] == parents, f"{target}: {name}"
        for name, commit in want.get("commits", {}).items():
            pinned = next(p for p in lock["packages"] if p["name"] == name)["vcs"]["commit-id"]
            assert pinned == repos.commits.get(name, {}).get(commit, commit), f"{target}: {name}"
        if "rules" in want:
            applied = lock["tool"]["envspec"].get("rules", {}).get("applied", [])
            assert [r["id"] for r in applied] == want["rules"], f"{target}: {applied}"
        phases = {p["name"]: p for p in lock["tool"]["envspec"]["phases"]}
        for name, reason in want.get("skipped", {}).items():
            assert phases[name].get("skipped") == reason, f"{target}: {name}"


def _files(value: Any, servers: Mapping[str, IndexServer], project: Path) -> Any:
    """`{files.INDEX}` in expected messages: where that index serves its files (and
    `{index.INDEX}`, `{project}`)."""
    if isinstance(value, str):
        for name, server in servers.items():
            value = value.replace(f"{{files.{name}}}", f"{server.base}/files/")
            value = value.replace(f"{{index.{name}}}", server.url)
        return value.replace("{project}", str(project))
    if isinstance(value, list):
        return [_files(v, servers, project) for v in value]
    if isinstance(value, dict):
        return {k: _files(v, servers, project) for k, v in value.items()}
    return value


@pytest.fixture
def servers() -> Iterator[_ServerPool]:
    with ExitStack() as stack:
        yield _ServerPool(stack)


class _ServerPool(dict[str, IndexServer]):
    def __init__(self, stack: ExitStack) -> None:
        super().__init__()
        self.stack = stack

    def get_or_start(self, name: str) -> IndexServer:
        if name not in self:
            self[name] = self.stack.enter_context(IndexServer())
        return self[name]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(
    path: Path, tmp_path: Path, servers: _ServerPool, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load_scenario(path)
    repos = _Repos(tmp_path / "repos", scenario.get("repos", {}))
    scenario["phases"] = repos.subst(scenario["phases"])
    if "resolution" in scenario:
        scenario["resolution"] = repos.subst(scenario["resolution"])
    for name, index in scenario["indexes"].items():
        server = servers.get_or_start(name)
        for package in repos.subst(index.get("packages", [])):
            if not package.get("later"):
                _publish(server, package)
    project = tmp_path / "project"
    project.mkdir()
    _write_spec(project, scenario, {n: s.url for n, s in servers.items()})
    code = _lock(project, tmp_path / "cache")
    expect = _files(scenario["expect"], servers, project)
    _check(project, expect, code, capsys.readouterr().err, repos)
    then = scenario.get("then")
    if then is None:
        return
    for name, index in scenario["indexes"].items():
        for package in repos.subst(index.get("packages", [])):
            if package.get("later"):
                _publish(servers[name], package)
    repos.advance()
    for phase in scenario["phases"]:
        phase["requirements"] += then.get("add", {}).get(phase["name"], [])
    _write_spec(project, scenario, {n: s.url for n, s in servers.items()})
    code = _lock(project, tmp_path / "cache", *then.get("args", []))
    _check(project, _files(then["expect"], servers, project), code, capsys.readouterr().err, repos)


def test_a_misspelt_key_fails_the_scenario(tmp_path: Path) -> None:
    """`pin` for `pins` would check nothing: the runner refuses it before locking."""
    text = (Path(__file__).parent / "scenarios" / "yanked.toml").read_text()
    assert "\npins = " in text
    misspelt = tmp_path / "yanked.toml"
    misspelt.write_text(text.replace("\npins = ", "\npin = "))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(misspelt)
    assert str(raised.value) == (
        "yanked.toml: expect.linux-x86_64: unknown key 'pin' (did you mean 'pins'?)"
    )
    misspelt.write_text(text.replace("yanked = ", "yank = ", 1))
    with pytest.raises(ScenarioError, match=r"packages\[1\]: unknown key 'yank'"):
        load_scenario(misspelt)
    misspelt.write_text(text.replace("[expect.linux-x86_64]", "[expect.linux-x86-64]"))
    with pytest.raises(ScenarioError, match="expect: unknown key 'linux-x86-64'"):
        load_scenario(misspelt)
