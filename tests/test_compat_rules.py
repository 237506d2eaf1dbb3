"""The compatibility rules as data: the built-in set checked against the recorded metadata of
the real wheels it is about (so each rule says what the metadata does not), project rules and
`ignore-rules` in `envspec.toml` with their exact errors, the check of a set of versions, and
what a lock records and how `lock --check` tells a rule changed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.compat import load_builtin_rules
from envspec.compat.evaluate import evaluate
from envspec.compat.parse import parse_builtin
from envspec.errors import SpecError
from envspec.lockfile import dump_lock, parse_lock
from envspec.lockfile.status import lock_status
from envspec.model import AppliedRule, Artifact, Lock, LockedPackage, LockedPhase, Rule, RuleSet
from envspec.spec import parse_spec
from envspec.targets import make_target

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO.parent / "shared" / "fixtures" / "pytorch-cu121" / "metadata"
BUILTIN = (REPO / "src" / "envspec" / "compat" / "rules.toml").read_text("utf-8")
RULES = load_builtin_rules()
LINUX = make_target("linux-x86_64", "3.11")
WINDOWS = make_target("windows-x86_64", "3.11")


def recorded(project: str) -> dict[Version, list[str]]:
    """The recorded core metadata of `project`'s wheels: version → Requires-Dist lines."""
    out: dict[Version, list[str]] = {}
    for path in sorted(RECORDED.glob(f"{project.replace('-', '_')}-*.whl.metadata")):
        text = path.read_text("utf-8")
        version = Version(re.search(r"(?m)^Version: (.+)$", text)[1])  # type: ignore[index]
        out[version] = re.findall(r"(?m)^Requires-Dist: (.+)$", text)
    return out


def requires(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if canonicalize_name(Requirement(line).name) == name]


def rule(rule_id: str) -> Rule:
    [found] = [r for r in RULES.rules if r.id == rule_id]
    return found


def test_the_built_in_set_is_versioned_and_every_rule_is_sourced() -> None:
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+", RULES.version)
    assert [r.id for r in RULES.rules] == [
        "torchao-torch",
        "torch-numpy-windows",
        "torch-triton-windows",
        "triton-windows-torch",
    ]
    for each in RULES.rules:
        assert each.builtin and each.reason and each.source.startswith("https://github.com/")
        assert each.cite != each.source  # a short citation for messages
    assert rule("torchao-torch").cite == "pytorch/ao#2919"
    assert rule("torch-numpy-windows").cite == "pytorch/pytorch#131668"
    assert rule("torch-triton-windows").cite == "woct0rdho/triton-windows README"


def test_torchao_wheels_declare_no_torch_requirement_so_the_rule_supplies_one() -> None:
    wheels = recorded("torchao")
    assert sorted(map(str, wheels)) == [
        "0.10.0", "0.13.0", "0.4.0", "0.5.0", "0.6.1", "0.7.0", "0.8.0",
    ]  # fmt: skip
    for version, lines in wheels.items():
        assert requires([line for line in lines if "extra ==" not in line], "torch") == [], version
    cases = {str(c.versions): c for c in rule("torchao-torch").cases}
    assert list(cases) == [
        "==0.12.0", "==0.13.0", "==0.14.0", "==0.14.1", "==0.15.0", "==0.16.0", "==0.17.0",
        "==0.18.0",
    ]  # fmt: skip
    # the one ruled release whose metadata is recorded is covered, the older ones are not
    covered = {str(v) for v in wheels if any(c.covers(v) for c in cases.values())}
    assert covered == {"0.13.0"}
    assert [str(r) for r in cases["==0.13.0"].requires] == ["torch<=2.8.0,>=2.6.0"]
    assert [str(r) for r in cases["==0.14.1"].requires] == ["torch<=2.9.0,>=2.7.1"]
    # no ruled torchao supports the seed's torch 2.4 (recorded for Linux and Windows); 2.5.1
    # (recorded too) has torchao 0.12.0
    fits = {
        str(torch): [str(v) for v, c in cases.items() if c.requires[0].specifier.contains(torch)]
        for torch in recorded("torch")
    }
    assert fits == {"2.4.0": [], "2.4.1": [], "2.5.1": ["==0.12.0"]}


