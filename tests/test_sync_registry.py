"""Normal environments: what `envspec sync` installs from an index looks as a registry install
of the same lock by uv (`name==version` in `pip freeze`, no `direct_url.json`), REQUESTED is
kept on the spec's own requirements only, a URL requirement stays a direct reference, and the
hash of every file is still checked when uv installs it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from envspec.apply.store import write_stamp
from support.envproject import EnvProject, clean_environ
from support.index_server import IndexServer


@pytest.fixture
def proj(tmp_path: Path, index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> EnvProject:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("beta", "1.0", requires_dist=["alpha"], pad_bytes=4096)
    index_server.add_wheel("gamma", "1.0", requires_dist=["alpha"])
    project = EnvProject(tmp_path, index_server)
    project.make_env()
    return project


def _swap_a_byte(wheel: Path) -> None:
    """Rewrite `wheel` with one byte of its stored padding member changed (a valid zip)."""
    with zipfile.ZipFile(wheel) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(wheel, "w") as new:
        for info, data in members:
            padding = info.filename.endswith("_pad.bin")
            new.writestr(info, bytes([data[0] ^ 0xFF]) + data[1:] if padding else data)


def _dist_infos(env: Path) -> dict[str, list[str]]:
    [site] = env.glob("lib/python*/site-packages")
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(site.glob("*.dist-info"))}


def test_index_packages_are_registry_installs_as_uv_makes_them_from_the_lock(
    proj: EnvProject, tmp_path: Path
) -> None:
    proj.write_spec(
        [{"name": "one", "requirements": ["beta"]}, {"name": "two", "requirements": ["gamma"]}]
    )
    proj.lock()
    assert proj.run("sync") == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\ngamma==1.0\n"
    ours = _dist_infos(proj.env)
    reference = tmp_path / "uv-env"
    proj.uv("venv", "-q", "--python", sys.executable, str(reference))
    proj.uv(
        "pip", "install", "--python", str(reference), "--cache-dir", str(tmp_path / "uv-cache"),
        "--preview-features", "pylock", "-r", str(proj.lock_file),
    )  # fmt: skip
    theirs = _dist_infos(reference)
    assert proj.uv("pip", "freeze", "--python", str(reference)) == proj.freeze()
    # the same files, but for REQUESTED (uv marks every package) and uv_cache.json (uv's own
    # note of the local file it unpacked, listed in RECORD)
    assert {k: [f for f in v if f != "uv_cache.json"] for k, v in ours.items()} == {
        "alpha-1.0.dist-info": ["INSTALLER", "METADATA", "RECORD", "WHEEL"],
        "beta-1.0.dist-info": ["INSTALLER", "METADATA", "RECORD", "REQUESTED", "WHEEL"],
        "gamma-1.0.dist-info": ["INSTALLER", "METADATA", "RECORD", "REQUESTED", "WHEEL"],
    }
    assert theirs == {
        name: ["INSTALLER", "METADATA", "RECORD", "REQUESTED", "WHEEL"] for name in ours
    }
    [site] = proj.env.glob("lib/python*/site-packages")
    record = (site / "alpha-1.0.dist-info" / "RECORD").read_text()
    assert "REQUESTED" not in record and "alpha-1.0.dist-info/METADATA," in record
    assert "beta-1.0.dist-info/REQUESTED," in (site / "beta-1.0.dist-info" / "RECORD").read_text()
    dry = subprocess.run(
        [find_uv_bin(), "pip", "install", "--no-config", "--python", str(proj.env), "--dry-run",
         "--preview-features", "pylock", "-r", str(proj.lock_file)],
        capture_output=True, text=True, env=clean_environ(), check=True,
    )  # fmt: skip
    assert dry.stderr.splitlines()[-1] == "Would make no changes"  # uv reads it as its own
    assert proj.run("check") == 0


def test_a_rollback_puts_back_the_requested_markers_of_its_snapshot(proj: EnvProject) -> None:
    """uv's restore marks everything it installs; the snapshot says which were requested."""
    proj.write_spec([{"name": "one", "requirements": ["beta"]}])
    proj.lock()
    assert proj.run("sync") == 0  # beta requested, alpha not
    [site] = proj.env.glob("lib/python*/site-packages")
    marked = {d.name for d in site.glob("*.dist-info") if (d / "REQUESTED").exists()}
    assert marked == {"beta-1.0.dist-info"}
    proj.write_spec([{"name": "one", "requirements": ["gamma"]}])
    proj.lock()
    assert proj.run("sync") == 0  # beta removed, gamma requested
    assert proj.freeze() == "alpha==1.0\ngamma==1.0\n"
    assert proj.run("rollback") == 0
    assert proj.freeze() == "alpha==1.0\nbeta==1.0\n"
    marked = {d.name for d in site.glob("*.dist-info") if (d / "REQUESTED").exists()}
    assert marked == {"beta-1.0.dist-info"}
    record = (site / "alpha-1.0.dist-info" / "RECORD").read_text()
    assert "REQUESTED" not in record
    assert "beta-1.0.dist-info/REQUESTED," in (site / "beta-1.0.dist-info" / "RECORD").read_text()


