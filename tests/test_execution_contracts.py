"""What cowboy_core.execution promises beyond exactness (tests/test_execution.py): which layers
it rewrites, that it never touches the caller's model, how it reads the machine's settings,
and what it asks of CUDA and torch.compile. The third mutation run found each of these
untested (docs/quality/mutation.md)."""

import contextlib

import pytest
import torch
import tqdm.std
from torch import nn

from cowboy_core import Execution, devices
from cowboy_core.execution import (
    _is_dcgan_stride2,
    fold_batchnorm,
    pad_rows,
    pick_device,
    subpixel_conv,
    subpixel_convs,
    subpixel_transpose,
)

from .conftest import refusal


class _Wrapped(nn.Module):
    """Batch norms inside a Sequential inside a plain module, after layers that cannot take
    them: folding must walk past each of those to the pair it can fold."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _with_statistics(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 6, 6))
    return model.eval()


def test_folding_walks_past_pairs_it_cannot_fold_to_the_one_it_can():
    model = _with_statistics(_Wrapped())
    folded = fold_batchnorm(model)
    assert isinstance(folded.body[1], nn.BatchNorm2d)  # after a ReLU: nothing to fold into
    assert isinstance(folded.body[3], nn.Identity)  # after the Conv2d: folded
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


def _conv(**changes: object) -> nn.Conv2d:
    return nn.Conv2d(2, 2, **({"kernel_size": 4, "stride": 2, "padding": 1} | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("layer", "rewritable"),
    [
        (_conv(), True),
        (nn.ConvTranspose2d(2, 2, 4, 2, 1), True),
        (_conv(kernel_size=3), False),
        (_conv(stride=1), False),
        (_conv(padding=0), False),
        (_conv(dilation=2), False),
        (_conv(groups=2), False),
        (_conv(padding_mode="reflect"), False),
        (nn.ConvTranspose2d(2, 2, 4, 2, 1, output_padding=1), False),
    ],
    ids=["dcgan", "dcgan-transpose", "k3", "s1", "p0", "dilated", "grouped", "reflect", "output-padding"],
)
def test_only_the_dcgan_stride2_shape_is_rewritten(layer, rewritable):
    assert _is_dcgan_stride2(layer) is rewritable


@pytest.mark.parametrize("bias", [True, False])
def test_subpixel_layers_are_exact_in_float64_with_or_without_bias(bias):
    """In float64 the rewrite must keep float64 weights (a float32 copy errs by about 1e-8)
    and add no bias the original lacks."""
    torch.manual_seed(0)
    # Initialised in float64, not cast from float32: the weights then carry bits that a float32
    # copy on the way would drop.
    transpose = nn.ConvTranspose2d(5, 3, 4, 2, 1, bias=bias, dtype=torch.float64)
    x = torch.randn(2, 5, 7, 7, dtype=torch.float64)
    assert torch.allclose(subpixel_transpose(transpose)(x), transpose(x), rtol=0, atol=1e-12)
    conv = nn.Conv2d(3, 5, 4, 2, 1, bias=bias, dtype=torch.float64)
    x = torch.randn(2, 3, 14, 14, dtype=torch.float64)
    assert torch.allclose(subpixel_conv(conv)(x), conv(x), rtol=0, atol=1e-12)


def test_a_layer_exactly_as_thin_as_the_limit_is_rewritten_and_the_original_kept():
    model = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.Conv2d(4, 8, 4, 2, 1))
    rewritten = subpixel_convs(model, thin_channels=4)
    assert isinstance(rewritten[0], nn.Sequential) and isinstance(rewritten[0][1], nn.PixelShuffle)
    assert isinstance(rewritten[1], nn.Sequential) and isinstance(rewritten[1][0], nn.PixelUnshuffle)
    assert isinstance(model[0], nn.ConvTranspose2d) and isinstance(model[1], nn.Conv2d)


def test_prepare_folds_only_when_asked_and_leaves_the_callers_model_alone():
    model = _with_statistics(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)))
    folded = Execution(fold_bn=True).prepare(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    kept = Execution(fold_bn=False, subpixel=False).prepare(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in kept.modules())
    for prepared in (folded, kept):
        assert all(not p.requires_grad for p in prepared.parameters())
        assert prepared[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.requires_grad for p in model.parameters())
    assert model[0].weight.is_contiguous() and not model[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )


def test_format_makes_only_images_channels_last_and_only_when_asked():
    images, rows = torch.randn(2, 3, 4, 4), torch.randn(2, 5)
    assert Execution(channels_last=True).format(images).is_contiguous(memory_format=torch.channels_last)
    assert Execution(channels_last=False).format(images).is_contiguous()
    assert torch.equal(Execution(channels_last=True).format(rows), rows)


def test_execution_settings_and_their_refusals():
    assert Execution(device="cpu").device == torch.device("cpu")
    assert Execution(batch_size=1).rows == 1
    assert refusal(ValueError, Execution, batch_size=0) == "batch_size must be >= 1, got 0"
    assert refusal(ValueError, pad_rows, torch.zeros(5, 2), 3) == "a chunk of 5 rows does not fit in 3"


def test_the_device_comes_from_the_argument_then_cowboy_device_then_auto(monkeypatch):
    monkeypatch.delenv("COWBOY_DEVICE", raising=False)
    monkeypatch.setattr(devices, "cuda_problem", lambda: "no CUDA device is visible")
    assert pick_device() == torch.device("cpu") and pick_device("auto") == torch.device("cpu")
    assert refusal(devices.DeviceError, pick_device, "cuda:1") == (
        "device 'cuda:1' was asked for, but no CUDA device is visible"
    )
    monkeypatch.setattr(devices, "cuda_problem", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device() == torch.device("cuda") and pick_device("cuda:1") == torch.device("cuda:1")
    assert refusal(devices.DeviceError, pick_device, "cuda:2") == (
        "device 'cuda:2' was asked for, but only 2 CUDA device(s) are visible"
    )
    monkeypatch.setenv("COWBOY_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu") and pick_device("cuda") == torch.device("cuda")


def test_from_env_reads_the_machines_settings_and_overrides_win(monkeypatch):
    monkeypatch.setenv("COWBOY_DEVICE", "cpu")
    for name in ("COWBOY_BATCH_SIZE", "COWBOY_COMPILE"):
        monkeypatch.delenv(name, raising=False)
    assert Execution.from_env() == Execution(device="cpu", batch_size=None, compile=False)
    monkeypatch.setenv("COWBOY_BATCH_SIZE", "16")
    monkeypatch.setenv("COWBOY_COMPILE", "1")
    assert Execution.from_env() == Execution(device="cpu", batch_size=16, compile=True)
    assert Execution.from_env(batch_size=8, compile=False) == Execution(device="cpu", batch_size=8)


def test_the_progress_bar_writes_plain_ascii_to_stderr_only_when_asked(capsys):
    bar = Execution(progress=True).progress_bar(10, "cleaning")
    bar.update(3)
    bar.close()
    shown = capsys.readouterr()
    assert shown.out == "" and "cleaning:" in shown.err and "3/10" in shown.err
    assert "input/s" in shown.err and "#" in shown.err and "\u2588" not in shown.err  # ascii for logs
    quiet = Execution(progress=False).progress_bar(10, "cleaning")
    quiet.update(3)
    quiet.close()
    assert capsys.readouterr().err == ""


def test_the_progress_bar_redraws_at_most_every_five_seconds_to_keep_job_logs_short(capsys, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    bar = Execution(progress=True).progress_bar(12, "cleaning")
    for _ in range(12):
        clock[0] += 1.0
        bar.update(1)
    bar.close()
    shown = capsys.readouterr().err
    drawn = [count for count in range(13) if f" {count}/12 " in shown]
    assert drawn == [0, 5, 10, 12]  # the start, every 5 s, and the end


def test_cuda_chunks_run_cudnns_deterministic_kernels_and_cpu_chunks_change_nothing():
    assert isinstance(Execution(device="cpu").kernels(), contextlib.nullcontext)
    cudnn = torch.backends.cudnn
    # A user's own choices, opposite to the defaults of cudnn.flags: benchmarking on (the
    # chunks must turn it off) and TF32 off (the chunks must leave it off).
    with cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=False):
        with Execution(device="cuda").kernels():  # entering sets flags only: no GPU is needed
            assert (cudnn.enabled, cudnn.allow_tf32) == (True, False)
            assert cudnn.benchmark is False and cudnn.deterministic is True
        assert (cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32) == (
            True,
            True,
            False,
            False,
        )


@pytest.mark.parametrize(("device", "mode"), [("cpu", "default"), ("cuda", "reduce-overhead")])
def test_compile_replays_cuda_graphs_on_a_gpu_and_compiles_plainly_elsewhere(monkeypatch, device, mode):
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
    steps: list[str] = []

    def fake_compile(*args: object, **kwargs: object):
        calls.append((args, kwargs))
        return lambda *inputs: ("compiled", inputs)

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append("step"))

    def objective(z):
        return z

    assert Execution(compile=False).wrap(objective) is objective
    wrapped = Execution(device=device, compile=True).wrap(objective)
    assert calls == [((objective,), {"mode": mode})]
    assert wrapped(1, 2) == ("compiled", (1, 2)) and steps == ["step"]
