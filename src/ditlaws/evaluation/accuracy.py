"""Compositional accuracy of generated images of the built-in set (in the spirit of GenEval).

A built-in caption names every object: its shape, colour, size and grid cell ("a small red circle at the top left
and a large blue square at the bottom"; the out-of-domain template "top left: pink circle, small; ..."). The
built-in feature network (``ditlaws.feature_net``) reads each of the 9 cells of an image: empty, or an object with
a shape and a colour (a cell counts as occupied when the mean of its three heads' "empty" probabilities is < 1/2).
For every captioned object:

- position: its cell is occupied;
- colour:   an object of its colour is in the image, matched one to one (multiset intersection of the caption's
            colours and the read colours, so two red objects need two red objects);
- shape:    the same for shapes;
- overall:  its cell holds an object of its colour and its shape (drawn as captioned, where captioned).

Each metric is the fraction of captioned objects that pass (micro-average over objects). Its **chance level** is
the score of a caption-blind generator that draws perfect samples of the data distribution with the captioned
number of objects (counting is not what these metrics test): every caption scored against the scene of every other
caption with as many objects (all such ordered pairs of up to 512 captions, read from the captions themselves, so
it follows the split's palette and object counts). A scene whose colours, cells or shapes are redrawn at random
scores that attribute at chance. Sizes are read but not scored.
"""

from __future__ import annotations

import re

import torch

from ditlaws.data import builtin
from ditlaws.errors import UserError

N_CELLS, N_COLOURS, N_SHAPES = len(builtin.CELLS), len(builtin.COLOUR_NAMES), len(builtin.SHAPES)
KEYS = ("accuracy", "accuracy_colour", "accuracy_position", "accuracy_shape")


def _alternatives(words) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))  # "top left" before "top"


_SIZE, _COLOUR, _SHAPE, _CELL = (_alternatives(w) for w in (builtin.SIZES, builtin.COLOUR_NAMES, builtin.SHAPES,
                                                             builtin.CELLS))
_DEFAULT = re.compile(rf"a ({_SIZE}) ({_COLOUR}) ({_SHAPE}) at the ({_CELL})")
_OOD = re.compile(rf"({_CELL}): ({_COLOUR}) ({_SHAPE}), ({_SIZE})")


def parse_caption(caption: str) -> list[dict]:
    """The objects a built-in caption names: [{"shape", "colour", "size", "cell"}] as ids (both templates).

    The parse is checked by writing the caption back (``builtin.caption_scene``): anything else is not a caption of
    the built-in set."""
    if ": " in caption:
        found = [{"cell": c, "colour": k, "shape": s, "size": z} for c, k, s, z in _OOD.findall(caption)]
        template = "ood"
    else:
        found = [{"size": z, "colour": k, "shape": s, "cell": c} for z, k, s, c in _DEFAULT.findall(caption)]
        template = "default"
    objects = [{"shape": builtin.SHAPES.index(o["shape"]), "colour": builtin.COLOUR_NAMES.index(o["colour"]),
                "size": builtin.SIZES.index(o["size"]), "cell": builtin.CELLS.index(o["cell"])} for o in found]
    if not objects or builtin.caption_scene({"objects": objects, "template": template}) != caption:
        raise UserError(f"accuracy: {caption[:80]!r} is not a caption of the built-in set (accuracy scores the "
                        "built-in set's captions; use clip for other data)")
    return objects


def caption_tables(captions: list[str]) -> dict[str, torch.Tensor]:
    """Per caption, its objects as long [B, 9] tables of shape / colour / cell ids (-1 padded)."""
    tables = {k: torch.full((len(captions), N_CELLS), -1, dtype=torch.long) for k in ("shape", "colour", "cell")}
    for i, caption in enumerate(captions):
        for j, obj in enumerate(parse_caption(caption)):
            for key in tables:
                tables[key][i, j] = obj[key]
    return tables


