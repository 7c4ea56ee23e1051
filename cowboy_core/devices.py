"""Which device a computation runs on, chosen once at the boundary, and why CUDA cannot run.

A computation that asked for CUDA runs on CUDA or fails at once with one line that says why:
no CUDA build of torch, no visible device, or a driver too old. It never falls back to the
CPU: a job sized and scheduled for a GPU would silently run hundreds of times slower, and its
results would round differently from the GPU runs beside it.
"""

from __future__ import annotations

import os
import re

import torch

DEVICE_HELP = "use cpu, cuda, cuda:N or auto"


class DeviceError(RuntimeError):
    """A device that cannot run here, or a device string that names none; the message is one
    line with the fix."""


def cuda_problem() -> str | None:
    """Why CUDA cannot run in this process, or None when it can."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        torch.cuda.init()
    except (RuntimeError, AssertionError) as err:
        reason = " ".join(str(err).split())
        if "too old" in reason:
            return (
                f"the NVIDIA driver is too old for this torch (built for CUDA {torch.version.cuda}): {reason}"
            )
        if "driver" in reason.lower():
            return f"no NVIDIA driver on this node (torch built for CUDA {torch.version.cuda}): {reason}"
        return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={visible!r}): {reason}"
    if torch.cuda.device_count() < 1:
        return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={visible!r})"
    return None


def parse_device(name: str) -> torch.device:
    """``name`` as a device, refused in one line unless it is cpu, cuda or cuda:N."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise DeviceError(f"unknown device {name!r}; {DEVICE_HELP}")
    return torch.device(name)


def require_device(name: str) -> torch.device:
    """The device ``name`` names, checked to be usable here: CUDA or a :class:`DeviceError`."""
    device = parse_device(name)
    if device.type != "cuda":
        return device
    problem = cuda_problem()
    if problem is not None:
        raise DeviceError(f"device {name!r} was asked for, but {problem}")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f"device {name!r} was asked for, but only {count} CUDA device(s) are visible")
    return device


def pick_device(name: str | None = None) -> torch.device:
    """``name`` or ``COWBOY_DEVICE`` for the library and the CLI: 'cpu', 'cuda', 'cuda:1', or
    'auto' (CUDA when it can run here, else the CPU). An explicit CUDA that cannot run fails."""
    choice = name or os.environ.get("COWBOY_DEVICE", "auto")
    if choice == "auto":
        return torch.device("cuda" if cuda_problem() is None else "cpu")
    return require_device(choice)


def check_same_device(module: torch.nn.Module, device: torch.device | str, *, what: str) -> None:
    """Refuse ``module`` (named ``what``) unless its weights live on ``device``, naming both."""
    weights = next(iter(module.parameters()), None)
    if weights is None:
        return
    expected = torch.device(device)
    found = weights.device
    same = found.type == expected.type and (expected.index is None or found.index in (None, expected.index))
    if not same:
        raise DeviceError(
            f"{what} is on {found}, but the defence runs on {expected}: move it with .to({str(expected)!r}) "
            f"or load the card with execution=Execution(device={str(found)!r})"
        )
