"""Mirrors at sync: a locked file comes from its index's mirror (`ENVSPEC_INDEX_<NAME>_MIRROR`
or the user config's `[mirrors]`) with the same credentials as the index, and no message,
event or log line shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.envproject import EnvProject, events
from support.index_server import IndexServer

ALPHA = "alpha-1.0-py3-none-any.whl"


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("ENVSPEC_CONFIG", str(tmp_path / "no-config.toml"))
    index_server.add_wheel("alpha", "1.0")
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    project.write_spec([{"name": "one", "requirements": ["alpha"]}])
    project.lock()
    index_server.reset_counters()
    return project


@pytest.fixture
def mirror(tmp_path: Path, index_server: IndexServer) -> IndexServer:
    server = IndexServer(tmp_path / "mirror").start()
    server.add(index_server.entry(ALPHA).path)
    server.auth = ("fleet", "s3cret")
    yield server  # type: ignore[misc]
    server.stop()


def _synced_through(
    proj: EnvProject, mirror: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert proj.run("sync", "--json", "-v") == 0
    assert "s3cret" not in "".join(capsys.readouterr())
    assert mirror.paths_requested() == [f"/files/{ALPHA}"]
    assert all(h.get("Authorization") for _, _, h in mirror.requests)
    assert proj.freeze() == "alpha==1.0\n"


def test_the_index_credentials_from_the_environment_apply_to_its_mirror(
    proj: EnvProject,
    index_server: IndexServer,
    mirror: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_MIRROR", mirror.url)
    monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_USERNAME", "fleet")
    monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_PASSWORD", "s3cret")
    _synced_through(proj, mirror, capsys)
    assert index_server.requests == []


def test_a_mirror_url_with_credentials_in_the_config_file(
    proj: EnvProject,
    mirror: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    with_token = mirror.url.replace("http://", "http://fleet:${MIRROR_TOKEN}@")
    config.write_text(f'[mirrors]\nlocal = "{with_token}"\n')
    monkeypatch.setenv("ENVSPEC_CONFIG", str(config))
    monkeypatch.setenv("MIRROR_TOKEN", "s3cret")
    _synced_through(proj, mirror, capsys)


def test_a_refused_password_is_named_without_it_and_nothing_changes(
    proj: EnvProject,
    index_server: IndexServer,
    mirror: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ENVSPEC_INDEX_LOCAL_MIRROR", mirror.url_with_auth("fleet", "wrong-pw"))
    capsys.readouterr()
    assert proj.run("sync", "--json", "-v") == 1
    out, err = capsys.readouterr()
    assert "wrong-pw" not in out + err
    assert events(out)[-1] == {
        "event": "error",
        "message": f"cannot download {ALPHA}: GET {mirror.file_url(ALPHA)} failed: HTTP 401",
        "hint": "nothing was changed; run the command again to retry (a partial download "
        "resumes)",
        "exit_code": 1,
    }
    assert index_server.requests == []  # a mirror's refusal is not a reason to go around it
    assert proj.freeze() == ""