def test_torch_240_windows_wheel_declares_nothing_about_numpy() -> None:
    torch = {v: lines for v, lines in recorded("torch").items()}
    assert {str(v) for v in torch} == {"2.4.0", "2.4.1", "2.5.1"}
    for lines in torch.values():
        assert requires(lines, "numpy") == []
    [case] = rule("torch-numpy-windows").cases
    assert [str(r) for r in case.constraints] == ["numpy<2"]
    assert [str(v) for v in torch if case.covers(v)] == ["2.4.0"]  # 2.4.1 fixed it
    assert case.covers(Version("2.4.0+cu121"))  # the cu121 build is the same release
    assert case.holds(WINDOWS.environment(), WINDOWS.name)
    assert not case.holds(LINUX.environment(), LINUX.name)
    assert not case.holds(make_target("macos-arm64", "3.11").environment(), "macos-arm64")


def test_triton_windows_wheels_declare_no_torch_and_the_rule_picks_31_for_torch_24() -> None:
    triton = recorded("triton-windows")
    assert sorted(map(str, triton)) == ["3.1.0.post17", "3.2.0.post19"]
    for lines in triton.values():
        assert requires(lines, "torch") == []
    by_torch = rule("torch-triton-windows")
    for torch in recorded("torch"):  # 2.4.0, 2.4.1, 2.5.1: all want triton-windows 3.1
        [case] = [c for c in by_torch.cases if c.covers(torch)]
        [bound] = case.constraints
        assert [str(v) for v in triton if bound.specifier.contains(v)] == ["3.1.0.post17"]
    assert not any(c.covers(Version("2.11.0")) for c in by_torch.cases)  # not in the table
    [reverse] = rule("triton-windows-torch").cases
    assert [str(r) for r in reverse.constraints] == ["torch>=2.4"]
    assert all(reverse.covers(v) for v in triton)


def test_a_set_of_versions_is_checked_against_the_rules() -> None:
    versions = {
        canonicalize_name(n): Version(v)
        for n, v in {
            "torch": "2.4.0+cu121",
            "torchao": "0.14.1",
            "numpy": "2.1.0",
            "triton-windows": "3.8.0.post28",
        }.items()
    }
    on_linux = evaluate(RULES, versions, LINUX.environment(), LINUX.name)
    assert [f.message for f in on_linux.findings] == [
        "torchao 0.14.1 with torch 2.4.0+cu121: torchao 0.14.1 supports torch 2.7.1–2.9.0 "
        "(pytorch/ao#2919)",
    ]
    on_windows = evaluate(RULES, versions, WINDOWS.environment(), WINDOWS.name)
    assert [f.message for f in on_windows.findings] == [
        "torch 2.4.0+cu121 with numpy 2.1.0: torch 2.4.0+cu121 supports numpy<2 "
        "(pytorch/pytorch#131668)",
        "torch 2.4.0+cu121 with triton-windows 3.8.0.post28: torch 2.4.0+cu121 supports "
        "triton-windows>=3.1,<3.2 (woct0rdho/triton-windows README)",
        "torchao 0.14.1 with torch 2.4.0+cu121: torchao 0.14.1 supports torch 2.7.1–2.9.0 "
        "(pytorch/ao#2919)",
    ]
    alone = evaluate(RULES, {canonicalize_name("torchao"): Version("0.17.0")}, LINUX.markers, None)
    assert [f.message for f in alone.findings] == [
        "torchao 0.17.0 needs torch>=2.9.0 (pytorch/ao#2919), but torch is not installed"
    ]
    # a constraint on a package that is not there holds
    torch_only = {canonicalize_name("torch"): Version("2.4.0")}
    assert evaluate(RULES, torch_only, WINDOWS.environment(), WINDOWS.name).findings == ()


HEAD = """
[environment]
name = "t"
python = "3.11"
targets = ["linux-x86_64", "windows-x86_64"]

[[phases]]
name = "main"
requirements = ["app"]
"""
RULE = """
[[rules]]
id = "app-lib"
package = "app"
source = "https://example.com/app/issues/1"
reason = "app 1.x crashes with lib 2"
cases = [{ versions = "<2", requires = ["lib<2"] }]
"""


