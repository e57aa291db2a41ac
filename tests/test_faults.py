"""Faults handled at their root, each through a real command: a disk that fills while a checkpoint
is written (inside torch's serializer), gallery file names that are not UTF-8, a checkpoint that
a weights-only load refuses, and GPU errors whose advice must name an option of the command in use."""

from __future__ import annotations

import json
import os
import pickle
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from msareid.cli import main
from msareid.errors import UserError
from msareid.fileio import atomic_path, display_path
from msareid.training.checkpoint import load_checkpoint, save_atomic


def _one_line(capsys: pytest.CaptureFixture, *fragments: str) -> str:
    err = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("warning:")]
    assert len(err) == 1 and err[0].startswith("msareid "), err
    for f in fragments:
        assert f in err[0], (f, err[0])
    return err[0]


class _FillingFile:
    """A file on a disk with ``room`` bytes left: writes beyond it fail with ENOSPC, as the kernel's would."""

    def __init__(self, handle, room: int) -> None:
        self._handle, self._room = handle, room

    def write(self, data) -> int:
        size = len(memoryview(data).cast("B"))
        if size > self._room:
            raise OSError(28, "No space left on device")
        self._room -= size
        return self._handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def test_the_serializers_own_error_becomes_the_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open
    monkeypatch.setattr("msareid.fileio.open", lambda f, mode="r": _FillingFile(real_open(f, mode), 5000),
                        raising=False)
    target = tmp_path / "run" / "last.pt"
    target.parent.mkdir()
    target.write_bytes(b"the previous checkpoint")
    with pytest.raises(OSError) as info:
        save_atomic({"model": {"w": torch.zeros(100_000)}, "config": {}}, target)
    assert info.value.errno == 28 and info.value.filename == str(target.parent)
    assert isinstance(info.value.__cause__, RuntimeError)  # what torch.save itself raised
    assert target.read_bytes() == b"the previous checkpoint" and os.listdir(target.parent) == ["last.pt"]


def test_a_writer_that_hides_enospc_is_reported_as_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    def library_write(path: Path) -> None:  # a library that fails with an error type of its own
        path.write_bytes(b"half")
        raise RuntimeError("file write failed")

    with pytest.raises(RuntimeError, match="file write failed"):  # room on the disk: not a storage error
        with atomic_path(tmp_path / "out.onnx") as tmp:
            library_write(tmp)
    full = shutil.disk_usage(tmp_path)._replace(free=4096)
    monkeypatch.setattr("msareid.fileio.shutil.disk_usage", lambda _: full)
    with pytest.raises(OSError, match="No space left on device") as info:
        with atomic_path(tmp_path / "out.onnx") as tmp:
            library_write(tmp)
    assert info.value.filename == str(tmp_path) and os.listdir(tmp_path) == []


