"""`envspec rollback` and `envspec history` with real environments: exact restores, undoing a
rollback, snapshots by id, and every bad input with its message and nothing changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.envproject import EnvProject, events
from support.index_server import IndexServer


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    """An environment holding alpha 1.0 and a stray package, then synced to a lock that
    upgrades alpha and adds beta: snapshot 1 is the state from before."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for version in ("1.0", "2.0"):
        index_server.add_wheel("alpha", version)
    index_server.add_wheel("beta", "1.0", requires_dist=["alpha"])
    index_server.add_wheel("stray", "0.1")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.pip_install(
        f"alpha @ {index_server.file_url('alpha-1.0-py3-none-any.whl')}",
        f"stray @ {index_server.file_url('stray-0.1-py3-none-any.whl')}",
    )
    project.write_spec(
        [
            {"name": "base", "requirements": ["alpha>=2"]},
            {"name": "app", "requirements": ["beta"]},
        ]
    )
    project.lock()
    return project


def test_rollback_after_a_good_sync_restores_the_exact_freeze(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    before = proj.freeze()
    assert proj.run("sync", "--exact") == 0
    synced = proj.freeze()
    assert synced != before and "stray" not in synced
    capsys.readouterr()
    assert proj.run("rollback") == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "Snapshot 2 taken (2 packages)",
        "Restored snapshot 1: alpha 2.0→1.0, -beta 1.0, +stray 0.1",
    ]
    assert proj.freeze() == before


def test_rollback_puts_back_a_source_that_changed_at_the_same_version(
    proj: EnvProject, index_server: IndexServer
) -> None:
    """Snapshot 2 holds alpha 2.0 from the index; by then alpha 2.0 is installed from a URL.
    Rolling back to it puts the index's build back (it kept the URL's: the version was the
    same)."""
    assert proj.run("sync") == 0
    synced = proj.freeze()
    assert "alpha==2.0" in synced.splitlines()
    assert proj.run("rollback") == 0  # snapshot 2 taken: the synced state
    url = index_server.file_url("alpha-2.0-py3-none-any.whl")
    proj.pip_install("--reinstall", f"alpha @ {url}")
    assert f"alpha @ {url}" in proj.freeze().splitlines()
    assert proj.run("rollback", "2") == 0
    assert proj.freeze() == synced


def test_a_rollback_can_itself_be_rolled_back(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    before = proj.freeze()
    assert proj.run("sync") == 0
    synced = proj.freeze()
    assert proj.run("rollback") == 0
    assert proj.freeze() == before
    assert proj.run("rollback") == 0
    assert proj.freeze() == synced
    capsys.readouterr()
    assert proj.run("rollback", "1", "--json") == 0
    got = events(capsys.readouterr().out)
    assert [e["event"] for e in got] == ["snapshot", "rollback", "done"]
    assert got[1] == {
        "event": "rollback", "snapshot": 1, "ok": True,
        "changes": ["alpha 2.0→1.0", "-beta 1.0", "+stray 0.1"],  # the exact sync removed stray
    }  # fmt: skip
    assert proj.freeze() == before
    assert proj.snapshot_ids() == [1, 2, 3, 4]


def test_rollback_to_the_state_already_there_changes_nothing(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    assert proj.run("rollback") == 0
    capsys.readouterr()
    assert proj.run("rollback", "1") == 0
    assert capsys.readouterr().err == "Restored snapshot 1: nothing to change\n"
    assert proj.snapshot_ids() == [1, 2]


def test_history_lists_id_time_command_count_and_what_changed(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    assert proj.run("rollback") == 0
    capsys.readouterr()
    assert proj.run("history", "--json") == 0
    got = events(capsys.readouterr().out)
    assert [(e["id"], e["command"], e["packages"], e["changes"]) for e in got] == [
        (1, "sync", 2, ["alpha 1.0→2.0", "+beta 1.0", "-stray 0.1"]),
        (2, "rollback 1", 2, ["alpha 2.0→1.0", "-beta 1.0", "+stray 0.1"]),
    ]
    assert all(e["created"].endswith("Z") for e in got)
    assert proj.run("history") == 0
    lines = capsys.readouterr().out.splitlines()  # the listing is the result: stdout
    assert [line.split()[0] for line in lines] == ["1", "2"]
    assert lines[0].endswith(
        "sync                  2 packages  then: alpha 1.0→2.0, +beta 1.0, -stray 0.1"
    )


def test_an_unknown_snapshot_id_is_refused_and_nothing_changes(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    synced = proj.freeze()
    capsys.readouterr()
    assert proj.run("rollback", "7") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {proj.state / 'snapshots'}: no snapshot '7'",
        "hint: snapshots: 1 (see 'envspec history')",
    ]
    assert proj.freeze() == synced
    assert proj.snapshot_ids() == [1]


def test_a_corrupt_snapshot_is_refused_and_nothing_changes(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    synced = proj.freeze()
    path = proj.state / "snapshots" / "1.json"
    path.write_text('{"format": 1, "id": 1, "freeze": ')
    capsys.readouterr()
    assert proj.run("rollback") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: snapshot 1 is damaged and cannot be read",
        "hint: pick another snapshot with 'envspec history'",
    ]
    assert proj.freeze() == synced
    assert proj.snapshot_ids() == [1]
    assert proj.run("history") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"   1  damaged: {path}: snapshot 1 is damaged and cannot be read"
    ]


@pytest.mark.parametrize("requested", ['"beta"', "[1]"])
def test_a_snapshot_with_a_bad_requested_list_is_damaged(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], requested: str
) -> None:
    assert proj.run("sync") == 0
    path = proj.state / "snapshots" / "1.json"
    text = path.read_text()
    assert '"requested": [' in text
    path.write_text(text.replace('"requested": [', f'"requested": {requested}, "x": [', 1))
    capsys.readouterr()
    assert proj.run("rollback") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: snapshot 1 is damaged and cannot be read",
        "hint: pick another snapshot with 'envspec history'",
    ]


