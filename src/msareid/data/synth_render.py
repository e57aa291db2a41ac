"""Rendering of synthetic people in RGB and in two infrared modalities: near-infrared and thermal.

Each identity has a fixed appearance: body shape, skin, hair, clothing colours and patterns,
accessories, a near-infrared signature (how much IR light each garment reflects) and a thermal
signature (how warm each garment looks). Each image varies pose, facing, scale, position,
background and camera. The RGB rendering shows colours. Both IR renderings lose colour:

- ``nir`` models SYSU-MM01's (and LLCM's) IR cameras, which see reflected light from an active IR
  illuminator: brightness is set by material and dye, not by visible colour (two garments of one
  colour may differ, two colours may look alike), texture and pattern contrast are kept, the light
  falls off away from the lamp and the background stays darker than the lit person.
- ``thermal`` models RegDB's thermal camera, which sees emitted heat: skin warm, clothing by
  insulation, a blurrier, noisier sensor.

Shape, pattern layout and accessories are shared by every modality, so matching across
modalities needs modality-invariant cues.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MODALITIES = ("rgb", "nir", "thermal")
THERMAL_ROWS = 128  # the frame height the thermal camera's blur was drawn for (RegDB's)
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "logo")
LOWERS = ("trousers", "shorts", "skirt")
ACCESSORIES = ("none", "backpack", "bag_left", "bag_right", "hat")


@dataclass(frozen=True)
class Identity:
    """The fixed appearance of one synthetic person."""

    height: float  # fraction of the image height at scale 1
    width: float  # shoulder width, fraction of the image width
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    upper: tuple[int, int, int]
    pattern: str
    pattern_colour: tuple[int, int, int]
    lower: tuple[int, int, int]
    lower_kind: str
    shoes: tuple[int, int, int]
    accessory: str
    accessory_colour: tuple[int, int, int]
    heat_upper: float  # thermal intensities in [0, 1]
    heat_pattern: float
    heat_lower: float
    heat_skin: float
    heat_accessory: float
    nir_skin: float = 0.7  # near-infrared reflectances in [0, 1]
    nir_hair: float = 0.35
    nir_upper: float = 0.6
    nir_pattern: float = 0.3
    nir_lower: float = 0.6
    nir_shoes: float = 0.3
    nir_accessory: float = 0.5


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(20, 236, size=3))  # type: ignore[return-value]


def _luma(c: tuple[int, int, int]) -> float:
    return (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255.0


def _heat(rng: np.random.Generator, colour: tuple[int, int, int]) -> float:
    # Thermal brightness of a garment: half its material, half how dark (absorbent) it is.
    return float(np.clip(0.5 * rng.uniform(0.2, 0.8) + 0.5 * (1.0 - _luma(colour)), 0.05, 0.95))


def _contrast(base: float, other: float, least: float = 0.25) -> float:
    """``other`` moved away from ``base`` so that a pattern stays visible to the thermal camera."""
    if abs(other - base) >= least:
        return other
    return float(np.clip(base - least if base > 0.5 else base + least, 0.05, 0.95))


def _nir(rng: np.random.Generator, colour: tuple[int, int, int]) -> float:
    """Near-infrared reflectance of a dyed material: most dyes are transparent to NIR light (the
    fibre's own reflectance shows), a few (carbon-based blacks, some blues) absorb it."""
    material = rng.uniform(0.45, 0.9)
    if rng.random() < 0.3:  # an absorbing dye: darker, and more so the darker the colour
        material *= 0.25 + 0.6 * _luma(colour)
    return float(np.clip(material, 0.05, 0.95))


def _nir_signature(seed: int, pid: int, ident_colours: dict[str, tuple[int, int, int]]) -> dict[str, float]:
    rng = np.random.default_rng([seed, pid, 8])  # its own stream: RGB and thermal stay as they were
    upper = _nir(rng, ident_colours["upper"])
    return {
        "nir_skin": float(rng.uniform(0.6, 0.85)),  # skin reflects NIR well, whatever its colour
        "nir_hair": float(rng.uniform(0.2, 0.5)),
        "nir_upper": upper,
        "nir_pattern": _contrast(upper, _nir(rng, ident_colours["pattern"]), least=0.18),
        "nir_lower": _nir(rng, ident_colours["lower"]),
        "nir_shoes": float(rng.uniform(0.1, 0.4)),
        "nir_accessory": _nir(rng, ident_colours["accessory"]),
    }


def make_identity(seed: int, pid: int) -> Identity:
    """The appearance of person ``pid`` for dataset seed ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, pid, 7])
    skin_base = np.array([224, 172, 140]) * rng.uniform(0.45, 1.1)
    upper, lower, pattern_colour = _colour(rng), _colour(rng), _colour(rng)
    accessory_colour = _colour(rng)
    heat_upper = _heat(rng, upper)
    return Identity(
        height=float(rng.uniform(0.78, 0.94)),
        width=float(rng.uniform(0.30, 0.46)),
        skin=tuple(int(v) for v in np.clip(skin_base, 30, 255)),  # type: ignore[arg-type]
        hair=tuple(int(v) for v in rng.integers(10, 120, size=3)),  # type: ignore[arg-type]
        long_hair=bool(rng.random() < 0.4),
        upper=upper,
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        pattern_colour=pattern_colour,
        lower=lower,
        lower_kind=LOWERS[int(rng.integers(len(LOWERS)))],
        shoes=_colour(rng),
        accessory=ACCESSORIES[int(rng.integers(len(ACCESSORIES)))],
        accessory_colour=accessory_colour,
        heat_upper=heat_upper,
        heat_pattern=_contrast(heat_upper, _heat(rng, pattern_colour)),
        heat_lower=_heat(rng, lower),
        heat_skin=float(rng.uniform(0.82, 1.0)),
        heat_accessory=float(rng.uniform(0.05, 0.35)),  # bags are cold objects
        **_nir_signature(seed, pid, {"upper": upper, "pattern": pattern_colour, "lower": lower,
                                     "accessory": accessory_colour}),
    )


def _paints(ident: Identity, modality: str) -> dict[str, object]:
    if modality == "rgb":
        return {
            "skin": ident.skin, "hair": ident.hair, "upper": ident.upper,
            "pattern": ident.pattern_colour, "lower": ident.lower, "shoes": ident.shoes,
            "accessory": ident.accessory_colour,
        }
    if modality == "nir":
        grey = {
            "skin": ident.nir_skin, "hair": ident.nir_hair, "upper": ident.nir_upper,
            "pattern": ident.nir_pattern, "lower": ident.nir_lower, "shoes": ident.nir_shoes,
            "accessory": ident.nir_accessory,
        }
        return {k: int(255 * v) for k, v in grey.items()}
    grey = {
        "skin": ident.heat_skin, "hair": 0.45 * ident.heat_skin, "upper": ident.heat_upper,
        "pattern": ident.heat_pattern, "lower": ident.heat_lower, "shoes": 0.3,
        "accessory": ident.heat_accessory,
    }
    return {k: int(255 * v) for k, v in grey.items()}


def _background(rng: np.random.Generator, size: tuple[int, int], camera: int, infrared: bool) -> Image.Image:
    h, w = size
    scene = np.random.default_rng([camera, 99])  # each camera has its own fixed scene palette
    if infrared:
        top, bottom = scene.uniform(0.1, 0.35, size=1), scene.uniform(0.15, 0.45, size=1)
    else:
        top, bottom = scene.uniform(0.25, 0.9, size=3), scene.uniform(0.15, 0.7, size=3)
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    img = (top * (1 - ramp) + bottom * ramp) * rng.uniform(0.8, 1.2)
    img = np.broadcast_to(img, (h, w, img.shape[-1])).copy()
    for _ in range(int(rng.integers(0, 3))):  # clutter: doors, walls, cars, poles
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = min(h, y0 + int(rng.integers(h // 8, h // 2))), min(w, x0 + int(rng.integers(w // 8, w // 2)))
        img[y0:y1, x0:x1] = rng.uniform(0.05, 0.9 if not infrared else 0.5, size=img.shape[-1])
    arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(arr[..., 0] if infrared else arr, "L" if infrared else "RGB")


def _draw_person(draw: ImageDraw.ImageDraw, ident: Identity, paint: dict[str, object],
                 size: tuple[int, int], rng: np.random.Generator) -> None:
    h, w = size
    scale = rng.uniform(0.85, 1.05)
    facing = int(rng.integers(3))  # 0 front, 1 back, 2 side
    phase = rng.uniform(-1.0, 1.0)  # walking phase: legs and arms swing
    ph = h * ident.height * scale
    cx = w / 2 + rng.uniform(-0.1, 0.1) * w
    top = (h - ph) / 2 + rng.uniform(-0.05, 0.05) * h
    sw = w * ident.width * scale * (0.62 if facing == 2 else 1.0)
    hr = ph * 0.07
    neck, hip, foot = top + 2 * hr, top + 0.52 * ph, top + ph
    limb = max(2, int(sw * 0.2))
    # legs, then the lower garment over them
    spread = phase * sw * 0.35
    for sgn in (-1, 1):
        x_hip, x_foot = cx + sgn * sw * 0.2, cx + sgn * (sw * 0.2 + spread * sgn)
        draw.line([(x_hip, hip), (x_foot, foot)], fill=paint["skin"], width=limb)
        knee = hip + (foot - hip) * (0.45 if ident.lower_kind == "shorts" else 0.95)
        xk = x_hip + (x_foot - x_hip) * (knee - hip) / (foot - hip)
        if ident.lower_kind != "skirt":
            draw.line([(x_hip, hip), (xk, knee)], fill=paint["lower"], width=limb + 1)
        draw.ellipse([x_foot - limb, foot - limb * 0.8, x_foot + limb, foot + limb * 0.4], fill=paint["shoes"])
    if ident.lower_kind == "skirt":
        draw.polygon([(cx - sw * 0.4, hip), (cx + sw * 0.4, hip), (cx + sw * 0.6, hip + 0.22 * ph),
                      (cx - sw * 0.6, hip + 0.22 * ph)], fill=paint["lower"])
    # torso with its pattern
    box = (cx - sw / 2, neck, cx + sw / 2, hip)
    draw.polygon([(box[0], neck), (box[2], neck), (cx + sw * 0.4, hip), (cx - sw * 0.4, hip)], fill=paint["upper"])
    _pattern(draw, ident.pattern, box, paint["pattern"])
    # arms swing against the legs
    for sgn in (-1, 1):
        x0, hand_x = cx + sgn * sw * 0.5, cx + sgn * sw * 0.55 - sgn * phase * sw * 0.3
        elbow = (x0 + (hand_x - x0) * 0.5, neck + (hip - neck) * 0.55)
        draw.line([(x0, neck + limb / 2), elbow], fill=paint["upper"], width=limb)
        draw.line([elbow, (hand_x, hip + 0.05 * ph)], fill=paint["skin"], width=max(2, limb - 1))
    # head and hair
    head = [cx - hr, top, cx + hr, top + 2 * hr]
    if ident.long_hair:
        draw.rectangle([cx - hr * 1.1, top + hr, cx + hr * 1.1, neck + hr * 1.2], fill=paint["hair"])
    draw.ellipse(head, fill=paint["hair"] if facing == 1 else paint["skin"])
    draw.chord([cx - hr, top, cx + hr, top + 1.4 * hr], 180, 360, fill=paint["hair"])
    _accessory(draw, ident.accessory, facing, cx, sw, neck, hip, hr, top, paint["accessory"])


def _pattern(draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, ...], fill: object) -> None:
    x0, y0, x1, y1 = box
    x0, x1 = x0 + (x1 - x0) * 0.12, x1 - (x1 - x0) * 0.12
    if kind == "hstripes":
        step = (y1 - y0) / 6
        for i in range(0, 6, 2):
            draw.rectangle([x0, y0 + i * step, x1, y0 + (i + 1) * step], fill=fill)
    elif kind == "vstripes":
        step = (x1 - x0) / 5
        for i in range(0, 5, 2):
            draw.rectangle([x0 + i * step, y0, x0 + (i + 1) * step, y1], fill=fill)
    elif kind == "checks":
        sx, sy = (x1 - x0) / 4, (y1 - y0) / 4
        for i in range(4):
            for j in range(4):
                if (i + j) % 2 == 0:
                    draw.rectangle([x0 + i * sx, y0 + j * sy, x0 + (i + 1) * sx, y0 + (j + 1) * sy], fill=fill)
    elif kind == "logo":
        cx, cy, r = (x0 + x1) / 2, y0 + (y1 - y0) * 0.4, (x1 - x0) * 0.25
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)


def _accessory(draw: ImageDraw.ImageDraw, kind: str, facing: int, cx: float, sw: float,
               neck: float, hip: float, hr: float, top: float, fill: object) -> None:
    if kind == "backpack":
        if facing == 1:
            draw.rectangle([cx - sw * 0.35, neck + hr * 0.3, cx + sw * 0.35, hip - hr * 0.5], fill=fill)
        else:  # straps from the front, the pack's edge from the side
            draw.line([(cx - sw * 0.25, neck), (cx - sw * 0.25, hip - hr)], fill=fill, width=max(1, int(sw * 0.08)))
            draw.line([(cx + sw * 0.25, neck), (cx + sw * 0.25, hip - hr)], fill=fill, width=max(1, int(sw * 0.08)))
    elif kind in ("bag_left", "bag_right"):
        sgn = -1 if kind == "bag_left" else 1
        bx = cx + sgn * sw * 0.6
        draw.line([(cx - sgn * sw * 0.3, neck), (bx, hip - hr)], fill=fill, width=max(1, int(sw * 0.06)))
        draw.rectangle([bx - sw * 0.2, hip - hr, bx + sw * 0.2, hip + hr * 1.2], fill=fill)
    elif kind == "hat":
        draw.rectangle([cx - hr * 1.3, top - hr * 0.2, cx + hr * 1.3, top + hr * 0.5], fill=fill)


def _lamp_falloff(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Light of an IR illuminator beside the camera: brightest near the centre, dimmer at the edges."""
    h, w = size
    y = np.linspace(-1.0, 1.0, h)[:, None] - rng.uniform(-0.2, 0.2)
    x = np.linspace(-1.0, 1.0, w)[None, :] - rng.uniform(-0.2, 0.2)
    return 1.0 - rng.uniform(0.2, 0.45) * np.clip(x * x + 0.6 * y * y, 0.0, 1.5)


def render(ident: Identity, camera: int, modality: str, size: tuple[int, int],
           rng: np.random.Generator) -> Image.Image:
    """One image (RGB mode, H x W = ``size``) of ``ident`` seen by ``camera`` in ``modality``
    (``rgb``, ``nir`` or ``thermal``; the IR ones are stored as three equal channels)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    infrared = modality != "rgb"
    img = _background(rng, size, camera, infrared)
    if modality == "nir":  # the lamp lights the person more than the scene behind
        img = Image.fromarray((np.asarray(img, dtype=np.float32) * 0.6).astype(np.uint8), "L")
    _draw_person(ImageDraw.Draw(img), ident, _paints(ident, modality), size, rng)
    cam = np.random.default_rng([camera, 123])  # the camera's own response, fixed per camera
    arr = np.asarray(img, dtype=np.float32)
    if modality == "nir":
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.6))), dtype=np.float32)
        arr = arr * _lamp_falloff(size, rng) * cam.uniform(0.85, 1.15) * rng.uniform(0.8, 1.2)
        arr = arr + cam.uniform(0, 15) + rng.normal(0, 5, arr.shape)
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif infrared:  # thermal optics blur more; the blur scales with the frame (RegDB's 128 rows: as drawn)
        blur = rng.uniform(0.8, 1.6) * (size[0] / THERMAL_ROWS)
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
        arr = arr * cam.uniform(0.8, 1.1) + cam.uniform(0, 25) + rng.normal(0, 7, arr.shape)
        arr = np.repeat(arr[..., None], 3, axis=-1)  # IR frames are stored as 3 equal channels
    else:
        gain = cam.uniform(0.75, 1.2, size=3) * rng.uniform(0.7, 1.25)  # colour cast and exposure
        arr = arr * gain + rng.normal(0, 3, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
