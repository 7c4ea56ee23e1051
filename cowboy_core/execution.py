"""How cleaning runs: exact rewrites of the frozen G and D, memory format, batch size, device.

Nothing here changes what Algorithm 1 computes, only how fast (up to float rounding).

Cleaning runs a forward and an input-gradient backward pass through G and D thousands of
times with fixed weights, so it pays to reshape the network once:

* :func:`fold_batchnorm` fuses each batch norm into the layer before it.
* :func:`subpixel_convs` rewrites the DCGAN's stride-2, 4x4 layers on the image side, where
  one side has only a few channels (the image's), as stride-1 3x3 convolutions around a pixel
  (un)shuffle. oneDNN runs a convolution with 1-3 output channels, and the input gradient of
  one with 1-3 input channels, far below its peak; the rewrite has 2.25x the multiply-adds but
  those layers run 1.8-3.6x faster on CPU (``benchmarks/bench_cleaning.py`` measures it).

Both are exact up to float rounding and leave the original model untouched.
:class:`Execution` applies them once to G and D, with ``channels_last``, the chunk size,
the device and the opt-in ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval
from tqdm import tqdm

from .devices import pick_device
from .memory import Job, memory_budget, plan_rows

__all__ = ["DEFAULT_BATCH", "Execution", "Job", "pad_rows", "pick_device"]

# Layers whose thin side has at most this many channels are rewritten. Measured on CPU: a
# whole 28x28x1 step gains 29%; 3x32x32 steps are within noise (-6% to +3%); rewriting the
# 32-64 channel layers made them 2-3x slower, so those are kept.
THIN_CHANNELS = 4


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Copy of an eval-mode model with each (Conv|ConvTranspose|Linear, BatchNorm) pair fused.

    Exact up to float rounding, and it removes a memory-bound pass per layer.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            layer, bn = module._modules[first], module._modules[second]
            if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d) or not bn.track_running_stats:
                continue
            fused: nn.Module
            if isinstance(layer, nn.ConvTranspose2d):
                fused = fuse_conv_bn_eval(layer, bn, transpose=True)
            elif isinstance(layer, nn.Conv2d):
                fused = fuse_conv_bn_eval(layer, bn)
            elif isinstance(layer, nn.Linear):
                fused = fuse_linear_bn_eval(layer, bn)
            else:
                continue
            module._modules[first] = fused
            module._modules[second] = nn.Identity()
    return folded


def _is_dcgan_stride2(layer: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    return (
        layer.kernel_size == (4, 4)
        and layer.stride == (2, 2)
        and layer.padding == (1, 1)
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and (not isinstance(layer, nn.ConvTranspose2d) or layer.output_padding == (0, 0))
    )


# Tap maps for kernel 4, stride 2, padding 1. For output phase (or input phase) a in {0, 1}
# and 3x3 tap d in {0, 1, 2}, the original 4-tap index, or -1 where the 3x3 kernel is zero.
def _transpose_tap(phase: int, tap: int) -> int:
    k = phase + 3 - 2 * tap
    return k if 0 <= k <= 3 else -1


def _conv_tap(phase: int, tap: int) -> int:
    k = 2 * tap - 1 + phase
    return k if 0 <= k <= 3 else -1


def subpixel_transpose(layer: nn.ConvTranspose2d) -> nn.Sequential:
    """ConvTranspose2d(k=4, s=2, p=1) as Conv2d(3x3, 4x the outputs) then PixelShuffle(2)."""
    weight = layer.weight.detach()  # (in, out, 4, 4)
    c_in, c_out = weight.shape[0], weight.shape[1]
    new = torch.zeros(c_out, 2, 2, c_in, 3, 3, dtype=weight.dtype, device=weight.device)
    for a, b, dy, dx in itertools.product(range(2), range(2), range(3), range(3)):
        ky, kx = _transpose_tap(a, dy), _transpose_tap(b, dx)
        if ky >= 0 and kx >= 0:
            new[:, a, b, :, dy, dx] = weight[:, :, ky, kx].t()
    conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1, bias=layer.bias is not None)
    conv = conv.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(new.reshape(4 * c_out, c_in, 3, 3))
        if layer.bias is not None and conv.bias is not None:
            conv.bias.copy_(layer.bias.detach().repeat_interleave(4))
    return nn.Sequential(conv, nn.PixelShuffle(2))


def subpixel_conv(layer: nn.Conv2d) -> nn.Sequential:
    """Conv2d(k=4, s=2, p=1) as PixelUnshuffle(2) then Conv2d(3x3, 4x the inputs)."""
    weight = layer.weight.detach()  # (out, in, 4, 4)
    c_out, c_in = weight.shape[0], weight.shape[1]
    new = torch.zeros(c_out, c_in, 2, 2, 3, 3, dtype=weight.dtype, device=weight.device)
    for a, b, dy, dx in itertools.product(range(2), range(2), range(3), range(3)):
        ky, kx = _conv_tap(a, dy), _conv_tap(b, dx)
        if ky >= 0 and kx >= 0:
            new[:, :, a, b, dy, dx] = weight[:, :, ky, kx]
    conv = nn.Conv2d(4 * c_in, c_out, 3, padding=1, bias=layer.bias is not None)
    conv = conv.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(new.reshape(c_out, 4 * c_in, 3, 3))
        if layer.bias is not None and conv.bias is not None:
            conv.bias.copy_(layer.bias.detach())
    return nn.Sequential(nn.PixelUnshuffle(2), conv)


def subpixel_convs(model: nn.Module, thin_channels: int = THIN_CHANNELS) -> nn.Module:
    """Copy of ``model`` with its thin stride-2 4x4 layers rewritten (see the module doc).

    A ConvTranspose2d is rewritten when it has at most ``thin_channels`` outputs, a Conv2d
    when it has at most ``thin_channels`` inputs; other layers are left as they are. An input
    with an odd height or width would not match PixelUnshuffle, but the original layer's
    stride-2 output is then ambiguous too, and the DCGANs here use 28 and 32 pixels.
    """
    rewritten = copy.deepcopy(model).eval()
    for parent in list(rewritten.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Conv2d | nn.ConvTranspose2d) or not _is_dcgan_stride2(child):
                continue
            if isinstance(child, nn.ConvTranspose2d) and child.out_channels <= thin_channels:
                setattr(parent, name, subpixel_transpose(child))
            elif isinstance(child, nn.Conv2d) and child.in_channels <= thin_channels:
                setattr(parent, name, subpixel_conv(child))
    return rewritten


# Rows per chunk, from benchmarks/bench_cleaning.py. Every chunk runs at exactly this many rows
# (the last one padded), so a small chunk is what a lone input pays for: on CPU, 64 rows ran
# as fast per row as any size (5,989 sample-steps/s, 256 rows 5,685), and padding one image to
# 64 rows costs a quarter of what padding it to 256 would. A GPU wants many rows to fill its cores.
DEFAULT_BATCH = {"cpu": 64, "cuda": 4096}


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows``: fixed filler, so that every chunk has the
    same shape and a row's result cannot depend on how many neighbours it has."""
    missing = rows - x.shape[0]
    if missing < 0:
        raise ValueError(f"a chunk of {x.shape[0]} rows does not fit in {rows}")
    if missing == 0:
        return x
    return torch.cat([x, x.new_zeros((missing, *x.shape[1:]))])