def test_an_index_package_installed_from_its_url_becomes_a_registry_install(
    proj: EnvProject, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.pip_install(f"alpha @ {index_server.file_url('alpha-1.0-py3-none-any.whl')}")
    proj.write_spec([{"name": "one", "requirements": ["alpha"]}])
    proj.lock()
    capsys.readouterr()
    assert proj.run("sync") == 0
    assert "  phase one: reinstall alpha 1.0 → 1.0" in capsys.readouterr().err.splitlines()
    assert proj.freeze() == "alpha==1.0\n"
    assert not list(proj.env.glob("lib/python*/site-packages/*.dist-info/direct_url.json"))
    assert proj.run("sync") == 0
    assert "Nothing to do" in capsys.readouterr().err


def test_a_url_requirement_stays_a_direct_reference(
    proj: EnvProject, index_server: IndexServer
) -> None:
    url = index_server.file_url("gamma-1.0-py3-none-any.whl")
    proj.write_spec([{"name": "one", "requirements": ["alpha", f"gamma @ {url}"]}])
    proj.lock()
    assert proj.run("sync") == 0
    assert proj.freeze() == f"alpha==1.0\ngamma @ {url}\n"
    [site] = proj.env.glob("lib/python*/site-packages")
    direct = json.loads((site / "gamma-1.0.dist-info" / "direct_url.json").read_text())
    assert direct["url"] == url
    assert not (site / "alpha-1.0.dist-info" / "direct_url.json").exists()
    assert (site / "gamma-1.0.dist-info" / "REQUESTED").exists()


def test_uv_still_checks_each_stored_file_against_the_lock(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.write_spec([{"name": "one", "requirements": ["beta"]}])
    proj.lock()
    assert proj.run("sync") == 0
    [stored] = (proj.cache / "store" / "sha256").rglob("beta-1.0-py3-none-any.whl")
    size = stored.stat().st_size
    _swap_a_byte(stored)  # a whole wheel of the locked size, but not the locked one
    assert stored.stat().st_size == size
    write_stamp(stored)  # and a store that vouches for it as it is now: only uv can tell
    other = tmp_path / "env-2"
    proj.uv("venv", "-q", "--python", sys.executable, str(other))
    from envspec.cli import main

    capsys.readouterr()
    args = ["--project", str(proj.project), "--cache-dir", str(proj.cache), "--python", str(other)]
    assert main(["sync", *args]) == 1
    err = capsys.readouterr().err
    assert "Hash mismatch for `beta==1.0`" in err
    assert f"error: {other}: required phase 'one' failed; the environment was restored to " in err
    assert proj.uv("pip", "freeze", "--python", str(other)) == ""
