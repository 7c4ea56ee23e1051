import os
import pickle

import pytest
import torch

from cowboy_core.io import (
    CheckpointError,
    atomic_path,
    load_models,
    load_state,
    load_tensors,
    read_metadata,
    save_models,
    save_state,
    write_dataframe,
)
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator


def test_models_round_trip_with_architecture(tmp_path):
    g = DCGANGenerator(channels=1, image_size=28, latent_dim=8, width=8)
    d = DCGANDiscriminator(channels=1, image_size=28, width=8)
    path = tmp_path / "gan.safetensors"
    save_models(path, {"generator": g, "discriminator": d}, {"step": 5})
    models, meta = load_models(path, expect={"generator": {"channels": 1}})
    assert meta["step"] == 5 and read_metadata(path) == meta  # from the header alone
    z = torch.randn(2, 8)
    assert torch.equal(models["generator"].eval()(z), g.eval()(z))


def test_mismatched_architecture_is_refused(tmp_path):
    path = tmp_path / "gan.safetensors"
    save_models(path, {"generator": DCGANGenerator(channels=1, image_size=28, latent_dim=8, width=8)})
    with pytest.raises(CheckpointError, match="channels: checkpoint 1 vs expected 3"):
        load_models(path, expect={"generator": {"channels": 3}})
    with pytest.raises(CheckpointError, match="not the expected model"):
        load_models(path, expect={"discriminator": {}})


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "gan.safetensors"
    save_models(path, {"generator": DCGANGenerator(channels=1, image_size=28, latent_dim=8, width=8)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"gan\.safetensors.*truncated or corrupt"):
        load_tensors(path)
    path.write_bytes(b"\xff" * 16)  # a header length past the end: even the header is unreadable
    with pytest.raises(CheckpointError, match=r"gan\.safetensors.*truncated or corrupt"):
        read_metadata(path)
    with pytest.raises(CheckpointError, match="no such file"):
        read_metadata(tmp_path / "missing.safetensors")
    state = tmp_path / "state.pt"
    save_state(state, {"step": 3, "w": torch.ones(1000)})
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"state\.pt"):
        load_state(state)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker  # type: ignore[attr-defined]
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"step": 1, "x": payload}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        load_state(evil)
    assert not marker.exists()
    torch.save({"step": 1, "x": payload}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_state(tmp_path / "evil2.pt")
    assert not marker.exists()
    # A pickle is not a safetensors file either.
    with pytest.raises(CheckpointError):
        load_tensors(evil)
    assert not marker.exists()


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half a row")
        raise OSError("disk full")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_dataframe_write(tmp_path, monkeypatch):
    import pandas as pd

    frame = pd.DataFrame({"a": range(1000)})
    target = tmp_path / "t.parquet"
    write_dataframe(frame, target)
    before = target.read_bytes()

    def failing_to_parquet(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PAR1 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    with pytest.raises(OSError, match="No space"):
        write_dataframe(frame, target)
    assert target.read_bytes() == before  # the old complete file survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]
