"""The numerics pins: everything on the machine that would otherwise decide a path's numbers.

A path is a long chain of floating-point steps, so the last bit of every convolution and
matrix product matters. On the CPU that last bit depends on more than the config and seed:

- the **thread count**: convolutions and matrix products split their reductions by thread;
- the **instruction set**: torch's own vectorised kernels (ATen), oneDNN's convolutions, MKL's
  GEMM and numba's JIT each pick their kernels by what the CPU offers (AVX2, AVX-512, ...),
  and each choice rounds differently (measured: each of ``ATEN_CPU_CAPABILITY=default``,
  ``ONEDNN_MAX_CPU_ISA=SSE41`` and ``MKL_CBWR=COMPATIBLE`` alone changed an 8-epoch demo path);
- **deterministic algorithms** (and, on CUDA, cuBLAS's workspace setting).

:func:`pin` fixes all of them from the run config (``cpu_isa``, ``threads``,
``deterministic``) and is called by every process that computes figures: the worker (every
torchrun rank), retrain, and export (the CLI and the app's Export view), before torch computes
anything. The libraries read their instruction-set variables once, when they first compute,
so :func:`pin` sets them in this process's environment first and then checks what torch
actually picked; a process that computed before it was pinned is refused with one sentence
rather than silently giving other numbers.

The levels (``cpu_isa``):

========  =====================  ===============  ===========  ==========================
level     ATen (torch's kernels)  oneDNN           MKL (CNR)    numba target
========  =====================  ===============  ===========  ==========================
avx2      avx2                    AVX2             COMPATIBLE   haswell
avx512    avx512                  AVX512_CORE      COMPATIBLE   skylake-avx512
baseline  default                 SSE41            COMPATIBLE   x86-64 (generic)
native    the machine's choice    the machine's    unpinned     the host CPU
========  =====================  ===============  ===========  ==========================

``avx2`` is the default: every x86-64 machine of the last ten years has it (Intel since
Haswell, 2013; AMD since Excavator, 2015, and every Zen). MKL's ``COMPATIBLE`` branch is the one
that Intel documents as giving the same results on Intel and non-Intel processors, so it is
used at every pinned level. ``native`` opts out: fastest, and only repeatable on the same kind
of machine. ARM machines (Apple silicon, Graviton) have none of these kernels and run
``native`` only.

This module imports nothing heavy at import time (torch is imported inside :func:`pin`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Mapping, MutableMapping
from importlib.metadata import version
from typing import Any

import numpy as np

import pathviz

__all__ = ["DEFAULT_LEVEL", "LEVELS", "VML_OPS", "NumericsError", "apply_env", "differences",
           "environment", "level_env", "machine_problem", "pin", "pinned_level", "sqrt_"]

log = logging.getLogger("pathviz.numerics")

DEFAULT_LEVEL = "avx2"

#: the environment each pinned level sets, overriding whatever the caller had
LEVELS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_CBWR": "COMPATIBLE", "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_CBWR": "COMPATIBLE", "NUMBA_CPU_NAME": "skylake-avx512",
               "NUMBA_CPU_FEATURES": ""},
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                 "MKL_CBWR": "COMPATIBLE", "NUMBA_CPU_NAME": "x86-64",
                 "NUMBA_CPU_FEATURES": ""},
    "native": {},
}

#: the CPU flags (/proc/cpuinfo) a level's kernels use; numba's targets need the extras
_FLAGS = {"avx2": ("avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"),
          "avx512": ("avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"),
          "baseline": ("sse4_1",)}

#: what ``torch.backends.cpu.get_cpu_capability()`` reports at each pinned level
_ATEN = {"avx2": "AVX2", "avx512": "AVX512", "baseline": "DEFAULT"}

# cuBLAS needs a fixed workspace for deterministic GEMMs; read when CUDA initialises
_CUBLAS = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


_PINNED: str | None = None  # the level pin() last fixed in this process

#: ATen ops that torch's x86 CPU build hands to MKL's vector math library (VML) for float32 and
#: float64 tensors (seen with gdb on torch 2.14.1: each reaches ``vms<Op>``/``vmd<Op>``).
#: VML chooses its kernel by CPU vendor and model whatever ``MKL_CBWR`` says, and its "high
#: accuracy" sqrt is not correctly rounded (on an AMD EPYC it ran the ``EX`` kernel, which gave
#: 17 % of float32 square roots one ulp away from IEEE's), so a path that runs any of these on
#: the CPU can differ between Intel and AMD. pathviz runs none of them on the training, recording
#: and evaluation paths (tests/test_numerics.py traces every op to check); :func:`sqrt_` is the
#: replacement. ``pow`` with exponent 0.5 reaches VML's sqrt too.
VML_OPS = frozenset({"sqrt", "exp", "log", "log2", "log10", "sin", "cos", "tan", "tanh", "asin",
                     "acos", "atan", "erf", "erfc", "erfinv"})


def sqrt_(t: Any) -> Any:
    """In place: the correctly rounded square root of a float tensor, the same bits on every CPU.

    ``torch.sqrt`` on the CPU goes through MKL's VML (see :data:`VML_OPS`), whose result depends
    on the CPU vendor; numpy's ``sqrt`` is the IEEE operation (one instruction, correctly
    rounded), so it is taken on the CPU. Other devices keep ``sqrt_`` (CUDA's is IEEE too).
    Returns ``t``.
    """
    if t.device.type != "cpu":
        return t.sqrt_()
    a = t.detach().numpy()
    np.sqrt(a, out=a)
    return t


def pinned_level() -> str | None:
    """The ``cpu_isa`` that :func:`pin` fixed in this process, or None if it never ran."""
    return _PINNED


class NumericsError(ValueError):
    """The numerics a run asks for cannot be had in this process or on this machine; the
    message is one sentence that names the fix."""


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where that file does not exist."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def machine_problem(level: str, machine: str | None = None,
                    flags: set[str] | None = None) -> str | None:
    """One sentence saying why this machine cannot run ``level``, or None if it can.

    ``machine`` and ``flags`` default to this machine's (``platform.machine()`` and
    /proc/cpuinfo); tests pass others to stand in for another machine.
    """
    if level not in LEVELS:
        return (f"cpu_isa {level!r} is not a level pathviz knows; choose one of "
                f"{', '.join(LEVELS)}")
    if level == "native":
        return None
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return (f"cpu_isa {level} pins x86-64 kernels, but this machine is {machine}; "
                f"train with --cpu-isa native (its path is repeatable only on {machine} "
                f"machines like this one)")
    if flags is None:
        flags = _cpu_flags()
    if flags is None:  # no /proc/cpuinfo (not Linux): torch's own check below still runs
        return None
    missing = [f for f in _FLAGS[level] if f not in flags]
    if missing:
        return (f"cpu_isa {level} needs a CPU with {', '.join(missing)}, which this one lacks; "
                f"use --cpu-isa baseline (any x86-64) or --cpu-isa native")
    return None


def level_env(level: str, deterministic: bool = True) -> dict[str, str]:
    """The environment variables that pin ``level`` (and cuBLAS, if ``deterministic``)."""
    env = dict(LEVELS[level])
    if deterministic:
        env[_CUBLAS[0]] = _CUBLAS[1]
    return env


def apply_env(level: str = DEFAULT_LEVEL, env: MutableMapping[str, str] | None = None,
              deterministic: bool = True) -> MutableMapping[str, str]:
    """Write ``level``'s variables into ``env`` (default: this process's ``os.environ``),
    replacing the caller's values, and return it.

    Call it before torch computes anything, or hand the result to a child process: the
    libraries read these once, at their first computation.
    """
    env = os.environ if env is None else env
    env.update(level_env(level, deterministic))
    return env


def _mkl_branch() -> int | None:
    """MKL's conditional-numerical-reproducibility setting (``mkl_cbwr_get``), or None where
    torch's MKL does not export it."""
    try:
        import torch  # lazy: config and the app import pathviz.numerics without torch

        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib",
                                       "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(get(1))  # MKL_CBWR_BRANCH


