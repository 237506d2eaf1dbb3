"""Repair, not only restore: a distribution whose installed metadata is broken (an empty or
partial `.dist-info`, one without RECORD, two copies of one name) fails `check`, shows in the
plan, and is repaired by `sync` and by `rollback`, on real environments. The states are the
ones a killed uv leaves (see `apply.installed`); each is made by hand here, and by real
SIGKILLs in the middle of syncs in test_sync_kills.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from envspec.apply.journal import Journal, write_journal
from support.envproject import EnvProject, audit, events, site_packages
from support.index_server import IndexServer

PHASES = [
    {"name": "one", "requirements": ["alpha<2"]},
    {"name": "two", "requirements": ["beta"]},
]
HINT = "'envspec sync' or 'envspec rollback' repairs it"


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    """A synced environment: alpha 1.0 (phase one) and beta 1.0 (phase two)."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for version in ("1.0", "2.0"):
        index_server.add_wheel("alpha", version, files={"alpha/core.py": b"X = 1\n"})
    index_server.add_wheel("beta", "1.0", requires_dist=["alpha"])
    index_server.add_wheel("stray", "0.1")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec(PHASES)
    project.lock()
    assert project.run("sync") == 0
    return project


def _site(proj: EnvProject) -> Path:
    """The project's site-packages."""
    return site_packages(proj.env)