def test_project_rules_join_the_built_in_ones_and_ignore_rules_turns_some_off() -> None:
    spec = parse_spec(HEAD + '[resolution]\nignore-rules = ["torchao-torch"]\n' + RULE, environ={})
    assert [r.id for r in spec.rules.rules] == [
        "torch-numpy-windows",
        "torch-triton-windows",
        "triton-windows-torch",
        "app-lib",
    ]
    assert spec.rules.version == RULES.version
    assert spec.resolution.ignore_rules == ("torchao-torch",)
    [own] = spec.rules.about(canonicalize_name("app"))
    assert not own.builtin and own.cite == "https://example.com/app/issues/1"
    assert [str(r) for r in own.cases[0].requires] == ["lib<2"]


def test_the_built_in_file_itself_is_checked() -> None:
    with pytest.raises(SpecError) as caught:
        parse_builtin(BUILTIN.replace('version = "', 'version = "v'), where="rules.toml")
    assert str(caught.value).startswith("rules.toml: version: invalid version 'v")
    broken = BUILTIN.replace('constraints = ["numpy<2"]', 'constraints = ["numpy<<2"]')
    with pytest.raises(SpecError, match=r"^rules.toml: rules\[1\]\.constraints\[0\]: invalid"):
        parse_builtin(broken, where="rules.toml")


def _lock(spec_rules: RuleSet, *packages: tuple[str, str], target: str = "windows-x86_64") -> Lock:
    from envspec.inputs import applied_rules

    locked = tuple(
        LockedPackage(
            name=canonicalize_name(n),
            version=Version(v),
            artifact=Artifact(
                filename=f"{n}-{v}-py3-none-any.whl",
                url=f"https://files.example.com/{n}-{v}-py3-none-any.whl",
                kind="wheel",
                sha256="a" * 64,
            ),
            phase="main",
            required_by=("<spec>",),
        )
        for n, v in packages
    )
    return Lock(
        target=target,
        requires_python="==3.11.*",
        environments=(make_target(target, "3.11").environment_marker(),),
        packages=locked,
        phases=(LockedPhase(name="main"),),
        inputs={},
        rules=applied_rules(spec_rules, make_target(target, "3.11"), locked),
        rules_version=spec_rules.version,
    )


def test_a_lock_records_the_rules_about_its_packages_on_its_target() -> None:
    both = [("torch", "2.4.0+cu121"), ("numpy", "1.26.4")]
    on_windows = _lock(RULES, *both)
    assert [r.id for r in on_windows.rules] == ["torch-numpy-windows", "torch-triton-windows"]
    assert _lock(RULES, *both, target="linux-x86_64").rules == ()  # Windows-only rules
    assert _lock(RULES, ("numpy", "1.26.4")).rules == ()  # no rule is about numpy itself
    # a rule about a locked package counts whichever of its versions is locked
    assert [r.id for r in _lock(RULES, ("torchao", "0.11.0"), target="linux-x86_64").rules] == [
        "torchao-torch"
    ]


def test_the_rules_record_round_trips_and_a_lock_no_rule_is_about_has_none() -> None:
    lock = _lock(RULES, ("torch", "2.4.0+cu121"))
    text = dump_lock(lock)
    record = tomllib.loads(text)["tool"]["envspec"]["rules"]
    assert record == {
        "version": RULES.version,
        "applied": [
            {
                "id": "torch-numpy-windows",
                "sha256": rule("torch-numpy-windows").digest(),
                "source": "https://github.com/pytorch/pytorch/issues/131668",
            },
            {
                "id": "torch-triton-windows",
                "sha256": rule("torch-triton-windows").digest(),
                "source": rule("torch-triton-windows").source,
            },
        ],
    }
    back = parse_lock(text, path="pylock.toml")
    assert back.rules == lock.rules and back.rules_version == RULES.version
    untouched = dump_lock(_lock(RULES, ("numpy", "1.26.4")))
    assert "[tool.envspec.rules]" not in untouched
    assert parse_lock(untouched, path="pylock.toml").rules == ()


def test_a_digest_follows_what_a_rule_does_not_how_it_is_worded() -> None:
    torch = rule("torch-numpy-windows")
    import dataclasses

    reworded = dataclasses.replace(torch, reason="other words", note="a note")
    assert reworded.digest() == torch.digest()
    [case] = torch.cases
    wider = dataclasses.replace(torch, cases=(dataclasses.replace(case, marker=None),))
    assert wider.digest() != torch.digest()


SPEC = HEAD.replace('"linux-x86_64", ', "").replace('["app"]', '["torch"]')


def _with_rules(*rules: Rule, version: str = "2030.1.1") -> RuleSet:
    return RuleSet(version=version, rules=rules)


