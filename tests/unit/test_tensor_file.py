"""Reading a checkpoint in one pass (mispec/models/tensor_file.py) gives exactly what the
safetensors library gives, verifies the same checksum, and finds the same non-finite tensors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import safe_open, save_file

from mispec.models import checkpoints as ckpt
from mispec.models import tensor_file
from mispec.models.divergence import nonfinite_names


def _mixed() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "b.weight": torch.randn(5, 3, generator=g),
        "a.bias": torch.randn(7, generator=g).to(torch.bfloat16),
        "c.half": torch.randn(2, 2, generator=g).to(torch.float16),
        "d.double": torch.randn(3, generator=g).double(),
        "e.count": torch.arange(6).reshape(2, 3),
        "f.mask": torch.tensor([True, False, True]),
        "g.scalar": torch.tensor(2.5),
        "h.empty": torch.zeros(0, 4),
        "i.byte": torch.tensor([1, 2, 3], dtype=torch.uint8),
    }


def _library(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118


def test_one_pass_read_equals_the_library_and_its_checksum(tmp_path):
    path = tmp_path / "m.safetensors"
    tensors = _mixed()
    ckpt.write_tensors(path, tensors, {"note": "x"})
    ref, ref_meta = _library(path)
    found = tensor_file.read(path)
    assert found is not None
    assert list(found.tensors) == list(ref)  # the library's key order
    assert found.metadata == ref_meta
    for name, value in ref.items():
        got = found.tensors[name]
        assert got.dtype == value.dtype and got.shape == value.shape
        assert torch.equal(got, value)
    assert found.digest() == ckpt.tensors_digest(ref) == ref_meta[ckpt.CHECKSUM_KEY]
    assert found.nonfinite_names() == []
    tensors2, meta2 = ckpt.read_tensors(path)
    assert set(tensors2) == set(tensors) and meta2["note"] == "x"


def test_views_are_writable_and_independent(tmp_path):
    path = tmp_path / "m.safetensors"
    ckpt.write_tensors(path, {"a": torch.ones(4), "b": torch.zeros(4)})
    tensors, _ = ckpt.read_tensors(path)
    tensors["a"].mul_(3)
    assert torch.equal(tensors["a"], torch.full((4,), 3.0))
    assert torch.equal(tensors["b"], torch.zeros(4))


def test_nonfinite_names_match_the_per_tensor_check(tmp_path):
    path = tmp_path / "m.safetensors"
    tensors = _mixed()
    tensors["b.weight"][1, 2] = float("nan")
    tensors["a.bias"][0] = float("inf")
    save_file(tensors, str(path))
    found = tensor_file.read(path)
    assert found is not None
    expected = nonfinite_names(_library(path)[0])
    assert sorted(expected) == ["a.bias", "b.weight"]
    assert sorted(found.nonfinite_names()) == sorted(expected)


@pytest.mark.parametrize("damage", ["truncate", "header", "flip"])
def test_a_damaged_file_is_a_corrupt_checkpoint(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    ckpt.write_tensors(path, {"w": torch.arange(64, dtype=torch.float32)})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-10]
    elif damage == "header":
        data[10:14] = b"\xff\xff\xff\xff"
    else:
        data[-9] ^= 0x40  # one bit of one value: only the checksum sees it
    path.write_bytes(bytes(data))
    with pytest.raises(
        ckpt.CorruptCheckpoint, match="checksum mismatch" if damage == "flip" else "unreadable"
    ):
        ckpt.read_tensors(path)
    assert ckpt.read_tensors(path, verify=False) if damage == "flip" else True


def test_a_dtype_it_does_not_know_is_read_by_the_library(tmp_path):
    path = tmp_path / "m.safetensors"
    tensors = {"w": torch.randn(3), "q": torch.randn(4).to(torch.float8_e4m3fn)}
    ckpt.write_tensors(path, tensors)
    assert tensor_file.read(path) is None
    got, _ = ckpt.read_tensors(path)  # checksum verified per tensor, as before
    assert torch.equal(got["w"], tensors["w"])
    assert torch.equal(got["q"].float(), tensors["q"].float())