_MKL_COMPATIBLE = 3  # MKL_CBWR_COMPATIBLE


def pin(level: str = DEFAULT_LEVEL, threads: int | None = 1,
        deterministic: bool = True) -> dict[str, Any]:
    """Fix this process's numerics for a run: instruction-set level, thread count and
    deterministic algorithms (``threads=None`` leaves the thread count to torch, as on a GPU).
    Returns what was pinned (see :func:`environment`).

    Raises NumericsError when the machine lacks ``level`` (not for ``native``) or when torch
    already computed in this process with other kernels (start a fresh process, which the
    CLIs are). Idempotent: calling it again with the same values only checks.
    """
    problem = machine_problem(level)
    if problem:
        raise NumericsError(problem)
    before = {k: os.environ.get(k) for k in level_env(level, deterministic)}
    apply_env(level, deterministic=deterministic)
    import torch  # lazy: config and the app import pathviz.numerics without torch

    problem = _unpinnable(level, torch)
    if problem:
        for k, v in before.items():  # leave the environment as it was: nothing was pinned
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        raise NumericsError(problem)
    global _PINNED
    _PINNED = level
    if threads is not None:
        _pin_threads(int(threads))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return environment(level, threads=threads, deterministic=deterministic)


def _unpinnable(level: str, torch: Any) -> str | None:
    """Why this process can no longer run ``level``'s kernels (torch or MKL computed before
    the pin), or None. Asking initialises each library from the environment just set."""
    want = _ATEN.get(level)
    if want is None:
        return None
    got = torch.backends.cpu.get_cpu_capability()
    if got != want:
        return (f"this process already computed with torch's {got} kernels before pathviz "
                f"could pin cpu_isa {level} ({want}); run it as its own process (python -m "
                f"pathviz.train, export or retrain), which pins them first")
    branch = _mkl_branch()
    if branch is not None and branch != _MKL_COMPATIBLE:
        return (f"MKL in this process already chose its own code path before pathviz could pin "
                f"it to COMPATIBLE for cpu_isa {level}; run it as its own process (python -m "
                f"pathviz.train, export or retrain), which pins it first")
    return None