def read_cells(net, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the feature network reads per cell: {"occupied" bool, "shape", "colour" long (-1 where empty)} [B, 9]."""
    device = next(net.parameters()).device
    with torch.no_grad():
        shape, colour, size = (lg.float().cpu() for lg in net(images.to(device, torch.float32)))
    p_empty = torch.stack([lg.softmax(-1)[..., 0] for lg in (shape, colour, size)]).mean(0)
    occupied = p_empty < 0.5
    return {"occupied": occupied,
            "shape": torch.where(occupied, shape[..., 1:].argmax(-1), -1),
            "colour": torch.where(occupied, colour[..., 1:].argmax(-1), -1)}


def scene_reading(tables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The perfect reading of the scenes that captions describe (what a flawless generator would show)."""
    n = tables["cell"].shape[0]
    reading = {"occupied": torch.zeros(n, N_CELLS, dtype=torch.bool),
               "shape": torch.full((n, N_CELLS), -1, dtype=torch.long),
               "colour": torch.full((n, N_CELLS), -1, dtype=torch.long)}
    rows, slots = (tables["cell"] >= 0).nonzero(as_tuple=True)
    cells = tables["cell"][rows, slots]
    reading["occupied"][rows, cells] = True
    reading["shape"][rows, cells] = tables["shape"][rows, slots]
    reading["colour"][rows, cells] = tables["colour"][rows, slots]
    return reading


def _histogram(values: torch.Tensor, classes: int) -> torch.Tensor:
    """Counts per class of each row's ids (ignoring -1): long [B, classes]."""
    one_hot = torch.nn.functional.one_hot(values.clamp(min=0), classes) * (values >= 0)[..., None]
    return one_hot.sum(1)


def score(tables: dict[str, torch.Tensor], reading: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per image: captioned objects, and how many pass each test (long [B] each)."""
    present = tables["cell"] >= 0
    cell = tables["cell"].clamp(min=0)
    at = {k: reading[k].gather(1, cell) for k in ("occupied", "shape", "colour")}
    position = at["occupied"] & present
    overall = position & (at["colour"] == tables["colour"]) & (at["shape"] == tables["shape"])
    matched = {}
    for key, classes in (("colour", N_COLOURS), ("shape", N_SHAPES)):
        read = torch.where(reading["occupied"], reading[key], -1)
        matched[key] = torch.minimum(_histogram(tables[key], classes), _histogram(read, classes)).sum(1)
    return {"objects": present.sum(1), "accuracy": overall.sum(1), "accuracy_colour": matched["colour"],
            "accuracy_position": position.sum(1), "accuracy_shape": matched["shape"],
            "extra_objects": (reading["occupied"].sum(1) - position.sum(1)).clamp(min=0)}


def chance(tables: dict[str, torch.Tensor], max_captions: int = 512) -> dict[str, float]:
    """Each metric for a caption-blind generator that draws a data sample with the captioned number of objects:
    caption i scored against the scene of caption j, for all ordered pairs i != j with as many objects, among the
    first ``max_captions`` captions (the same tests as ``score``, as pairwise matrices). NaN without such pairs."""
    n = min(tables["cell"].shape[0], max_captions)
    tables = {k: v[:n] for k, v in tables.items()}
    present = tables["cell"] >= 0
    cells = _histogram(tables["cell"], N_CELLS).double()  # [n, 9]: each scene's occupied cells (each at most once)
    code = torch.where(present, (tables["cell"] * N_COLOURS + tables["colour"]) * N_SHAPES + tables["shape"], -1)
    drawn = _histogram(code, N_CELLS * N_COLOURS * N_SHAPES).double()  # [n, 396]: (cell, colour, shape) present
    pairs = {"accuracy_position": cells @ cells.T, "accuracy": drawn @ drawn.T}  # [caption i, scene j]
    for key, classes in (("accuracy_colour", N_COLOURS), ("accuracy_shape", N_SHAPES)):
        h = _histogram(tables[key.removeprefix("accuracy_")], classes)
        pairs[key] = torch.minimum(h[:, None], h[None]).sum(-1).double()
    count = present.sum(1)
    partners = (count[:, None] == count[None]) & ~torch.eye(n, dtype=torch.bool)
    objects = float((partners.sum(1) * count).sum())  # every caption's objects, once per partner scene
    if objects == 0:
        return dict.fromkeys(KEYS, float("nan"))
    return {key: float(pairs[key][partners].sum()) / objects for key in KEYS}


class Accuracy:
    """Running compositional accuracy of generated images against their captions."""

    def __init__(self, net):
        self.net = net
        self.counts: dict[str, int] = {}
        self.captions: list[str] = []
        self.images = 0

    def update(self, images: torch.Tensor, captions: list[str]) -> None:
        tables = caption_tables(captions)
        for key, value in score(tables, read_cells(self.net, images)).items():
            self.counts[key] = self.counts.get(key, 0) + int(value.sum())
        self.captions += list(captions)
        self.images += len(captions)

    def result(self) -> dict:
        objects = self.counts["objects"]
        out = {key: self.counts[key] / objects for key in KEYS}
        out["chance"] = chance(caption_tables(self.captions))
        out.update(n_images=self.images, n_objects=objects,
                   extra_objects_per_image=self.counts["extra_objects"] / self.images)
        return out
