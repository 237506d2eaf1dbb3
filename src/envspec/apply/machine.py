"""What this machine offers an accelerator variant: the one module that reads the host for it
(the rest, from `compat.cuda.judge` to the choice in `select`, is pure).

In order, as uv's `--torch-backend=auto` does (``../shared/compat/FACTS.md``):

1. ``ENVSPEC_CUDA_DRIVER_VERSION``: a driver version, or ``none`` for a machine without an
   NVIDIA GPU; nothing else is read then. ``ENVSPEC_CUDA_COMPUTE_CAPABILITY`` (``8.6``)
   gives the GPU's compute capability, with the override or without;
2. ``/sys/module/nvidia/version`` (the loaded kernel module's version);
3. ``/proc/driver/nvidia/version`` (``NVRM version: NVIDIA UNIX x86_64 Kernel Module
   550.54.14 …``);
4. ``nvidia-smi --query-gpu=driver_version,compute_cap --format=csv,noheader`` (Linux and
   Windows), found on the ``PATH`` of the environment snapshot and run through `envspec.proc`;
   its first line is GPU 0, the device CUDA uses by default. Where the driver came from a
   file, nvidia-smi is still asked for the compute capability, when it is installed;
5. nothing: CPU only.

`root` stands for ``/`` (tests give a folder holding fake ``sys`` and ``proc`` trees). A bad
override value is an error naming the variable (exit 2); a file that cannot be read or an
nvidia-smi that fails counts as not found.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from packaging.version import Version

from envspec import proc
from envspec.compat.cuda import parse_version
from envspec.errors import EnvspecError, UsageError
from envspec.model import Machine

DRIVER_VARIABLE = "ENVSPEC_CUDA_DRIVER_VERSION"
CAPABILITY_VARIABLE = "ENVSPEC_CUDA_COMPUTE_CAPABILITY"
SYS_VERSION = "sys/module/nvidia/version"
PROC_VERSION = "proc/driver/nvidia/version"
_PROC_LINE = re.compile(r"NVRM version:.*?Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)\b")
_SMI_TIMEOUT = 15.0


def detect_machine(environ: Mapping[str, str], *, root: Path = Path("/")) -> Machine:
    """The machine's NVIDIA driver and GPU 0's compute capability; see the module docstring."""
    capability = _override(environ, CAPABILITY_VARIABLE, "a compute capability such as 8.6")
    if DRIVER_VARIABLE in environ:
        if environ[DRIVER_VARIABLE].strip().lower() == "none":
            return Machine(source=DRIVER_VARIABLE)
        driver = _override(environ, DRIVER_VARIABLE, "a version such as 550.54.14, or none")
        return _machine(environ[DRIVER_VARIABLE], driver, capability, DRIVER_VARIABLE)
    for relative, read in ((SYS_VERSION, _sys_version), (PROC_VERSION, _proc_version)):
        text = read(_text(root / relative))
        if text:
            if capability is None:
                capability = _nvidia_smi(environ)[1]
            return _machine(text, parse_version(text), capability, "/" + relative)
    shown, found = _nvidia_smi(environ)
    if not shown:
        return Machine(source="none")
    return _machine(shown, parse_version(shown), capability or found, "nvidia-smi")


def _machine(text: str, driver: Version | None, capability: Version | None, source: str) -> Machine:
    if driver is None:
        return Machine(source="none")
    return Machine(
        driver=driver, compute_capability=capability, source=source, driver_text=text.strip()
    )


def _override(environ: Mapping[str, str], name: str, expected: str) -> Version | None:
    text = environ.get(name)
    if text is None:
        return None
    found = parse_version(text)
    if found is None:
        raise UsageError(f"invalid value '{text}'", context=name, hint=f"expected {expected}")
    return found


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _sys_version(text: str) -> str:
    return text.strip() if parse_version(text) is not None else ""


def _proc_version(text: str) -> str:
    found = _PROC_LINE.search(text)
    return found[1] if found else ""


def _nvidia_smi(environ: Mapping[str, str]) -> tuple[str, Version | None]:
    """GPU 0's driver (as written) and compute capability as nvidia-smi says ("", None
    without it)."""
    program = shutil.which("nvidia-smi", path=environ.get("PATH", ""))
    if program is None:
        return "", None
    argv = [program, "--query-gpu=driver_version,compute_cap", "--format=csv,noheader"]
    try:
        ran = proc.run(argv, env=environ, timeout=_SMI_TIMEOUT)
    except EnvspecError:
        return "", None
    lines = [line for line in ran.stdout.splitlines() if line.strip()]
    if not ran.ok or not lines:
        return "", None
    fields = [field.strip() for field in lines[0].split(",")]
    capability = parse_version(fields[1]) if len(fields) > 1 else None
    return (fields[0] if parse_version(fields[0]) else ""), capability
