"""The built-in text-to-image set: coloured shapes on a plain background, captioned from their attributes.

Sample `index` of split `split` is a pure function of `(seed, split, index)`: its random numbers come from
`numpy.random.default_rng([seed, split_id, index])`, so the stream is infinite, needs no storage, and any sample can
be drawn in O(1) (exact resume, any number of processes). The splits use disjoint generator keys:

- "train": 1..complexity objects (shape, colour, size, 3x3 grid cell), dark background,
  captions like "a small red circle at the top left and a large blue square at the bottom".
- "val":   the same distribution, held out (`val_size` fixed samples).
- "ood":   a shifted distribution for out-of-domain evaluation: colours never seen in training, a tinted light
  background, and another caption template ("top left: pink circle, small; bottom: cyan square, large").

Objects sit in distinct grid cells and never overlap, so every caption word is visible in the image.
Labels (shape / colour / size / cell ids, -1 padded) come with each sample for attribute classifiers.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = ("small", "medium", "large")
SIZE_FRACTIONS = (0.4, 0.65, 0.9)  # object diameter as a fraction of a grid cell
CELLS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
COLOURS = {  # in-domain colours first, then the out-of-domain ones; label ids index this order
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40),
    "purple": (150, 60, 200), "orange": (245, 140, 30), "white": (240, 240, 240),
    "pink": (250, 130, 190), "cyan": (40, 210, 220), "brown": (130, 80, 35), "gray": (110, 110, 110),
}
COLOUR_NAMES = tuple(COLOURS)
IN_DOMAIN_COLOURS = tuple(range(7))
OOD_COLOURS = tuple(range(7, 11))
SPLIT_IDS = {"train": 0, "val": 1, "ood": 2}
MAX_OBJECTS = len(CELLS)
SUPERSAMPLE = 4  # draw at 4x and box-filter down: antialiased edges


def sample_scene(seed: int, split: str, index: int, complexity: int) -> dict:
    """The attributes of one sample (no pixels): background colour and a list of objects."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    count = int(rng.integers(1, min(complexity, MAX_OBJECTS) + 1))
    cells = rng.choice(len(CELLS), size=count, replace=False)
    palette = OOD_COLOURS if split == "ood" else IN_DOMAIN_COLOURS
    objects = []
    for cell in cells:
        size = int(rng.integers(len(SIZES)))
        jitter = (1.0 - SIZE_FRACTIONS[size]) / 2 * rng.uniform(-0.8, 0.8, size=2)  # stays inside the cell
        objects.append({"shape": int(rng.integers(len(SHAPES))), "colour": int(rng.choice(palette)), "size": size,
                        "cell": int(cell), "offset": jitter.tolist()})
    if split == "ood":
        background = tuple(int(v) for v in rng.integers(170, 230, size=3))
    else:
        background = (int(rng.integers(0, 48)),) * 3
    return {"background": background, "objects": objects, "template": "ood" if split == "ood" else "default"}


def object_centre(obj: dict, resolution: int) -> tuple[float, float]:
    """(x, y) of an object's centre in pixels of the final image."""
    cell_size = resolution / 3
    row, col = divmod(obj["cell"], 3)
    return ((col + 0.5 + obj["offset"][0]) * cell_size, (row + 0.5 + obj["offset"][1]) * cell_size)


def render_scene(scene: dict, resolution: int) -> np.ndarray:
    """uint8 [resolution, resolution, 3]."""
    big = resolution * SUPERSAMPLE
    image = Image.new("RGB", (big, big), scene["background"])
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        cx, cy = (c * SUPERSAMPLE for c in object_centre(obj, resolution))
        r = SIZE_FRACTIONS[obj["size"]] * big / 6  # radius: half of the fraction of a cell (big / 3)
        colour = COLOURS[COLOUR_NAMES[obj["colour"]]]
        shape = SHAPES[obj["shape"]]
        if shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        elif shape == "square":
            s = r * 0.85
            draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=colour)
        elif shape == "triangle":  # centroid at the centre
            draw.polygon([(cx, cy - r), (cx - 0.866 * r, cy + 0.5 * r), (cx + 0.866 * r, cy + 0.5 * r)], fill=colour)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    return np.asarray(image.reduce(SUPERSAMPLE))


def caption_scene(scene: dict) -> str:
    if scene["template"] == "ood":
        parts = [f"{CELLS[o['cell']]}: {COLOUR_NAMES[o['colour']]} {SHAPES[o['shape']]}, {SIZES[o['size']]}"
                 for o in scene["objects"]]
        return "; ".join(parts)
    parts = [f"a {SIZES[o['size']]} {COLOUR_NAMES[o['colour']]} {SHAPES[o['shape']]} at the {CELLS[o['cell']]}"
             for o in scene["objects"]]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scene_labels(scene: dict) -> dict[str, list[int]]:
    """Attribute ids per object slot, padded with -1 to MAX_OBJECTS."""
    labels = {}
    for key in ("shape", "colour", "size", "cell"):
        values = [o[key] for o in scene["objects"]]
        labels[key] = values + [-1] * (MAX_OBJECTS - len(values))
    return labels


def builtin_sample(seed: int, split: str, index: int, resolution: int, complexity: int) -> dict:
    """One sample: {"pixels": uint8 [H, W, 3], "caption", "id", "labels": {shape, colour, size, cell}}."""
    scene = sample_scene(seed, split, index, complexity)
    return {"pixels": render_scene(scene, resolution), "caption": caption_scene(scene),
            "id": f"builtin-{split}-{seed}-{index}", "labels": scene_labels(scene)}
