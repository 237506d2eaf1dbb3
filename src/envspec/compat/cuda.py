"""Which CUDA an NVIDIA driver runs, and whether a machine meets a variant's needs.

The driver table is data, `cuda_drivers.toml` beside this module, with its source (NVIDIA's
CUDA Toolkit release notes, table 3); `load_cuda_drivers` is its file edge. `judge` is pure:
it takes the machine as `apply.machine` found it (`model.Machine`) and a variant's needs on
one target (`model.Needs`) and says whether they are met, in words a person can act on:

- ``driver 550.54.14 supports CUDA ≤ 12.4, GPU sm_86`` (met)
- ``no NVIDIA driver found; cu121 needs a driver >=525.60.13``
- ``driver 470.82.01 supports CUDA ≤ 11.4 …; cu121 needs a driver >=525.60.13``
- ``GPU sm_61 (compute capability 6.1); cu124 needs compute capability >=7.0``
- ``needs no GPU`` (a CPU build)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from packaging.version import InvalidVersion, Version

from envspec.errors import EnvspecError
from envspec.model import Machine, Needs
from envspec.tomlread import loads

DRIVERS = "cuda_drivers.toml"


@dataclass(frozen=True, kw_only=True, slots=True)
class DriverTable:
    """Per OS family, (minimum driver, CUDA version) pairs, lowest driver first."""

    source: str
    rows: tuple[tuple[str, tuple[tuple[Version, str], ...]], ...]

    def cuda_for(self, driver: Version, family: str) -> str | None:
        """The newest CUDA version whose minimum driver `driver` meets (None: below all)."""
        best = None
        for minimum, cuda in dict(self.rows).get(family, ()):
            if driver >= minimum:
                best = cuda if best is None or Version(cuda) > Version(best) else best
        return best

    def newest(self, family: str) -> str:
        return max((c for _, c in dict(self.rows).get(family, ())), key=Version, default="")


@functools.cache
def load_cuda_drivers() -> DriverTable:
    """The driver table shipped with envspec (read once)."""
    text = resources.files(__package__).joinpath(DRIVERS).read_text(encoding="utf-8")
    data = loads(text, where=f"envspec/compat/{DRIVERS}", error=EnvspecError)
    rows = {
        family: tuple(sorted((Version(r[family]), r["cuda"]) for r in data["releases"]))
        for family in ("linux", "windows")
    }
    return DriverTable(source=data["source"], rows=tuple(sorted(rows.items())))


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    ok: bool
    reason: str  # what the machine has, and what is missing when not ok


def judge(name: str, needs: Needs, machine: Machine, family: str) -> Verdict:
    """Whether `machine` meets variant `name`'s `needs` on an OS of `family`."""
    if not needs.gpu:
        return Verdict(ok=True, reason="needs no GPU")
    has = describe(machine, family)
    if machine.driver is None:
        return Verdict(ok=False, reason=f"{has}; {name} needs {_wanted(needs)}")
    if needs.cuda_driver is not None and not needs.cuda_driver.contains(
        machine.driver, prereleases=True
    ):
        return Verdict(ok=False, reason=f"{has}; {name} needs a driver {needs.cuda_driver}")
    wanted = needs.compute_capability
    if wanted is not None:
        cc = machine.compute_capability
        if cc is None:
            hint = "set ENVSPEC_CUDA_COMPUTE_CAPABILITY if nvidia-smi cannot tell"
            return Verdict(
                ok=False,
                reason=f"{has}; {name} needs compute capability {wanted} ({hint})",
            )
        if not wanted.contains(cc, prereleases=True):
            return Verdict(ok=False, reason=f"{has}; {name} needs compute capability {wanted}")
    return Verdict(ok=True, reason=has)


def describe(machine: Machine, family: str) -> str:
    """The machine in a few words: ``driver 551.23 supports CUDA ≤ 12.3, GPU sm_86``."""
    if machine.driver is None:
        return "no NVIDIA driver found"
    table = load_cuda_drivers()
    cuda = table.cuda_for(machine.driver, family)
    if cuda is None:
        oldest = min((c for _, c in dict(table.rows).get(family, ())), key=Version, default="")
        text = f"driver {machine.driver_shown} is older than CUDA {oldest} needs"
    elif cuda == table.newest(family):
        text = f"driver {machine.driver_shown} supports CUDA {cuda} and later"
    else:
        text = f"driver {machine.driver_shown} supports CUDA ≤ {cuda}"
    cc = machine.compute_capability
    if cc is not None:
        text += f", GPU sm_{cc.major}{cc.minor}"
    return text


def _wanted(needs: Needs) -> str:
    if needs.cuda_driver is not None:
        return f"a driver {needs.cuda_driver}"
    return f"a GPU of compute capability {needs.compute_capability}"


def parse_version(text: str) -> Version | None:
    """A driver or compute capability version as nvidia-smi or /proc writes it, or None."""
    try:
        return Version(text.strip())
    except InvalidVersion:
        return None
