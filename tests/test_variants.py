"""Accelerator variants (issue 15): the spec's `[variants.<name>]` tables, one lock per target
and variant, detection of the machine through the override variables and fake `/sys` and
`/proc` trees (never the real host), and sync choosing, and check re-judging, the variant.

Each variant has its own loopback index: `cu` serves the GPU build of `torch`, `pypi` the CPU
build and everything else."""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from packaging.pylock import is_valid_pylock_path
from packaging.version import Version

from envspec.apply.machine import detect_machine
from envspec.cli import main
from envspec.compat.cuda import judge
from envspec.errors import SpecError, UsageError
from envspec.model import Machine, Needs, pylock_name
from envspec.spec import parse_spec
from support.envproject import PYTHON, TARGET, EnvProject, events
from support.index_server import IndexServer

OTHER = "windows-x86_64" if TARGET != "windows-x86_64" else "linux-x86_64"
DRIVER = "ENVSPEC_CUDA_DRIVER_VERSION"
CAPABILITY = "ENVSPEC_CUDA_COMPUTE_CAPABILITY"


# -- the spec ------------------------------------------------------------------------------

BASE = """
[environment]
name = "t"
python = "3.11"
targets = ["linux-x86_64", "windows-x86_64", "macos-arm64"]
variants = ["cu121", "cpu"]

[indexes]
pypi = "https://pypi.org/simple"
cu = { url = "https://download.pytorch.org/whl/cu121", explicit = true }

[[phases]]
name = "torch"
requirements = ["torch"]
"""
CU121 = """
[variants.cu121]
targets = ["windows-x86_64", "linux-x86_64"]
cuda-driver = { linux = ">=525.60.13", windows = ">=528.33" }
compute-capability = ">=5.0"
index = { torch = "cu" }
constraints = ["torch<3"]
"""
CPU = """
[variants.cpu]
"""


def test_variants_are_read_in_order_of_preference_and_applied_per_variant() -> None:
    spec = parse_spec(BASE + CPU + CU121, environ={})
    assert [v.name for v in spec.variants] == ["cu121", "cpu"]
    cu121, cpu = spec.variants
    assert cu121.targets == ("linux-x86_64", "windows-x86_64")  # spec order
    assert cpu.targets == spec.targets  # no `targets`: all of them
    assert cu121.needs_for("windows-x86_64") == Needs(
        cuda_driver=cu121.needs_for("windows-x86_64").cuda_driver,
        compute_capability=cu121.compute_capability,
    )
    assert str(cu121.needs_for("linux-x86_64").cuda_driver) == ">=525.60.13"
    assert str(cu121.needs_for("windows-x86_64").cuda_driver) == ">=528.33"
    assert not cpu.needs_for("linux-x86_64").gpu
    assert [v.name for v in spec.variants_for("macos-arm64")] == ["cpu"]
    gpu = spec.for_variant(cu121)
    assert gpu.phases[0].routes == (("linux-x86_64", "cu"), ("windows-x86_64", "cu"))
    assert [str(c) for c in gpu.resolution.constraints] == ["torch<3"]
    assert gpu.variants == () and spec.for_variant(cpu).phases == spec.phases