@dataclass(frozen=True, kw_only=True)
class Execution:
    """How G and D run during cleaning; none of it changes the algorithm's result.

    Args:
        device: where G and D run; inputs are moved there.
        batch_size: rows (inputs x restarts) per forward/backward; bounds memory. None
            picks the fastest measured on the device (:data:`DEFAULT_BATCH`).
        channels_last: use the channels-last memory format for image tensors.
        fold_bn: fuse batch norm into the preceding layers (exact in eval mode).
        subpixel: rewrite the thin stride-2 image layers (:func:`subpixel_convs`).
        compile: run the objective through ``torch.compile`` (CUDA graphs on a GPU). Off
            until a GPU benchmark shows it pays: on CPU it was slower.
        progress: show a progress bar (stderr) over the rows being cleaned.
        job: what the cleaning's chunks are for, which sets what a row costs when CUDA rows
            are planned from the memory budget (:mod:`cowboy_core.memory`): ``Job.UNROLLED``
            plans every descent for the attack's kept graphs, so that a plain cleaning and an
            unrolled one run the same chunks and agree to the bit.
    """

    device: torch.device | str = "cpu"
    batch_size: int | None = None
    channels_last: bool = True
    fold_bn: bool = True
    subpixel: bool = True
    compile: bool = False
    progress: bool = False
    job: Job = Job.CLEANING

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_env(cls, **overrides: Any) -> Execution:
        """Settings of the machine, not the experiment: ``COWBOY_DEVICE`` (default auto),
        ``COWBOY_BATCH_SIZE`` and ``COWBOY_COMPILE=1``, as a profile or job script sets them."""
        batch = os.environ.get("COWBOY_BATCH_SIZE")
        settings: dict[str, Any] = {
            "batch_size": int(batch) if batch else None,
            "compile": os.environ.get("COWBOY_COMPILE") == "1",
        }
        if "device" not in overrides:  # a job's own device wins; COWBOY_DEVICE is not even read
            settings["device"] = pick_device()
        return cls(**(settings | overrides))

    @property
    def rows(self) -> int:
        """Rows per chunk: every forward and backward runs at exactly this many rows."""
        device = torch.device(self.device)
        return self.batch_size or DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])

    def planned_rows(self, row_cost: Callable[[], int], *, minimum: int = 1) -> int:
        """Rows per chunk of a descent: ``batch_size`` when set, the CPU's default, or on CUDA as
        many as the memory budget holds at ``row_cost()`` bytes a row (:func:`plan_rows`)."""
        budget = self.budget()
        rows = self.rows if budget is None else plan_rows(budget, row_cost(), minimum=minimum)
        if rows < minimum:
            raise ValueError(f"a chunk of {rows} rows cannot hold {minimum} restarts")
        return rows

    def budget(self) -> int | None:
        """The memory budget rows are planned with (None where nothing is planned)."""
        device = torch.device(self.device)
        return memory_budget(device) if device.type == "cuda" and self.batch_size is None else None

    def map_rows(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``model`` on ``x`` in padded chunks of :attr:`rows`: a row's output is the same bits
        whatever else is in the call (kernels pick their algorithm by batch size)."""
        out = []
        with self.kernels():
            for start in range(0, x.shape[0], self.rows):
                chunk = x[start : start + self.rows]
                out.append(model(self.format(pad_rows(chunk, self.rows)))[: chunk.shape[0]])
        return torch.cat(out)

    def prepare(self, model: nn.Module) -> nn.Module:
        """A frozen, rewritten copy of ``model`` on the device; the original is untouched."""
        model = model.eval()
        model = fold_batchnorm(model) if self.fold_bn else copy.deepcopy(model)
        if self.subpixel:
            model = subpixel_convs(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def progress_bar(self, total: int, label: str) -> tqdm[Any]:
        """A progress bar over ``total`` inputs on stderr, silent unless :attr:`progress`."""
        return tqdm(
            total=total,
            desc=label,
            unit="input",
            file=sys.stderr,
            disable=not self.progress,
            mininterval=5.0,
            ascii=True,
        )

    def kernels(self) -> contextlib.AbstractContextManager[Any]:
        """Where every padded chunk runs (:meth:`map_rows`, the cleaning's descent): on CUDA,
        cuDNN's deterministic algorithms only, because the others (atomics in the backward
        pass, autotuned choices) change an input's bits with what else is in its chunk
        (benchmarks/gpu_check.sh caught it on an H200)."""
        if torch.device(self.device).type != "cuda":
            return contextlib.nullcontext()
        cudnn = torch.backends.cudnn
        return cudnn.flags(
            enabled=cudnn.enabled, benchmark=False, deterministic=True, allow_tf32=cudnn.allow_tf32
        )

    def format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the device, in the memory format the prepared models expect."""
        x = x.to(self.device)
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def wrap(self, objective: Callable[..., Any]) -> Callable[..., Any]:
        """``objective`` itself, or compiled; on CUDA "reduce-overhead" replays each step as a
        CUDA graph, because kernel launches, not FLOPs, bound the DCGAN's small layers there."""
        if not self.compile:
            return objective
        device = torch.device(self.device)
        compiled = torch.compile(objective, mode="reduce-overhead" if device.type == "cuda" else "default")

        def step(*args: Any) -> Any:
            torch.compiler.cudagraph_mark_step_begin()
            return compiled(*args)

        return step