def test_lock_check_is_stale_exactly_when_a_rule_about_its_packages_changes(
    tmp_path: Path,
) -> None:
    import dataclasses

    from envspec.lockfile import write_lock

    (tmp_path / "locks").mkdir()
    made_with = _with_rules(*RULES.rules)
    spec = parse_spec(SPEC, environ={}, builtin=made_with)
    from envspec.inputs import lock_inputs

    lock = dataclasses.replace(
        _lock(spec.rules, ("torch", "2.4.0+cu121")),
        inputs=lock_inputs(spec, make_target("windows-x86_64", "3.11")),
    )
    write_lock(tmp_path / "locks" / "pylock.windows-x86_64.toml", lock)

    def status(builtin: RuleSet, text: str = SPEC) -> tuple[str, str]:
        [found] = lock_status(parse_spec(text, environ={}, builtin=builtin), tmp_path, spec.targets)
        return found.state, found.reason

    assert status(made_with) == ("fresh", "")
    # a new version of the set with a rule about a package the lock does not hold: fresh
    unrelated = dataclasses.replace(rule("torchao-torch"), id="other", package="other")
    assert status(_with_rules(*RULES.rules, unrelated, version="2030.2.1")) == ("fresh", "")
    # reworded: fresh; a changed case: stale, named
    numpy_rule = rule("torch-numpy-windows")
    reworded = dataclasses.replace(numpy_rule, reason="other words")
    others = [r for r in RULES.rules if r.id != numpy_rule.id]
    assert status(_with_rules(reworded, *others)) == ("fresh", "")
    [case] = numpy_rule.cases
    stricter = dataclasses.replace(
        numpy_rule, cases=(dataclasses.replace(case, constraints=(Requirement("numpy<1.26"),)),)
    )
    assert status(_with_rules(stricter, *others)) == ("stale", "rule torch-numpy-windows changed")
    assert status(_with_rules(*others)) == ("stale", "rule torch-numpy-windows no longer applies")
    ignored = SPEC + '[resolution]\nignore-rules = ["torch-numpy-windows"]\n'
    assert status(made_with, ignored) == ("stale", "rule torch-numpy-windows no longer applies")
    about_torch = SPEC + RULE.replace('package = "app"', 'package = "torch"')
    assert status(made_with, about_torch) == ("stale", "rule app-lib now applies")
    assert status(made_with, SPEC + RULE) == ("fresh", "")  # about app, which is not locked


def test_applied_rule_records_compare_by_id_and_digest() -> None:
    from envspec.inputs import rule_changes

    a, b = AppliedRule(id="a", sha256="1", source="s"), AppliedRule(id="b", sha256="2", source="s")
    assert rule_changes([a, b], [a, b]) == []
    moved = AppliedRule(id="a", sha256="1", source="https://elsewhere")  # a source moved
    assert rule_changes([a], [moved]) == []
    assert rule_changes([a], [AppliedRule(id="a", sha256="9", source="s"), b]) == [
        "rule a changed",
        "rule b now applies",
    ]


def _pypi_releases(name: str) -> set[Version]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as answer:
        return {Version(v) for v in json.load(answer)["releases"]}


@pytest.mark.network
def test_every_version_the_rules_name_is_a_release_on_pypi() -> None:
    releases = {n: _pypi_releases(n) for n in ("torch", "torchao", "triton-windows", "numpy")}
    named: dict[str, set[str]] = {n: set() for n in releases}
    minors: dict[str, set[str]] = {n: set() for n in releases}
    for each in RULES.rules:
        for case in each.cases:
            for spec in case.versions:
                (minors if spec.version.endswith(".*") else named)[each.package].add(spec.version)
            for req in (*case.requires, *case.constraints):
                for spec in req.specifier:
                    named[canonicalize_name(req.name)].add(spec.version)
    for name, versions in named.items():
        exact = {v for v in versions if len(Version(v).release) == 3}
        assert {v for v in exact if Version(v) not in releases[name]} == set(), name
        for short in versions - exact:  # "2.4", "3.1", "2": some release of that series exists
            series = Version(short).release
            assert any(r.release[: len(series)] == series for r in releases[name]), short
    for name, prefixes in minors.items():
        for prefix in prefixes:
            assert any(str(r).startswith(prefix[:-1]) for r in releases[name]), prefix