BAD_VARIANTS = [
    (BASE + CU121, "envspec.toml: environment.variants[1]: unknown variant 'cpu'",
     "add a [variants.cpu] table"),
    (BASE.replace('["cu121", "cpu"]', '["cu12", "cpu"]') + CU121 + CPU,
     "envspec.toml: environment.variants[0]: unknown variant 'cu12'", "did you mean 'cu121'?"),
    (BASE.replace('["cu121", "cpu"]', '["cpu", "cpu"]') + CPU,
     "envspec.toml: environment.variants[1]: duplicate variant 'cpu'", ""),
    (BASE.replace('["cu121", "cpu"]', '["cu12.1", "cpu"]') + CPU,
     "envspec.toml: environment.variants[0]: invalid variant name 'cu12.1'",
     "use letters, digits, '-' and '_' (no '.': PEP 751 allows none in a lock's name)"),
    (BASE.replace('["cu121", "cpu"]', '["cpu"]') + CU121 + CPU,
     "envspec.toml: variants.cu121: variant 'cu121' is not in environment.variants",
     "add it to [environment] variants, in its place in the order of preference"),
    *[(BASE + CU121.replace(old, new) + CPU, f"envspec.toml: variants.cu121{where}", hint)
      for old, new, where, hint in [
        ("constraints", "constraint", ": unknown key 'constraint'",
         "did you mean 'constraints'?"),
        ("{ torch =", "{ torhc =", ".index.torhc: unknown phase 'torhc'", "did you mean 'torch'?"),
        ('"cu" }', '"cuda" }', ".index.torch: unknown index 'cuda'", "did you mean 'cu'?"),
        ('">=525.60.13"', '">=525..60"', ".cuda-driver.linux: invalid cuda-driver '>=525..60'",
         'expected a version specifier, e.g. ">=525.60.13"'),
        (', windows = ">=528.33"', "",
         ".cuda-driver: no windows driver given for target windows-x86_64",
         'add windows = ">=..." (the windows driver this build needs)'),
        ("{ linux =", "{ linu =", ".cuda-driver: unknown key 'linu'", "did you mean 'linux'?"),
        ('">=5.0"', '"sm_50"', ".compute-capability: invalid compute-capability 'sm_50'",
         'expected a version specifier, e.g. ">=8.0"'),
        ('"linux-x86_64"]', '"linux-x86"]', ".targets[1]: unknown target 'linux-x86'",
         "did you mean 'linux-x86_64'?"),
        ("torch<3", "torch[x]<3",
         ".constraints[0]: constraint 'torch[x]<3' may not have extras",
         "constraints only bound versions; ask for extras in a phase's requirements"),
    ]],
]  # fmt: skip


@pytest.mark.parametrize(("text", "message", "hint"), BAD_VARIANTS)
def test_a_bad_variant_is_refused_naming_its_place(text: str, message: str, hint: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, environ={})
    assert (str(caught.value), caught.value.hint, caught.value.exit_code) == (message, hint, 2)


# -- the machine ---------------------------------------------------------------------------

PROC = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  Fri Oct 22 23:01:21 UTC 2021\n"
    "GCC version:  gcc version 9.3.0 (Ubuntu 9.3.0-17ubuntu1~20.04)\n"
)


