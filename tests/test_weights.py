"""Pretrained weights: download once with a hash check, clear errors offline, brain-MRI U-Net loading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from medico.models import AttentionUNet, UNet
from medico.weights import WeightsError, WeightsSource, fetch_weights, load_matching, read_state_dict
from tests.http_server import closed_port_url, serve_folder


@pytest.fixture
def brain_mri_like(tmp_path: Path) -> Path:
    """A checkpoint shaped like unet-e012d006.pt: a plain state_dict of the U-Net, saved by torch.save."""
    torch.manual_seed(1)
    path = tmp_path / "served" / "unet-e012d006.pt"
    path.parent.mkdir()
    torch.save(UNet().state_dict(), path)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_is_verified_cached_and_not_repeated(
    brain_mri_like: Path, workspace: Path
) -> None:
    with serve_folder(brain_mri_like.parent) as (base, requests):
        source = WeightsSource(url=f"{base}/unet-e012d006.pt", sha256=_sha256(brain_mri_like))
        seen: list[int] = []
        first = fetch_weights(source, progress=lambda done, total: seen.append(done))
        second = fetch_weights(source)
    assert first == second == workspace / ".cache" / "weights" / "unet-e012d006.pt"
    assert first.read_bytes() == brain_mri_like.read_bytes()
    assert len(requests) == 1, "the second call must use the cache"
    assert seen and seen[-1] == brain_mri_like.stat().st_size


def test_hash_prefix_in_torch_hub_style_is_accepted(brain_mri_like: Path, workspace: Path) -> None:
    with serve_folder(brain_mri_like.parent) as (base, _):
        path = fetch_weights(WeightsSource(url=f"{base}/unet-e012d006.pt", sha256=_sha256(brain_mri_like)[:8]))
    assert path.is_file()


def test_wrong_hash_deletes_the_file_and_fails_clearly(brain_mri_like: Path, workspace: Path) -> None:
    with serve_folder(brain_mri_like.parent) as (base, _):
        with pytest.raises(WeightsError, match="SHA-256 mismatch"):
            fetch_weights(WeightsSource(url=f"{base}/unet-e012d006.pt", sha256="0" * 64))
    assert list((workspace / ".cache" / "weights").iterdir()) == []


def test_no_network_says_where_to_put_the_file(workspace: Path) -> None:
    with pytest.raises(WeightsError) as error:
        fetch_weights(WeightsSource(url=closed_port_url("unet-e012d006.pt"), sha256="e012d006"))
    assert str(workspace / ".cache" / "weights" / "unet-e012d006.pt") in str(error.value)


def test_missing_local_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="nothere.pt does not exist"):
        fetch_weights(WeightsSource(path=tmp_path / "nothere.pt"))


def test_brain_mri_checkpoint_loads_strictly_into_unet(brain_mri_like: Path) -> None:
    model = UNet()
    model.load_state_dict(read_state_dict(brain_mri_like), strict=True)
    torch.testing.assert_close(model.encoder1.enc1conv1.weight, torch.load(brain_mri_like)["encoder1.enc1conv1.weight"])


def test_brain_mri_checkpoint_fills_attention_unet_except_the_gates(brain_mri_like: Path) -> None:
    model = AttentionUNet()
    state = read_state_dict(brain_mri_like)
    report = load_matching(model, state)
    assert set(report.loaded) == set(state)
    assert report.skipped == ()
    assert report.new and all(key.startswith("gates.") for key in report.new)
    torch.testing.assert_close(model.decoder1.dec1norm2.running_var, state["decoder1.dec1norm2.running_var"])


def test_mismatched_shapes_are_skipped_not_reshaped(brain_mri_like: Path) -> None:
    report = load_matching(UNet(init_features=16), read_state_dict(brain_mri_like))
    assert "encoder1.enc1conv1.weight" in report.skipped
    assert "encoder1.enc1conv1.weight" in report.new


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": Path("/etc/passwd")}, path)
    with pytest.raises(WeightsError, match="evil.pt"):
        read_state_dict(path)
