"""The repository's own envspec.toml (the seed stack) and its committed locks/: fresh without
network, valid PEP 751, consistent under the compatibility rules, and honest — every cu121
hash is one the recorded data holds, no size is made up, and the unsloth chosen is backed by
what is recorded about it. Windows and Linux are locked per accelerator variant (cu121, and
cpu on Windows); macOS has no variant and keeps its plain lock."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.pylock import Pylock
from packaging.requirements import Requirement
from packaging.version import Version

from envspec.cli import main
from envspec.compat.evaluate import evaluate
from envspec.lockfile import dump_lock, load_lock
from envspec.model import pylock_name
from envspec.spec import load_spec
from envspec.targets import make_target

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO.parent / "shared" / "fixtures" / "pytorch-cu121"
TARGETS = ("linux-x86_64.cu121", "macos-arm64", "windows-x86_64.cpu", "windows-x86_64.cu121")
CU121 = "https://download.pytorch.org/whl/cu121/"
sys.path.insert(0, str(REPO / "tools"))

import recorded_cu121  # noqa: E402
import unsloth_metadata  # noqa: E402


def lock_doc(target: str) -> dict[str, Any]:
    return tomllib.loads((REPO / "locks" / pylock_name(target)).read_text("utf-8"))


def wheels(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for p in doc["packages"] for w in p.get("wheels", [])}


def recorded_hashes() -> dict[str, str | None]:
    data = json.loads((RECORDED / "pytorch_index_cu121_hashes.json").read_text("utf-8"))
    return {f: e["sha256"] for group, es in data.items() if group[0] != "_" for f, e in es.items()}


def test_the_committed_locks_are_fresh_without_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {t: (REPO / "locks" / pylock_name(t)).read_bytes() for t in TARGETS}
    cache = str(tmp_path / "cache")  # the checked-lock memo's, not the user's
    assert main(["lock", "--check", "--offline", "--project", str(REPO), "--cache-dir", cache]) == 0
    assert capsys.readouterr().err == "All 4 locks are up to date.\n"
    assert {t: (REPO / "locks" / pylock_name(t)).read_bytes() for t in TARGETS} == before


@pytest.mark.parametrize("target", TARGETS)
def test_the_committed_locks_are_pep751(target: str) -> None:
    Pylock.from_dict(lock_doc(target))


def test_cu121_entries_carry_recorded_hashes_and_no_invented_size() -> None:
    recorded = recorded_hashes()
    found = 0
    for target in TARGETS:
        for name, wheel in wheels(lock_doc(target)).items():
            if wheel["url"].startswith(CU121):
                found += 1
                assert wheel["hashes"]["sha256"] == recorded[name], name
                assert "size" not in wheel, name  # the file's size is recorded nowhere
    assert found == 4  # Linux torch, torchvision, torchaudio; Windows torch


def test_pypi_entries_of_the_torch_family_match_the_recorded_pypi_data() -> None:
    selected = json.loads((RECORDED / "pypi_wheels_selected.json").read_text("utf-8"))
    pypi = {f["filename"]: (f["sha256"], f["size"]) for files in selected.values() for f in files}
    checked = 0
    for target in TARGETS:
        for name, wheel in wheels(lock_doc(target)).items():
            if name in pypi:
                checked += 1
                assert (wheel["hashes"]["sha256"], wheel["size"]) == pypi[name], name
    assert checked >= 4  # xformers on Linux and Windows, triton, triton-windows
    # xformers comes from PyPI: its Windows wheel is byte for byte the cu121 one
    windows = wheels(lock_doc("windows-x86_64.cu121"))
    xformers = windows["xformers-0.0.27.post2-cp311-cp311-win_amd64.whl"]
    assert xformers["hashes"]["sha256"] == recorded_hashes()[
        "xformers-0.0.27.post2-cp311-cp311-win_amd64.whl"
    ]


def test_windows_lacks_exactly_the_files_whose_hashes_nobody_recorded() -> None:
    names = {t: {p["name"]: p["version"] for p in lock_doc(t)["packages"]} for t in TARGETS}
    assert names["linux-x86_64.cu121"]["torchvision"] == "0.19.0+cu121"
    assert names["linux-x86_64.cu121"]["torchaudio"] == "2.4.0+cu121"
    assert names["windows-x86_64.cu121"]["torch"] == "2.4.0+cu121"
    assert "torchvision" not in names["windows-x86_64.cu121"]
    assert "torchaudio" not in names["windows-x86_64.cu121"]
    recorded = recorded_hashes()
    for missing in (
        "torchvision-0.19.0+cu121-cp311-cp311-win_amd64.whl",
        "torchaudio-2.4.0+cu121-cp311-cp311-win_amd64.whl",
    ):  # when this data appears, complete the Windows lock (README.md says how)
        assert recorded.get(missing) is None


def test_the_committed_locks_pass_the_compatibility_rules() -> None:
    spec = load_spec(REPO / "envspec.toml", {})
    recorded = {}
    for label in TARGETS:
        lock = load_lock(REPO / "locks" / pylock_name(label))
        target = lock.target
        environment = make_target(target, spec.python, spec.settings_for(target)).environment()
        versions = {p.name: p.version for p in lock.packages}
        assert evaluate(spec.rules, versions, environment, target).findings == (), target
        recorded[label] = [r.id for r in lock.rules]
        digests = {r.id: r.digest() for r in spec.rules.rules}
        assert all(r.sha256 == digests[r.id] for r in lock.rules), target
    # torch 2.4.0 on Windows is what the rules are about; nothing else in these locks is
    windows = ["torch-numpy-windows", "torch-triton-windows", "triton-windows-torch"]
    assert recorded == {
        "linux-x86_64.cu121": [],
        "macos-arm64": [],
        "windows-x86_64.cpu": windows,
        "windows-x86_64.cu121": windows,
    }
    versions = {t: {p["name"]: p["version"] for p in lock_doc(t)["packages"]} for t in TARGETS}
    for label in ("windows-x86_64.cu121", "windows-x86_64.cpu"):
        assert versions[label]["triton-windows"] == "3.1.0.post17"  # by the rule
        assert versions[label]["numpy"] == "1.26.4"
    assert not any("torchao" in v for v in versions.values())  # none fits torch 2.4


def test_unsloth_is_a_pypi_release_that_needs_no_torchao() -> None:
    linux = lock_doc("linux-x86_64.cu121")["packages"]
    [unsloth] = [p for p in linux if p["name"] == "unsloth"]
    assert "vcs" not in unsloth and unsloth["index"] == "https://pypi.org/simple/"
    [zoo] = [p for p in linux if p["name"] == "unsloth-zoo"]
    assert Version(zoo["version"]) < Version("2025.8.6")  # the first to require torchao
    assert all("unsloth" not in {p["name"] for p in lock_doc(t)["packages"]}
               for t in TARGETS if not t.startswith("linux"))  # fmt: skip


def test_each_variant_lock_records_its_variant_and_needs_and_macos_has_none() -> None:
    envspec = {t: lock_doc(t)["tool"]["envspec"] for t in TARGETS}
    assert {t: (e.get("variant"), e.get("needs")) for t, e in envspec.items()} == {
        "linux-x86_64.cu121": ("cu121", {"cuda-driver": ">=525.60.13"}),
        "macos-arm64": (None, None),  # no variant applies: the plain lock, as before variants
        "windows-x86_64.cpu": ("cpu", None),  # a CPU build needs nothing of the machine
        "windows-x86_64.cu121": ("cu121", {"cuda-driver": ">=528.33"}),
    }
    assert sorted(p.name for p in (REPO / "locks").glob("*.toml")) == [
        pylock_name(t) for t in TARGETS
    ]


def test_the_windows_cpu_lock_is_complete_from_pypi() -> None:
    """PyPI's Windows torch, torchvision and torchaudio are the CPU builds, their hashes served
    by PyPI: the cpu variant has all three (the cu121 one lacks two) and nothing from cu121."""
    packages = {p["name"]: p for p in lock_doc("windows-x86_64.cpu")["packages"]}
    for name, version in (("torch", "2.4.0"), ("torchvision", "0.19.0"), ("torchaudio", "2.4.0")):
        assert packages[name]["version"] == version  # no +cu121: the CPU build
        assert packages[name]["index"] == "https://pypi.org/simple/"
        assert len(packages[name]["wheels"][0]["hashes"]["sha256"]) == 64
    files = wheels(lock_doc("windows-x86_64.cpu")).values()
    assert not any(w["url"].startswith(CU121) for w in files)
    assert not any(name.startswith("nvidia-") for name in packages)


def test_a_spec_without_variants_locks_as_before_byte_for_byte(tmp_path: Path) -> None:
    """The flagship as it was before variants (the cu121 routing on phase torch, no variants)
    is fresh against the cu121 locks as they were written then — the same bytes less the two
    variant keys, under the plain names — and relocking it writes nothing."""
    text = (REPO / "envspec.toml").read_text("utf-8")
    head, _, rest = text.partition("[variants.cu121]")
    _, _, rest = rest.partition("[[phases]]")
    routing = 'index = { windows-x86_64 = "pytorch-cu121", linux-x86_64 = "pytorch-cu121" }\n'
    plain = head.replace('variants = ["cu121", "cpu"]\n', "") + "[[phases]]" + rest.replace(
        'name = "torch"\n', 'name = "torch"\n' + routing
    )
    (tmp_path / "envspec.toml").write_text(plain, "utf-8")
    (tmp_path / "locks").mkdir()
    before = {}
    for label, target in (("linux-x86_64.cu121", "linux-x86_64"),
                          ("windows-x86_64.cu121", "windows-x86_64"),
                          ("macos-arm64", "macos-arm64")):  # fmt: skip
        lines = (REPO / "locks" / pylock_name(label)).read_text("utf-8").splitlines(True)
        old = "".join(line for line in lines if not line.startswith(("variant = ", "needs = ")))
        before[target] = old.encode()
        (tmp_path / "locks" / pylock_name(target)).write_bytes(before[target])
    assert main(["lock", "--offline", "--project", str(tmp_path)]) == 0
    after = {p.name: p.read_bytes() for p in (tmp_path / "locks").iterdir()}
    assert after == {pylock_name(t): data for t, data in before.items()}
    for target, data in before.items():
        lock = load_lock(tmp_path / "locks" / pylock_name(target))
        assert lock.variant is None and dump_lock(lock).encode() == data


def test_the_recorded_pyproject_of_2025_3_19_is_not_that_releases_metadata() -> None:
    """Why the flagship does not stand in release 2025.3.19 by its recorded pyproject.toml:
    the release's wheel (its METADATA recorded from PyPI) requires torch, xformers, torchvision
    and more unconditionally, which that file does not say."""
    pyproject = RECORDED / "unsloth" / "pyproject.2dc3930a53.toml"
    extras = list(tomllib.loads(pyproject.read_text("utf-8"))["project"]["optional-dependencies"])
    table = unsloth_metadata.derive(pyproject, "2025.3.19", extras)
    metadata = RECORDED / "metadata" / "unsloth-2025.3.19-py3-none-any.whl.metadata"
    only_release, _only_pyproject = unsloth_metadata.compare(table, metadata.read_text("utf-8"))
    unconditional = [r for r in only_release if ";" not in r]
    assert {Requirement(r).name for r in unconditional} >= {
        "unsloth_zoo", "torch", "xformers", "torchvision", "diffusers", "trl", "peft",
    }  # fmt: skip


def test_the_recorded_cu121_mirror_serves_pages_and_metadata_but_no_files() -> None:
    content = recorded_cu121.Recorded(RECORDED)
    status, page = content.answer("/whl/cu121/torch/")
    assert status == 200
    href = "/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl#sha256=bada3148"
    assert href in page.decode()
    status, metadata = content.answer(
        "/whl/cu121/torch-2.4.0+cu121-cp311-cp311-linux_x86_64.whl.metadata"
    )
    assert status == 200 and b"\nVersion: 2.4.0+cu121\n" in metadata
    assert content.answer("/whl/cu121/torch-2.4.0+cu121-cp311-cp311-linux_x86_64.whl")[0] == 404
    assert "torchvision-0.19.0%2Bcu121-cp311-cp311-win_amd64" not in content.answer(
        "/whl/cu121/torchvision/"
    )[1].decode()