def test_a_full_disk_while_training_writes_a_checkpoint(synth_sysu: Path, tmp_path: Path, tiny_overrides,
                                                       capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real_open, checkpoints = open, []

    def disk_fills_at_the_second_checkpoint(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).name.startswith(".last.pt"):
            checkpoints.append(file)
            if len(checkpoints) == 2:
                return _FillingFile(handle, 20_000)  # the model alone is larger
        return handle

    monkeypatch.setattr("msareid.fileio.open", disk_fills_at_the_second_checkpoint, raising=False)
    run = tmp_path / "run"
    argv = ["train", "--config", "configs/tiny.toml", "--out", str(run), "--no-progress"]
    for o in tiny_overrides(synth_sysu, tmp_path / "cache"):
        argv += ["--set", o]
    assert main(argv) == 2
    _one_line(capsys, f"cannot use {run}:", "No space left on device", "free some space or write elsewhere")
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the first epoch's checkpoint, intact
    assert not [p for p in os.listdir(run) if ".tmp" in p]


def test_gallery_file_names_that_are_not_utf8(tiny_checkpoint: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "gallery"
    folder.mkdir()
    names = [b"caf\xe9.jpg", b"\xff\xfe.png", b"plain.jpg"]  # Latin-1 and random bytes beside UTF-8
    for i, raw in enumerate(names):
        Image.fromarray(np.full((32, 16, 3), 60 * i, np.uint8)).save(os.fsdecode(os.fsencode(folder) + b"/" + raw))
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(folder), "--out",
                 str(tmp_path / "g.npz")]) == 0
    query = str(folder / "plain.jpg")
    search = ["search", "--checkpoint", str(tiny_checkpoint), "--gallery", str(tmp_path / "g.npz"), "--query", query,
              "--topk", "3"]
    capsys.readouterr()
    assert main([*search, "--html", str(tmp_path / "hits.html")]) == 0
    printed = capsys.readouterr().out
    assert "caf\\xe9.jpg" in printed and "\\xff\\xfe.png" in printed  # printable in any locale
    page = (tmp_path / "hits.html").read_text(encoding="utf-8")  # valid UTF-8
    assert "caf\\xe9.jpg" in page and "\\xff\\xfe.png" in page
    linked = {urllib.parse.unquote_to_bytes(u.removeprefix("file://")) for u in
              (part.split('"', 1)[0] for part in page.split('<a href="')[1:])}
    assert {os.fsencode(folder) + b"/" + raw for raw in names} <= linked  # each link names the very file
    assert page.count('src="data:image/jpeg;base64,') == 4  # query + 3 matches, thumbnails read from the files
    assert main([*search, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    paths = {os.fsencode(m["path"]) for m in found["results"][0]["matches"]}
    assert paths == {os.fsencode(folder) + b"/" + raw for raw in names}  # the JSON keeps the exact bytes
    assert display_path(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"


class _Code:
    """A class that a pickled checkpoint would instantiate on load."""


def test_a_checkpoint_that_a_weights_only_load_refuses(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      tiny_overrides, synth_sysu: Path) -> None:
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "config": {}, "extra": _Code()}, unsafe)
    assert main(["evaluate", "--checkpoint", str(unsafe)]) == 2
    line = _one_line(capsys, str(unsafe), "was refused", "_Code", "weights_only=True")
    assert "\t" not in line and "\x1b" not in line
    with pytest.raises(UserError) as info:  # --debug shows the rest: torch's own explanation is chained
        load_checkpoint(unsafe)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    argv = ["train", "--config", "configs/tiny.toml", "--out", str(tmp_path / "run"), "--set",
            f"model.pretrained={unsafe}"]
    for o in tiny_overrides(synth_sysu, tmp_path / "cache"):
        argv += ["--set", o]
    assert main(argv) == 2
    _one_line(capsys, "model.pretrained:", str(unsafe), "was refused")


@pytest.mark.parametrize(("command", "option"), [("extract", "--device cpu"), ("search", "--device cpu"),
                                                 ("evaluate", "--device cpu"), ("train", "--set train.device=cpu")])
def test_device_advice_names_an_option_of_the_command(command: str, option: str, tiny_checkpoint: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch, synth_sysu: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(image)
    ckpt = str(tiny_checkpoint)
    argv = {"extract": ["extract", "--checkpoint", ckpt, "--images", str(tmp_path), "--out", str(tmp_path / "g.npz"),
                        "--device", "cuda"],
            "search": ["search", "--checkpoint", ckpt, "--gallery", str(tmp_path / "g.npz"), "--query", str(image),
                       "--device", "cuda"],
            "evaluate": ["evaluate", "--checkpoint", ckpt, "--root", str(synth_sysu), "--device", "cuda"],
            "train": ["train", "--config", "configs/tiny.toml", "--out", str(tmp_path / "run"),
                      "--set", "train.device=cuda"]}[command]
    if command == "search":
        assert main(["extract", "--checkpoint", ckpt, "--images", str(tmp_path), "--out", str(tmp_path / "g.npz")]) == 0
        capsys.readouterr()
    assert main(argv) == 2
    line = _one_line(capsys, "'cuda' was asked for but no CUDA device is available", f"run on the CPU with {option}")
    assert ("--set" in line) == (command == "train")


def test_a_gpu_out_of_memory_is_one_line_with_the_commands_own_options(tiny_checkpoint: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 1.00 GiB free)\nmore")

    monkeypatch.setattr("msareid.extractor.FeatureExtractor.__call__", out_of_memory)
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(tmp_path), "--out",
                 str(tmp_path / "g.npz")]) == 2
    _one_line(capsys, "the GPU ran out of memory", "Tried to allocate 2.00 GiB", "run on the CPU with --device cpu")
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob(".*tmp*"))