def _check_lines(proj: EnvProject, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert proj.run("check") == 1
    return [line for line in capsys.readouterr().err.splitlines() if "FAIL" in line]


def _repaired(proj: EnvProject, synced: str) -> None:
    assert proj.freeze() == synced
    assert audit(proj.env) == []
    proj.uv("pip", "check", "--python", str(proj.python))  # asserts a clean exit
    assert proj.run("check") == 0


def _interrupted(proj: EnvProject, snapshot: int, phase: str) -> None:
    """The journal a sync killed in `phase` leaves."""
    journal = Journal(command="sync", snapshot=snapshot, phases=("one", "two"), current=phase)
    write_journal(proj.state, journal)


def test_an_empty_dist_info_beside_the_real_one_fails_check_and_sync_repairs_it(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    synced = proj.freeze()
    (_site(proj) / "alpha-0.9.dist-info").mkdir()  # an uninstall killed half-way
    assert _check_lines(proj, capsys) == [
        "  FAIL installed: alpha is broken: alpha-0.9.dist-info is empty, beside "
        f"alpha-1.0.dist-info; {HINT}"
    ]
    assert proj.run("sync", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Plan (dry run):",
        "  phase one: repair alpha 1.0 (alpha-0.9.dist-info is empty, beside "
        "alpha-1.0.dist-info)",
    ]
    assert proj.run("sync", "--json") == 0
    plan = next(e for e in events(capsys.readouterr().out) if e["event"] == "plan")
    assert plan["phases"][0]["steps"] == [
        {
            "name": "alpha",
            "version": "1.0",
            "action": "repair",
            "installed": "1.0",
            "problem": "alpha-0.9.dist-info is empty, beside alpha-1.0.dist-info",
        }
    ]
    assert plan["repair"] == []
    _repaired(proj, synced)


def _without(*names: str) -> Callable[[Path], None]:
    def damage(info: Path) -> None:
        for name in names:
            (info / name).unlink()

    return damage


def _cut_metadata(info: Path) -> None:
    (info / "METADATA").write_bytes(b"Metadata-Vers")  # a copy cut short by a kill


def _cut_record(info: Path) -> None:
    record = info / "RECORD"
    record.write_bytes(record.read_bytes()[:-20])  # uv's last write of it never came


def _wheel_record(info: Path) -> None:
    """uv killed after it wrote INSTALLER, REQUESTED and uv_cache.json beside the wheel's own
    RECORD, before it replaced that with its own, which lists them."""
    record = info / "RECORD"
    added = tuple(f"{info.name}/{name}," for name in ("INSTALLER", "REQUESTED", "uv_cache.json"))
    lines = record.read_text().splitlines(keepends=True)
    record.write_text("".join(line for line in lines if not line.startswith(added)))


def _wheel_record_requested(info: Path) -> None:
    """As `_wheel_record`, killed earlier: REQUESTED is the first file uv adds."""
    _wheel_record(info)
    for name in ("INSTALLER", "uv_cache.json"):
        (info / name).unlink(missing_ok=True)


def _unfinished(info: Path) -> None:
    """As `_wheel_record_requested`, killed later: uv writes each file it adds to a temporary
    file and renames it, so direct_url.json is still one."""
    _wheel_record_requested(info)
    (info / "direct_url.json").unlink(missing_ok=True)
    (info / ".tmpk3Xq9Z").write_text('{"url": "file:///')


def _no_metadata_cut_record(info: Path) -> None:
    (info / "METADATA").unlink()  # a kill mid-write: no METADATA yet, RECORD cut short
    _cut_record(info)


def _whole(info: Path) -> None:
    """The `.dist-info` untouched: only the package's own files are not all there."""


@pytest.mark.parametrize(
    ("damage", "interrupted", "problem"),
    [
        (_without("RECORD"), False, "beta-1.0.dist-info has no RECORD"),
        (_without("METADATA"), False, "beta-1.0.dist-info has no METADATA"),
        (
            _without("METADATA", "RECORD"), False,
            "beta-1.0.dist-info has no METADATA or RECORD",
        ),
        (_cut_metadata, False, "beta-1.0.dist-info has a METADATA without name or version"),
        (_no_metadata_cut_record, False, "beta-1.0.dist-info has no METADATA"),
        # after an interruption every RECORD is checked against the files too
        (_cut_record, True, "beta-1.0.dist-info has a RECORD cut short"),
        (
            _unfinished, True,
            "beta-1.0.dist-info: an unfinished write (.tmpk3Xq9Z), 1 file its RECORD lists "
            "missing (beta/__init__.py), and 1 file its RECORD does not list (REQUESTED)",
        ),
        (_whole, True, "beta-1.0.dist-info: 1 file its RECORD lists missing (beta/__init__.py)"),
        (
            _wheel_record, True,
            "beta-1.0.dist-info: 1 file its RECORD lists missing (beta/__init__.py), and 3 files "
            "its RECORD does not list (INSTALLER, REQUESTED, …)",
        ),
    ],
)  # fmt: skip
def test_a_partial_dist_info_is_reinstalled(
    proj: EnvProject,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    interrupted: bool,
    problem: str,
) -> None:
    synced = proj.freeze()
    damage(_site(proj) / "beta-1.0.dist-info")
    (_site(proj) / "beta" / "__init__.py").unlink()  # its files may be half gone too
    if interrupted:
        _interrupted(proj, 1, "two")
    assert _check_lines(proj, capsys)[0] == f"  FAIL installed: beta is broken: {problem}; {HINT}"
    assert proj.run("sync") == 0
    assert f"  phase two: repair beta 1.0 ({problem})" in capsys.readouterr().err.splitlines()
    assert (_site(proj) / "beta" / "__init__.py").is_file()
    _repaired(proj, synced)


def test_a_copy_uv_left_with_the_wheels_record_is_repaired_and_then_uninstalls_whole(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file of the wheel is there, so it looks whole, but an uninstall by the wheel's
    RECORD would leave the files uv added, and the folder with them."""
    synced = proj.freeze()
    _wheel_record(_site(proj) / "beta-1.0.dist-info")
    _interrupted(proj, 1, "two")
    problem = "beta-1.0.dist-info: 3 files its RECORD does not list (INSTALLER, REQUESTED, …)"
    assert _check_lines(proj, capsys)[0] == f"  FAIL installed: beta is broken: {problem}; {HINT}"
    assert proj.run("sync") == 0
    assert f"  phase two: repair beta 1.0 ({problem})" in capsys.readouterr().err.splitlines()
    _repaired(proj, synced)
    proj.uv("pip", "uninstall", "--python", str(proj.python), "beta")
    assert not (_site(proj) / "beta-1.0.dist-info").exists()


def test_rollback_leaves_nothing_of_a_copy_uv_left_with_the_wheels_record(
    proj: EnvProject,
) -> None:
    proj.write_spec([{"name": "one", "requirements": ["alpha>=2"]}, PHASES[1]])
    proj.lock()
    assert proj.run("sync") == 0  # snapshot 2: alpha 1.0; now alpha 2.0
    _wheel_record(_site(proj) / "alpha-2.0.dist-info")
    _interrupted(proj, 2, "one")
    assert proj.run("rollback") == 0
    assert "alpha==1.0" in proj.freeze()
    assert not (_site(proj) / "alpha-2.0.dist-info").exists()
    assert audit(proj.env) == []
    proj.uv("pip", "check", "--python", str(proj.python))


@pytest.mark.parametrize("damage", [_wheel_record, _wheel_record_requested, _unfinished])
def test_rollback_removes_all_of_a_copy_uv_left_with_the_wheels_record(
    proj: EnvProject, damage: Callable[[Path], None]
) -> None:
    """A package the snapshot does not hold, as uv left it when killed while adding it."""
    before = proj.freeze()
    proj.write_spec([PHASES[0], {"name": "two", "requirements": ["beta", "stray"]}])
    proj.lock()
    assert proj.run("sync") == 0  # snapshot 2: without stray
    damage(_site(proj) / "stray-0.1.dist-info")
    _interrupted(proj, 2, "two")
    assert proj.run("rollback") == 0
    assert proj.freeze() == before
    assert not any(p.name.startswith("stray") for p in _site(proj).iterdir())
    assert audit(proj.env) == []


def test_two_sound_copies_of_one_name_are_reduced_to_the_locked_one(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    synced = proj.freeze()
    other = EnvProject(proj.env.parent / "other", index_server)
    other.make_env()
    other.pip_install(f"alpha @ {index_server.file_url('alpha-2.0-py3-none-any.whl')}")
    shutil.copytree(_site(other) / "alpha-2.0.dist-info", _site(proj) / "alpha-2.0.dist-info")
    assert _check_lines(proj, capsys)[0] == (
        "  FAIL installed: alpha is broken: installed 2 times (alpha-1.0.dist-info, "
        f"alpha-2.0.dist-info); {HINT}"
    )
    assert proj.run("sync") == 0
    _repaired(proj, synced)


def test_a_broken_distribution_the_lock_does_not_name_is_removed(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    synced = proj.freeze()
    proj.pip_install(f"stray @ {index_server.file_url('stray-0.1-py3-none-any.whl')}")
    (_site(proj) / "stray-0.1.dist-info" / "METADATA").unlink()
    capsys.readouterr()
    assert proj.run("sync", "--json") == 0
    plan = next(e for e in events(capsys.readouterr().out) if e["event"] == "plan")
    assert plan["repair"] == [
        {"name": "stray", "version": "0.1", "problem": "stray-0.1.dist-info has no METADATA"}
    ]
    assert not any(p.name.startswith("stray") for p in _site(proj).iterdir())
    _repaired(proj, synced)


def test_rollback_repairs_even_when_the_freeze_already_matches(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec([{"name": "one", "requirements": ["alpha>=2"]}, PHASES[1]])
    proj.lock()
    assert proj.run("sync") == 0  # snapshot 2: alpha 1.0
    assert proj.run("rollback") == 0  # back to alpha 1.0
    restored = proj.freeze()
    info = _site(proj) / "alpha-1.0.dist-info"
    for name in ("METADATA", "RECORD"):  # uninstalled this far by a kill: uv goes in RECORD
        (info / name).unlink()  # order, so direct_url.json is still there
    (_site(proj) / "alpha" / "core.py").unlink()
    assert proj.freeze() == restored  # the freeze cannot tell
    capsys.readouterr()
    assert proj.run("rollback", "2") == 0
    assert capsys.readouterr().err.splitlines()[-1] == "Restored snapshot 2: nothing to change"
    assert (_site(proj) / "alpha" / "core.py").is_file()
    assert proj.freeze() == restored
    assert audit(proj.env) == []
    proj.uv("pip", "check", "--python", str(proj.python))


def test_rollback_deletes_a_copy_uv_cannot_uninstall(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """No METADATA and a RECORD cut short, as a kill while uv writes can leave them: uv
    refuses such a RECORD ("`RECORD` file is invalid"), so rollback deletes the copy first."""
    proj.write_spec([{"name": "one", "requirements": ["alpha>=2"]}, PHASES[1]])
    proj.lock()
    assert proj.run("sync") == 0  # snapshot 2: alpha 1.0; now alpha 2.0
    _no_metadata_cut_record(_site(proj) / "alpha-2.0.dist-info")
    capsys.readouterr()
    assert proj.run("rollback") == 0
    assert "alpha==1.0" in proj.freeze()
    assert audit(proj.env) == []
    proj.uv("pip", "check", "--python", str(proj.python))


def test_a_snapshot_of_a_broken_environment_restores_its_sound_part(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    synced = proj.freeze()
    (_site(proj) / "alpha-0.9.dist-info").mkdir()
    assert "alpha==0.9" in proj.freeze()  # the empty copy is listed too
    assert proj.run("sync") == 0  # repairs; snapshot 2 is the broken state
    capsys.readouterr()
    assert proj.run("rollback") == 0
    assert capsys.readouterr().err.splitlines()[-1] == "Restored snapshot 2: nothing to change"
    assert proj.freeze() == synced
    assert audit(proj.env) == []