@pytest.mark.parametrize("created", ["yesterday", "2026-13-45T00:00:00Z", "1"])
def test_a_snapshot_with_a_bad_created_time_is_damaged(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], created: str
) -> None:
    """history showed whatever it said as the snapshot's time."""
    assert proj.run("sync") == 0
    path = proj.state / "snapshots" / "1.json"
    data = json.loads(path.read_text())
    data["created"] = created if created != "1" else 1
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert proj.run("history") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"   1  damaged: {path}: snapshot 1 is damaged and cannot be read"
    )


def test_an_unreadable_variant_record_fails_the_snapshot_naming_it(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    synced = proj.freeze()
    (proj.state / "variant.json").mkdir()  # not a file: it cannot be read
    capsys.readouterr()
    assert proj.run("rollback") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {proj.env}: cannot read {proj.state / 'variant.json'}: Is a directory"
    ]
    assert proj.freeze() == synced
    assert proj.snapshot_ids() == [1]


def test_rollback_without_any_snapshot_says_so(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    before = proj.freeze()
    assert proj.run("rollback") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {proj.state / 'snapshots'}: no snapshot to roll back to",
        "hint: envspec takes one before each change it makes; none was made here yet",
    ]
    assert proj.freeze() == before


def test_rollback_fails_before_changing_anything_when_an_artifact_cannot_be_had(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    synced = proj.freeze()
    shutil.rmtree(proj.cache / "uv")  # nothing cached: alpha 1.0 must come from the index
    index_server.fail("alpha-1.0-py3-none-any.whl", "404", times=100)
    capsys.readouterr()
    assert proj.run("rollback") == 1
    err = capsys.readouterr().err.splitlines()
    url = index_server.file_url("alpha-1.0-py3-none-any.whl")
    assert err[-2:] == [
        f"error: {proj.env}: cannot restore snapshot 1: Failed to fetch: {url}",
        "hint: nothing was changed; uv's output is above",
    ]
    # the error once (a "Rollback to snapshot 1 failed: …" line said it before), uv's above
    assert sum("cannot restore snapshot 1" in line for line in err) == 1
    assert f"    error: Failed to fetch: {url}" in err
    assert proj.freeze() == synced
    assert proj.snapshot_ids() == [1]


def test_the_newest_twenty_snapshots_are_kept(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    assert proj.run("sync") == 0
    for _ in range(11):  # each pair of rollbacks adds two snapshots
        assert proj.run("rollback") == 0
        assert proj.run("rollback") == 0
    assert proj.snapshot_ids() == list(range(4, 24))