def _pin_threads(threads: int) -> None:
    """torch's (and numba's) intra-op thread count: reductions split by thread, so the same
    run on a machine with another core count would otherwise give another path."""
    try:
        import numba  # lazy: numba (optional) takes about a second; only pinning needs it
    except ImportError:  # pragma: no cover - numba is optional
        numba = None
    import torch  # lazy: config and the app import pathviz.numerics without torch

    if numba is not None:
        numba.core.config.reload_config()  # the pinned NUMBA_CPU_NAME, before any compile
        from pathviz import _fused  # lazy: numba loads and compiles only where the kernels run

        # numba's OpenMP layer resets the process's OpenMP thread count when it starts, which
        # MKL/oneDNN then follow: start it first, then set torch's count (measured: without
        # this, NUMBA_NUM_THREADS=4 changed the demo's weights in the last bit)
        _fused.launch()
        # the fused SLBI kernel has no cross-row reductions, so this only keeps timings honest
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(threads)


def _version(module: str) -> str | None:
    try:
        return version(module)
    except Exception:  # noqa: BLE001 - a package that is not installed has no version
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(level: str, threads: int | None = None, deterministic: bool | None = None,
                device: str | None = None) -> dict[str, Any]:
    """What made (or makes) a run's numbers: library versions, the pinned level and what
    torch actually runs, the device. Stored in config.json and path.h5 (``environment``)."""
    import torch  # lazy: config and the app import pathviz.numerics without torch

    out: dict[str, Any] = {
        "pathviz": pathviz.__version__, "torch": torch.__version__,
        "numpy": _version("numpy"), "numba": _version("numba"),
        "python": platform.python_version(), "cpu_isa": level,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(), "cpu": _cpu_name(),
    }
    if threads is not None:
        out["threads"] = int(threads)
    if deterministic is not None:
        out["deterministic"] = bool(deterministic)
    if device is not None:
        out["device"] = device
        if device.startswith("cuda") and torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(torch.device(device))
            out["cuda"] = torch.version.cuda
    return out


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The version fields that differ between two :func:`environment` records, as
    ``"torch 2.14.1 -> 2.15.0"``; resume warns with them (the path goes on, not bit for bit)."""
    keys = ("pathviz", "torch", "numpy", "numba", "cpu_capability", "device")
    return [f"{k} {recorded.get(k)} -> {now.get(k)}" for k in keys
            if k in recorded and k in now and recorded.get(k) != now.get(k)]

