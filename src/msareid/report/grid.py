"""Grids of thumbnails with row labels, written as PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from msareid.data.records import Modality, Record
from msareid.fileio import atomic_path

CELL = (64, 128)  # thumbnail width x height


def image_grid(rows: Sequence[Sequence[Image.Image]], labels: Sequence[str] = (), cell: tuple[int, int] = CELL,
               gap: int = 4, label_width: int = 90) -> Image.Image:
    """Paste each row of images side by side, one row under another, a label left of each row."""
    cols = max((len(r) for r in rows), default=1)
    lw = label_width if labels else 0
    canvas = Image.new("RGB", (lw + cols * (cell[0] + gap) + gap, len(rows) * (cell[1] + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(rows):
        y = gap + i * (cell[1] + gap)
        if labels:
            draw.text((4, y + cell[1] // 2 - 6), labels[i], fill="black")
        for j, img in enumerate(row):
            canvas.paste(img.convert("RGB").resize(cell), (lw + gap + j * (cell[0] + gap), y))
    return canvas


def identity_rows(rgb: Sequence[Record], ir: Sequence[Record], ids: int = 6, per_modality: int = 4
                  ) -> tuple[list[list[Image.Image]], list[str]]:
    """For the first ``ids`` identities present in both modalities: RGB images then IR images."""
    by_pid: dict[int, dict[Modality, list[Record]]] = {}
    for r in list(rgb) + list(ir):
        by_pid.setdefault(r.pid, {Modality.RGB: [], Modality.IR: []})[r.modality].append(r)
    rows, labels = [], []
    for pid in sorted(p for p, m in by_pid.items() if m[Modality.RGB] and m[Modality.IR])[:ids]:
        chosen = by_pid[pid][Modality.RGB][:per_modality] + by_pid[pid][Modality.IR][:per_modality]
        rows.append([Image.open(r.path) for r in chosen])
        labels.append(f"id {pid}\nRGB | IR")
    return rows, labels


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` as PNG atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