def _host(tmp_path: Path, *, sys_version: str = "", proc: str = "", smi: str = "") -> Path:
    """A fake root with `sys` and `proc` trees, and a `bin` holding a fake nvidia-smi."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    if sys_version:
        (root / "sys/module/nvidia").mkdir(parents=True)
        (root / "sys/module/nvidia/version").write_text(sys_version)
    if proc:
        (root / "proc/driver/nvidia").mkdir(parents=True)
        (root / "proc/driver/nvidia/version").write_text(proc)
    if smi:
        script = root / "bin" / "nvidia-smi"
        script.write_text(f"#!/bin/sh\nprintf '%s' '{smi}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return root


def _detect(root: Path, **variables: str) -> Machine:
    return detect_machine({"PATH": str(root / "bin"), **variables}, root=root)


def test_the_override_variables_win_and_none_means_no_gpu(tmp_path: Path) -> None:
    root = _host(tmp_path, sys_version="550.54.14\n", smi="550.54.14, 8.6\n")
    assert _detect(root, **{DRIVER: "none"}) == Machine(source=DRIVER)
    assert _detect(root, **{DRIVER: "535.104.05", CAPABILITY: "7.5"}) == Machine(
        driver=Version("535.104.05"), compute_capability=Version("7.5"), source=DRIVER,
        driver_text="535.104.05",
    )  # fmt: skip


def test_the_driver_comes_from_sys_then_proc_then_nvidia_smi(tmp_path: Path) -> None:
    both = _host(tmp_path / "a", sys_version="550.54.14\n", proc=PROC, smi="551.0, 8.6\n")
    assert _detect(both) == Machine(
        driver=Version("550.54.14"), compute_capability=Version("8.6"),
        source="/sys/module/nvidia/version", driver_text="550.54.14",
    )  # fmt: skip
    proc = _host(tmp_path / "b", proc=PROC)
    assert _detect(proc) == Machine(
        driver=Version("470.82.01"), source="/proc/driver/nvidia/version", driver_text="470.82.01"
    )
    assert _detect(proc, **{CAPABILITY: "6.1"}).compute_capability == Version("6.1")
    smi = _host(tmp_path / "c", smi="560.94, 8.9\n560.94, 7.5\n")  # GPU 0 counts
    assert _detect(smi) == Machine(
        driver=Version("560.94"), compute_capability=Version("8.9"), source="nvidia-smi",
        driver_text="560.94",
    )  # fmt: skip
    assert _detect(_host(tmp_path / "d")) == Machine(source="none")  # CPU only


def test_a_failing_nvidia_smi_counts_as_no_gpu(tmp_path: Path) -> None:
    root = _host(tmp_path)
    script = root / "bin" / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    assert _detect(root) == Machine(source="none")


def test_a_bad_override_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        _detect(_host(tmp_path), **{DRIVER: "five-fifty"})
    assert str(caught.value) == "ENVSPEC_CUDA_DRIVER_VERSION: invalid value 'five-fifty'"
    assert caught.value.hint == "expected a version such as 550.54.14, or none"


NEEDS = Needs(
    cuda_driver=parse_spec(BASE + CU121 + CPU, environ={}).variants[0].needs_for(
        "linux-x86_64"
    ).cuda_driver,
    compute_capability=parse_spec(BASE + CU121 + CPU, environ={}).variants[0].compute_capability,
)


@pytest.mark.parametrize(
    ("machine", "ok", "reason"),
    [
        (Machine(driver=Version("550.54.14"), compute_capability=Version("8.6")), True,
         "driver 550.54.14 supports CUDA ≤ 12.4, GPU sm_86"),
        (Machine(), False, "no NVIDIA driver found; cu121 needs a driver >=525.60.13"),
        (Machine(driver=Version("470.82.01"), compute_capability=Version("8.6"),
                 driver_text="470.82.01"), False,
         "driver 470.82.01 supports CUDA ≤ 11.4, GPU sm_86; "
         "cu121 needs a driver >=525.60.13"),
        (Machine(driver=Version("530.30.02"), compute_capability=Version("3.7"),
                 driver_text="530.30.02"), False,
         "driver 530.30.02 supports CUDA ≤ 12.1, GPU sm_37; "
         "cu121 needs compute capability >=5.0"),
        (Machine(driver=Version("418.39"), driver_text="418.39"), False,
         "driver 418.39 is older than CUDA 11.0 needs; cu121 needs a driver >=525.60.13"),
        (Machine(driver=Version("580.65.06"), compute_capability=Version("12.0"),
                 driver_text="580.65.06"), True,
         "driver 580.65.06 supports CUDA 12.9 and later, GPU sm_120"),
    ],
)  # fmt: skip
def test_needs_are_judged_with_the_reason(machine: Machine, ok: bool, reason: str) -> None:
    verdict = judge("cu121", NEEDS, machine, "linux")
    assert (verdict.ok, verdict.reason) == (ok, reason)


# -- lock, sync and check ------------------------------------------------------------------


@pytest.fixture
def cu_index(tmp_path: Path) -> Any:
    with IndexServer(tmp_path / "cu-index") as server:
        yield server


def _spec(proj: EnvProject, cu: IndexServer, variants: dict[str, dict[str, Any]]) -> None:
    doc: dict[str, Any] = {
        "environment": {
            "name": "t", "python": PYTHON, "targets": [TARGET, OTHER],
            "variants": list(variants),
        },
        "indexes": {"pypi": proj.server.url, "cu": {"url": cu.url, "explicit": True}},
        "phases": [{"name": "torch", "requirements": ["torch"]},
                   {"name": "app", "requirements": ["app"]}],
        "variants": variants,
    }  # fmt: skip
    (proj.project / "envspec.toml").write_text(tomlkit.dumps(doc))


DRIVER_NEED = {"linux": ">=525.60.13", "windows": ">=528.33"}
THREE = {
    "new": {"targets": [TARGET], "cuda-driver": DRIVER_NEED, "compute-capability": ">=8.0",
            "index": {"torch": "cu"}, "constraints": ["torch>=2"]},
    "old": {"targets": [TARGET], "cuda-driver": DRIVER_NEED, "compute-capability": ">=5.0",
            "index": {"torch": "cu"}, "constraints": ["torch<2"]},
    "cpu": {},
}  # fmt: skip


@pytest.fixture
def proj(
    tmp_path: Path, index_server: IndexServer, cu_index: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
) -> EnvProject:  # fmt: skip
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv(CAPABILITY, raising=False)
    monkeypatch.setenv(DRIVER, "none")  # never the real host's
    index_server.add_wheel("torch", "2.0")  # the CPU build
    index_server.add_wheel("app", "1.0", requires_dist=["torch"])
    cu_index.add_wheel("torch", "1.0+cu121")
    cu_index.add_wheel("torch", "2.0+cu121")
    project = EnvProject(tmp_path, index_server)
    _spec(project, cu_index, THREE)
    project.lock()
    return project


def _doc(proj: EnvProject, label: str) -> dict[str, Any]:
    return tomllib.loads((proj.project / "locks" / pylock_name(label)).read_text())


def _torch(proj: EnvProject, label: str) -> str:
    return next(p["version"] for p in _doc(proj, label)["packages"] if p["name"] == "torch")


def test_each_target_is_locked_per_variant_with_its_needs(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    names = sorted(p.name for p in (proj.project / "locks").iterdir())
    assert names == sorted(f"pylock.{t}.toml" for t in (
        f"{TARGET}-new", f"{TARGET}-old", f"{TARGET}-cpu", f"{OTHER}-cpu"))  # fmt: skip
    assert all(is_valid_pylock_path(Path(name)) for name in names)  # PEP 751's, as uv checks
    family = TARGET.split("-")[0]
    assert {k: v for k, v in _doc(proj, f"{TARGET}.old")["tool"]["envspec"].items()
            if k in ("target", "variant", "needs")} == {
        "target": TARGET, "variant": "old",
        "needs": {"cuda-driver": DRIVER_NEED[family], "compute-capability": ">=5.0"},
    }  # fmt: skip
    assert "needs" not in _doc(proj, f"{TARGET}.cpu")["tool"]["envspec"]
    assert (_torch(proj, f"{TARGET}.new"), _torch(proj, f"{TARGET}.old")) == (
        "2.0+cu121", "1.0+cu121")  # fmt: skip
    assert _torch(proj, f"{TARGET}.cpu") == "2.0"
    before = {p.name: p.read_bytes() for p in (proj.project / "locks").iterdir()}
    capsys.readouterr()
    assert main(["lock", "--check", "--project", str(proj.project)]) == 0
    assert capsys.readouterr().err == "All 4 locks are up to date.\n"
    assert main(["lock", "--upgrade", "--project", str(proj.project),
                 "--cache-dir", str(proj.cache)]) == 0  # fmt: skip
    assert {p.name: p.read_bytes() for p in (proj.project / "locks").iterdir()} == before


def test_lock_variant_and_staleness_per_variant(
    proj: EnvProject, cu_index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = {**THREE, "old": {**THREE["old"], "compute-capability": ">=6.0"}}
    _spec(proj, cu_index, changed)
    capsys.readouterr()
    assert main(["lock", "--check", "--project", str(proj.project)]) == 3
    assert capsys.readouterr().err == (
        f"error: locks out of date: {TARGET}.old (stale: variant needs changed)\n"
        "hint: run 'envspec lock' and commit locks/\n"
    )
    cu_index.add_wheel("torch", "1.5+cu121")  # a newer pin the old lock does not take
    new_before = (proj.project / "locks" / f"pylock.{TARGET}-new.toml").read_bytes()
    assert main(["lock", "--variant", "old", "--json", "--project", str(proj.project),
                 "--cache-dir", str(proj.cache)]) == 0  # fmt: skip
    [event] = [e for e in events(capsys.readouterr().out) if e["event"] == "lock"]
    assert (event["target"], event["variant"], event["state"]) == (TARGET, "old", "written")
    assert _torch(proj, f"{TARGET}.old") == "1.0+cu121"  # kept pin
    assert (proj.project / "locks" / f"pylock.{TARGET}-new.toml").read_bytes() == new_before
    assert main(["lock", "--variant", "cu118", "--project", str(proj.project)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --variant: variant 'cu118' is not in the spec\n"
        "hint: spec variants: new, old, cpu\n"
    )


def _choose(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = proj.run("sync", "--dry-run", "--json", *args)
    out = capsys.readouterr().out
    found = [e for e in events(out) if e["event"] == "variant"]
    return code, (found[0] if found else {}), out


def test_sync_chooses_the_first_variant_the_machine_meets(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj.make_env()
    # no GPU → cpu, saying why the GPU builds were passed over
    code, event, _ = _choose(proj, capsys)
    wanted = DRIVER_NEED[TARGET.split("-")[0]]
    assert code == 0 and event == {
        "event": "variant", "target": TARGET, "variant": "cpu", "reason": "needs no GPU",
        "fits": True, "requested": False, "installed": False,
        "machine": {"driver": None, "compute_capability": None, "source": DRIVER},
        "skipped": [
            {"variant": "new", "reason": f"no NVIDIA driver found; new needs a driver {wanted}"},
            {"variant": "old", "reason": f"no NVIDIA driver found; old needs a driver {wanted}"},
        ],
    }  # fmt: skip
    # a driver too old for CUDA 12 → cpu, with the reason
    monkeypatch.setenv(DRIVER, "470.82.01")
    monkeypatch.setenv(CAPABILITY, "8.6")
    _, event, _ = _choose(proj, capsys)
    assert event["variant"] == "cpu"
    assert event["skipped"][0]["reason"] == (
        f"driver 470.82.01 supports CUDA ≤ 11.4, GPU sm_86; new needs a driver {wanted}"
    )
    # a compute capability below the first variant's minimum → the next variant
    monkeypatch.setenv(DRIVER, "550.54.15")
    monkeypatch.setenv(CAPABILITY, "6.1")
    _, event, out = _choose(proj, capsys)
    assert (event["variant"], event["reason"]) == (
        "old", "driver 550.54.15 supports CUDA ≤ 12.4, GPU sm_61")  # fmt: skip
    assert event["skipped"] == [{"variant": "new", "reason": (
        "driver 550.54.15 supports CUDA ≤ 12.4, GPU sm_61; new needs compute capability >=8.0")}]
    plan = next(e for e in events(out) if e["event"] == "plan")
    assert [s["version"] for p in plan["phases"] for s in p["steps"]][:1] == ["1.0+cu121"]
    monkeypatch.setenv(CAPABILITY, "8.9")
    assert _choose(proj, capsys)[1]["variant"] == "new"


def test_variant_overrides_with_a_warning_when_the_machine_falls_short(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.make_env()
    capsys.readouterr()
    assert proj.run("sync", "--dry-run", "--variant", "old") == 0
    err = capsys.readouterr().err
    wanted = DRIVER_NEED[TARGET.split("-")[0]]
    assert (
        "warning: --variant old: this machine does not meet its needs: no NVIDIA driver found; "
        f"old needs a driver {wanted}\n"
    ) in err
    assert f"lock locks/pylock.{TARGET}-old.toml" in err
    _, event, _ = _choose(proj, capsys, "--variant", "old")
    assert (event["variant"], event["fits"], event["requested"]) == ("old", False, True)
    assert proj.run("sync", "--dry-run", "--variant", "olf") == 2
    assert capsys.readouterr().err.endswith(
        "error: --variant: variant 'olf' is not in the spec\nhint: did you mean 'old'?\n"
    )


def test_check_reports_an_installed_variant_that_no_longer_fits(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj.make_env()
    monkeypatch.setenv(DRIVER, "550.54.15")
    monkeypatch.setenv(CAPABILITY, "8.6")
    assert proj.run("sync", "--no-checks") == 0
    assert "torch==2.0+cu121" in proj.freeze()
    assert (proj.state / "variant.json").read_text() == (
        f'{{"target": "{TARGET}", "variant": "new"}}'
    )
    capsys.readouterr()
    assert proj.run("check", "--json") == 0
    got = [e for e in events(capsys.readouterr().out) if e["event"] == "check"]
    assert got[0]["check"] == "variant" and got[0]["ok"]
    monkeypatch.setenv(DRIVER, "none")  # the GPU went away
    assert proj.run("check", "--json") == 1
    out = capsys.readouterr().out
    assert next(e for e in events(out) if e["event"] == "variant")["installed"] is True
    failed = [e for e in events(out) if e["event"] == "check" and not e["ok"]]
    wanted = DRIVER_NEED[TARGET.split("-")[0]]
    assert [(e["check"], e["message"]) for e in failed] == [("variant", (
        f"installed variant new no longer fits this machine: no NVIDIA driver found; new needs "
        f"a driver {wanted}; 'envspec sync' installs the variant that does"))]  # fmt: skip
    assert proj.run("sync", "--no-checks") == 0  # back to the CPU build
    assert "torch==2.0\n" in proj.freeze()
    assert '"variant": "cpu"' in (proj.state / "variant.json").read_text()
    assert proj.run("rollback") == 0  # to the GPU build, and its variant record
    assert "torch==2.0+cu121" in proj.freeze()
    assert (proj.state / "variant.json").read_text() == (
        f'{{"target": "{TARGET}", "variant": "new"}}'
    )
    assert proj.run("rollback") == 0  # the rollback rolled back: the CPU build again
    assert "torch==2.0\n" in proj.freeze()
    assert '"variant": "cpu"' in (proj.state / "variant.json").read_text()


def test_no_fitting_variant_is_an_error_naming_each_reason(
    proj: EnvProject, cu_index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _spec(proj, cu_index, {"new": THREE["new"]})
    proj.lock()
    proj.make_env()
    capsys.readouterr()
    assert proj.run("sync", "--dry-run") == 1
    wanted = DRIVER_NEED[TARGET.split("-")[0]]
    assert capsys.readouterr().err.endswith(
        f"error: no variant of {TARGET} fits this machine: no NVIDIA driver found; new needs a "
        f"driver {wanted}\nhint: install one anyway with --variant NAME (new)\n"
    )


def test_review_commands_take_variant(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ["--project", str(proj.project)]
    capsys.readouterr()
    assert main(["export", "--target", TARGET, *project]) == 2
    assert capsys.readouterr().err == (
        f"error: --variant: target {TARGET} has several variants: choose one\n"
        "hint: variants: new, old, cpu\n"
    )
    assert main(["export", "--target", TARGET, "--variant", "old", *project]) == 0
    assert "torch @ " in capsys.readouterr().out  # from the explicit index: by URL
    assert main(["why", "torch", "--variant", "cpu", "--json", *project]) == 0
    [why] = [e for e in events(capsys.readouterr().out) if e["event"] == "why"]
    assert sorted(t["target"] for t in why["targets"]) == sorted([f"{TARGET}.cpu", f"{OTHER}.cpu"])
    assert main(["why", "torch", "--target", OTHER, "--variant", "new", *project]) == 2
    assert capsys.readouterr().err == (
        f"error: --variant: variant 'new' is not locked for {OTHER}\n"
        f"hint: 'new' is locked for: {TARGET}\n"
    )
    assert main(["diff", str(proj.project / "locks"), str(proj.project / "locks"),
                 "--format", "json", "--json", *project]) == 0  # fmt: skip
    [diff] = [e for e in events(capsys.readouterr().out) if e["event"] == "diff"]
    torch = next(d for d in diff["divergence"] if d["name"] == "torch")
    assert torch["versions"] == {
        f"{TARGET}.new": "2.0+cu121", f"{TARGET}.old": "1.0+cu121",
        f"{TARGET}.cpu": "2.0", f"{OTHER}.cpu": "2.0",
    }  # divergence across variants, not only across targets
    assert main(["diff", str(proj.project / "locks"), str(proj.project / "locks"),
                 "--variant", "cpu", "--json", *project]) == 0  # fmt: skip
    [diff] = [e for e in events(capsys.readouterr().out) if e["event"] == "diff"]
    assert sorted(t["target"] for t in diff["targets"]) == sorted([f"{TARGET}.cpu", f"{OTHER}.cpu"])


def test_sync_locked_judges_the_chosen_variants_lock(
    proj: EnvProject, cu_index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj.make_env()
    assert proj.run("sync", "--dry-run", "--locked") == 0  # cpu: fresh
    _spec(proj, cu_index, {**THREE, "cpu": {"constraints": ["torch<3"]}})
    capsys.readouterr()
    assert proj.run("sync", "--dry-run", "--locked") == 3
    assert (
        f"error: locks/pylock.{TARGET}-cpu.toml: the lock for {TARGET}.cpu is out of date with "
        "envspec.toml: resolution.constraints: added torch<3\n"
    ) in capsys.readouterr().err.replace(str(proj.project) + "/", "")
    assert proj.run("sync", "--dry-run", "--locked", "--variant", "old") == 0  # still fresh
    capsys.readouterr()
    assert proj.run("sync", "--dry-run", "--json") == 0  # relocked first, that variant only
    relocked = [e for e in events(capsys.readouterr().out) if e["event"] == "lock"]
    assert [(e["target"], e["variant"], e["state"]) for e in relocked] == [
        (TARGET, "cpu", "resolved")
    ]


def test_a_lock_moved_under_a_variant_is_stale_until_relocked(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = proj.project / "locks"
    (locks / f"pylock.{OTHER}-cpu.toml").unlink()
    text = (locks / f"pylock.{TARGET}-cpu.toml").read_text()
    (locks / f"pylock.{TARGET}-cpu.toml").write_text(text.replace('variant = "cpu"\n', ""))
    capsys.readouterr()
    assert main(["lock", "--check", "--project", str(proj.project)]) == 3
    assert capsys.readouterr().err.startswith(
        f"error: locks out of date: {TARGET}.cpu (stale: recorded without a variant), "
        f"{OTHER}.cpu (missing)\n"
    )
    assert main(["lock", "--variant", "new", "--target", OTHER, "--project",
                 str(proj.project)]) == 2  # fmt: skip
    assert capsys.readouterr().err == (
        f"error: --variant: variant 'new' is not locked for {OTHER}\n"
        f"hint: 'new' is locked for: {TARGET}\n"
    )


def test_a_variant_lock_under_its_old_name_is_relocked_with_its_pins_and_removed(
    proj: EnvProject, cu_index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """envspec wrote pylock.<target>.<variant>.toml, a name PEP 751 (and uv) refuses."""
    locks = proj.project / "locks"
    new, legacy = locks / f"pylock.{TARGET}-old.toml", locks / f"pylock.{TARGET}.old.toml"
    before = new.read_bytes()
    new.rename(legacy)
    cu_index.add_wheel("torch", "1.5+cu121")  # a newer release the relock must not take
    capsys.readouterr()
    assert main(["lock", "--check", "--project", str(proj.project)]) == 3
    assert capsys.readouterr().err.startswith(
        f"error: locks out of date: {TARGET}.old (stale: named pylock.{TARGET}.old.toml, which "
        f"PEP 751 does not allow (a '.' in its name): relocking writes pylock.{TARGET}-old.toml)\n"
    )
    assert main(["lock", "--project", str(proj.project), "--cache-dir", str(proj.cache)]) == 0
    assert (new.read_bytes(), legacy.exists()) == (before, False)


def test_an_old_lock_file_that_cannot_be_removed_fails_the_lock_naming_it(
    proj: EnvProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    locks = proj.project / "locks"
    legacy = locks / f"pylock.{TARGET}.old.toml"
    (locks / f"pylock.{TARGET}-old.toml").rename(legacy)
    unlink = os.unlink

    def refused(path: Any, *args: Any, **kwargs: Any) -> None:  # the fault, at the OS's edge
        if Path(path) == legacy:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    capsys.readouterr()
    assert main(["lock", "--project", str(proj.project), "--cache-dir", str(proj.cache)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {legacy}: cannot remove the lock's old file: Permission denied"
    )


def test_rules_and_bundle_take_variant(
    proj: EnvProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ["--project", str(proj.project)]
    capsys.readouterr()
    assert main(["rules", "--variant", "cpu", *project]) == 0
    capsys.readouterr()
    assert main(["rules", "--variant", "gpx", *project]) == 2
    assert capsys.readouterr().err == (
        "error: --variant: variant 'gpx' is not in the spec\nhint: spec variants: new, old, cpu\n"
    )
    dest = tmp_path / "bundle"
    assert main(["bundle", str(dest), "--variant", "old", "--cache-dir", str(proj.cache),
                 *project]) == 0  # fmt: skip
    assert sorted(p.name for p in (dest / "locks").iterdir()) == [f"pylock.{TARGET}-old.toml"]
    assert (dest / "locks" / f"pylock.{TARGET}-old.toml").read_bytes() == (
        proj.project / "locks" / f"pylock.{TARGET}-old.toml"
    ).read_bytes()
    assert any(p.name == "torch-1.0+cu121-py3-none-any.whl" for p in dest.rglob("*.whl"))
    assert not any(p.name == "torch-2.0-py3-none-any.whl" for p in dest.rglob("*.whl"))
    assert is_valid_pylock_path(dest / "install" / f"pylock.{TARGET}-old.toml")  # uv takes it


def test_a_bundles_cpu_requirements_install_its_own_file_with_uv(
    proj: EnvProject, tmp_path: Path
) -> None:
    """The bundle holds torch 2.0 and 2.0+cu121, and `==2.0` admits both: uv took the cu121
    file for the cpu variant, then failed its hash check."""
    dest = tmp_path / "bundle"
    assert main(["bundle", str(dest), "--cache-dir", str(proj.cache), "--project",
                 str(proj.project)]) == 0  # fmt: skip
    cpu = dest / "install" / f"requirements.{TARGET}.cpu.txt"
    assert "torch===2.0 \\" in cpu.read_text().splitlines()
    new = (dest / "install" / f"requirements.{TARGET}.new.txt").read_text().splitlines()
    assert "torch==2.0+cu121 \\" in new
    proj.make_env()
    proj.uv("pip", "install", "--python", str(proj.python), "--index-url",
            (dest / "simple").as_uri(), "--require-hashes", "--no-deps", "-r", str(cpu),
            "--cache-dir", str(tmp_path / "uv-cache"))  # fmt: skip
    assert "torch==2.0" in proj.freeze().splitlines()


def test_a_spec_without_variants_writes_the_plain_lock_names_and_keys(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("torch", "2.0")
    project = EnvProject(tmp_path, index_server)
    project.write_spec([{"name": "torch", "requirements": ["torch"]}], targets=(TARGET, OTHER))
    project.lock("--json")
    assert sorted(p.name for p in (project.project / "locks").iterdir()) == sorted(
        f"pylock.{t}.toml" for t in (TARGET, OTHER)
    )
    for event in (e for e in events(capsys.readouterr().out) if e["event"] == "lock"):
        assert "variant" not in event
    envspec = tomllib.loads(project.lock_file.read_text())["tool"]["envspec"]
    assert "variant" not in envspec and "needs" not in envspec


def test_a_first_sync_creates_the_project_environment_from_a_variant_lock(
    proj: EnvProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ["--project", str(proj.project), "--cache-dir", str(proj.cache)]
    locks = proj.project / "locks"
    for name in ("new", "old", "cpu"):  # this machine's locks are all variants' ...
        assert (locks / f"pylock.{TARGET}-{name}.toml").exists()
    assert not (locks / f"pylock.{TARGET}.toml").exists()  # ... and none is plain
    assert main(["sync", "--no-checks", *project]) == 0
    venv = proj.project / ".venv"
    assert "torch==2.0\n" in proj.uv("pip", "freeze", "--python", str(venv / "bin" / "python"))
    assert '"variant": "cpu"' in (venv / ".envspec" / "variant.json").read_text()
