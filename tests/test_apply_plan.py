"""The pure parts of apply: the sync plan, requirement lines, snapshot restore text and
change lists, and the journal's idea of where a sync stopped."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.apply.journal import Journal, interrupted_message
from envspec.apply.plan import (
    Installed,
    Step,
    describe,
    install_calls,
    make_plan,
    pylock_text,
    requirement_line,
)
from envspec.apply.snapshot import Provenance, changes, new_snapshot, restore_files, restore_text
from envspec.apply.store import Wanted
from envspec.errors import UsageError
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase, VcsSource

INDEX = "https://pypi.example/simple/"

URL = "https://files.example/"


def _pkg(name: str, version: str, phase: str, *, vcs: str | None = None) -> LockedPackage:
    if vcs:
        source = VcsSource(url="https://git.example/x.git", requested_revision=None, commit_id=vcs)
        return LockedPackage(
            name=canonicalize_name(name), version=Version(version), vcs=source, phase=phase
        )
    artifact = Artifact(
        filename=f"{name}-{version}-py3-none-any.whl",
        url=f"{URL}{name}-{version}-py3-none-any.whl",
        kind="wheel",
        sha256=f"{name}{version}".encode().hex().ljust(64, "0"),
    )
    return LockedPackage(
        name=canonicalize_name(name),
        version=Version(version),
        artifact=artifact,
        phase=phase,
        index=INDEX,
    )


LOCK = Lock(
    target="linux-x86_64",
    requires_python="==3.11.*",
    environments=(),
    phases=(
        LockedPhase(name="base"),
        LockedPhase(name="triton", optional=True, skipped="no wheel for this target"),
        LockedPhase(name="app"),
    ),
    packages=(
        _pkg("numpy", "1.26.4", "base"),
        _pkg("torch", "2.3.0", "base"),
        _pkg("unsloth", "0.1", "app", vcs="abc123"),
        _pkg("trl", "0.9", "app"),
    ),
    inputs={},
)


def _have(*pairs: tuple[str, str], commit: str | None = None) -> list[Installed]:
    return [
        Installed(name=canonicalize_name(n), version=v, commit=commit if n == "unsloth" else None)
        for n, v in pairs
    ]


def test_the_plan_says_per_phase_what_to_install_upgrade_downgrade_or_reinstall() -> None:
    installed = _have(("numpy", "2.1.0"), ("torch", "2.3.0"), ("trl", "0.8"), ("unsloth", "0.1"))
    plan = make_plan(LOCK, installed, no_build_isolation={"app"})
    assert describe(plan) == [
        {"phase": "base", "optional": False, "skipped": None, "steps": [
            {"name": "numpy", "version": "1.26.4", "action": "downgrade", "installed": "2.1.0"},
        ]},
        {"phase": "triton", "optional": True, "skipped": "no wheel for this target", "steps": []},
        {"phase": "app", "optional": False, "skipped": None, "steps": [
            {"name": "trl", "version": "0.9", "action": "upgrade", "installed": "0.8"},
            {"name": "unsloth", "version": "0.1", "action": "reinstall", "installed": "0.1"},
        ]},
    ]  # fmt: skip
    assert [p.no_build_isolation for p in plan.phases] == [False, False, True]
    assert plan.remove == () and plan.install_count == 3


def test_a_matching_environment_gives_an_empty_plan() -> None:
    installed = _have(("numpy", "1.26.4"), ("torch", "2.3.0"), ("trl", "0.9"), ("unsloth", "0.1"),
                      commit="abc123")  # fmt: skip
    assert make_plan(LOCK, installed).empty
    extra = [*installed, Installed(name=canonicalize_name("pip"), version="24.0")]
    assert make_plan(LOCK, extra).empty
    exact = make_plan(LOCK, extra, exact=True)
    assert not exact.empty and [d.name for d in exact.remove] == ["pip"]


def test_an_index_package_installed_from_a_url_is_reinstalled_as_a_registry_install() -> None:
    installed = [
        Installed(name=canonicalize_name("numpy"), version="1.26.4", url=f"{URL}numpy.whl"),
        *_have(("torch", "2.3.0"), ("trl", "0.9"), ("unsloth", "0.1"), commit="abc123"),
    ]
    plan = make_plan(LOCK, installed)
    assert [(s.package.name, s.action) for p in plan.phases for s in p.steps] == [
        ("numpy", "reinstall")
    ]


def test_phase_cuts_the_plan_after_the_named_phase() -> None:
    plan = make_plan(LOCK, [], phase="base")
    assert [p.phase.name for p in plan.phases] == ["base"]
    with pytest.raises(UsageError) as err:
        make_plan(LOCK, [], phase="ap")
    assert str(err.value) == "no phase 'ap' in the lock for linux-x86_64"
    assert err.value.hint == "did you mean 'app'?"


def test_requirement_lines_pin_the_exact_artifact_or_commit() -> None:
    numpy, unsloth = LOCK.packages[0], LOCK.packages[2]
    assert requirement_line(numpy) == (
        f"numpy @ {URL}numpy-1.26.4-py3-none-any.whl --hash=sha256:{numpy.artifact.sha256}"  # type: ignore[union-attr]
    )
    assert requirement_line(unsloth) == "unsloth @ git+https://git.example/x.git@abc123"


def test_restore_text_is_the_freeze_with_recorded_hashes_on_url_lines() -> None:
    url = f"{URL}torch-2.3.0-py3-none-any.whl"
    snap = new_snapshot(
        id=3,
        command="sync",
        freeze=f"numpy==1.26.4\ntorch @ {url}\n-e file:///src/app\n",
        installed=_have(("numpy", "1.26.4"), ("torch", "2.3.0")),
        provenance={
            "torch": Provenance(version="2.3.0", url=url, sha256="ab" * 32, phase="base"),
            "numpy": Provenance(version="1.0", url="x", sha256="cd" * 32),  # stale: dropped
        },
        now=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    )
    assert snap.created == "2025-01-02T03:04:05Z"
    assert [name for name, _ in snap.provenance] == ["torch"]
    assert restore_text(snap) == (
        f"numpy==1.26.4\ntorch @ {url} --hash=sha256:{'ab' * 32}\n-e file:///src/app\n"
    )


def test_a_phase_installs_index_packages_from_a_pep751_file_of_stored_files() -> None:
    numpy, torch, unsloth, trl = LOCK.packages
    url = dataclasses.replace(trl, index=None)  # a URL requirement: no index
    steps = [
        Step(package=numpy, action="install", installed=None),
        Step(package=torch, action="reinstall", installed="2.3.0"),
        Step(package=url, action="upgrade", installed="0.8"),
        Step(package=unsloth, action="install", installed=None),
    ]
    stored = {p.artifact.sha256: Path(f"/store/{p.name}.whl") for p in (numpy, torch)}  # type: ignore[union-attr]
    index, direct, git = install_calls(steps, stored)
    assert (index.pylock, index.require_hashes, index.reinstall) == (True, True, ("torch",))
    assert index.text == pylock_text([numpy, torch], stored)
    assert index.text.splitlines()[:9] == [
        'lock-version = "1.0"',
        'created-by = "envspec"',
        "",
        "[[packages]]",
        'name = "numpy"',
        'version = "1.26.4"',
        f'index = "{INDEX}"',
        f'wheels = [{{name = "numpy-1.26.4-py3-none-any.whl", path = "/store/numpy.whl", '
        f'hashes = {{sha256 = "{numpy.artifact.sha256}"}}}}]',  # type: ignore[union-attr]
        "",
    ]
    assert tomllib.loads(index.text)["packages"][1]["wheels"][0]["path"] == "/store/torch.whl"
    assert (direct.pylock, direct.require_hashes, direct.reinstall) == (False, True, ())
    assert direct.text == requirement_line(url) + "\n"
    assert (git.pylock, git.require_hashes) == (False, False)
    assert git.text == "unsloth @ git+https://git.example/x.git@abc123\n"
    sdist = dataclasses.replace(
        numpy, artifact=dataclasses.replace(numpy.artifact, kind="sdist", filename='a "b".tar.gz')
    )
    parsed = tomllib.loads(pylock_text([sdist], stored))["packages"][0]
    assert parsed["sdist"]["name"] == 'a "b".tar.gz' and "wheels" not in parsed


def test_a_restore_pins_registry_lines_to_their_stored_files() -> None:
    url = f"{URL}numpy-1.26.4-py3-none-any.whl"
    digest = "ab" * 32
    snap = new_snapshot(
        id=2,
        command="sync",
        freeze="numpy==1.26.4\nsix==1.16.0\n",
        installed=_have(("numpy", "1.26.4"), ("six", "1.16.0")),
        provenance={
            "numpy": Provenance(version="1.26.4", url=url, sha256=digest, index=INDEX)
        },
        now=dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc),
    )
    wanted, complete = restore_files(snap)
    artifact = Artifact(
        filename="numpy-1.26.4-py3-none-any.whl", url=url, kind="wheel", sha256=digest
    )
    assert wanted == [Wanted(artifact=artifact, index=INDEX)]
    assert not complete  # six came from elsewhere: uv needs an index for it
    stored = {digest: Path("/store/ab/numpy-1.26.4-py3-none-any.whl")}
    assert restore_text(snap, stored) == (
        f"--find-links /store/ab\nnumpy==1.26.4 --hash=sha256:{digest}\nsix==1.16.0\n"
    )
    assert restore_text(snap) == "numpy==1.26.4\nsix==1.16.0\n"


def test_changes_list_added_removed_and_moved_packages() -> None:
    before = {"numpy": "1.26.4", "torch": "2.3.0", "six": "1.16"}
    after = {"numpy": "2.1.0", "torch": "2.3.0", "trl": "0.9"}
    assert changes(before, after) == ["numpy 1.26.4→2.1.0", "-six 1.16", "+trl 0.9"]


def test_the_journal_names_the_phase_a_sync_stopped_in() -> None:
    journal = Journal(command="sync", snapshot=4, phases=("a", "b", "c"))
    assert journal.begin("a").finish("a").stopped_in == "b"
    assert journal.begin("a").finish("a").begin("b").stopped_in == "b"
    assert interrupted_message(journal.finish("a").begin("b")) == (
        "a previous 'sync' was interrupted in phase 'b'; snapshot 4 holds the environment "
        "from before it",
        "run 'envspec rollback' to restore it, or 'envspec sync' to finish the sync",
    )
    damaged = Journal(command="sync", snapshot=None, phases=())
    assert interrupted_message(damaged) == (
        "a previous 'sync' was interrupted",
        "see 'envspec history' and roll back with 'envspec rollback ID'",
    )
