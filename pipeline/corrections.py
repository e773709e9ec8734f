"""Region corrections: rectangles in level-0 pixels with "keep-original" or "restore".

``parse_corrections`` validates what a reviewer sends against the slide's size, and
``apply_corrections`` composes one tile from its previous pixels and the pixels each
correction puts in its rectangle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import numpy as np

from pipeline.errors import InkRemovalError
from pipeline.geometry import Box
from pipeline.options import RESTORE_METHODS, RestoreMethod

CorrectionAction = Literal["keep-original", "restore"]
CORRECTION_ACTIONS: tuple[str, ...] = get_args(CorrectionAction)
_BOX_FIELDS = ("x", "y", "width", "height")
_FIELDS = (*_BOX_FIELDS, "action", "method")


class InvalidCorrectionError(InkRemovalError, ValueError):
    """A correction is malformed or does not fit inside the slide."""


@dataclass(frozen=True)
class Correction:
    """One rectangle in level-0 pixels and what to do inside it."""

    box: Box
    action: CorrectionAction
    method: RestoreMethod | None = None  # set for "restore", None for "keep-original"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form that ``parse_corrections`` reads back."""
        item: dict[str, Any] = {"x": self.box.x, "y": self.box.y, "width": self.box.width,
                                "height": self.box.height, "action": self.action}
        if self.method is not None:
            item["method"] = self.method
        return item


def parse_corrections(items: Sequence[Mapping[str, Any] | Correction], *, width: int,
                      height: int) -> list[Correction]:
    """Validate corrections for a slide of ``width`` x ``height`` level-0 pixels.

    Each item is a Correction or a mapping with whole-number ``x``, ``y``, ``width`` and
    ``height``, ``action`` "keep-original" or "restore", and for "restore" an optional
    ``method`` from RESTORE_METHODS ("od" when absent). Rectangles must lie inside the
    slide. Raises InvalidCorrectionError naming the item and what is wrong with it.
    """
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidCorrectionError(f"corrections must be a list, got {type(items).__name__}")
    if not items:
        raise InvalidCorrectionError("no corrections were given; mark at least one rectangle")
    return [_parse_one(item, position=position, width=width, height=height)
            for position, item in enumerate(items, start=1)]


def _parse_one(item: Mapping[str, Any] | Correction, *, position: int, width: int,
               height: int) -> Correction:
    def invalid(problem: str) -> InvalidCorrectionError:
        return InvalidCorrectionError(f"correction {position}: {problem}")

    if isinstance(item, Correction):
        item = item.to_dict()
    if not isinstance(item, Mapping):
        raise invalid(f"must be an object with {', '.join(_FIELDS[:5])}, "
                      f"got {type(item).__name__}")
    unknown = sorted(str(key) for key in item if key not in _FIELDS)
    if unknown:
        raise invalid(f"unknown field(s) {', '.join(unknown)}; "
                      f"the fields are {', '.join(_FIELDS)}")
    missing = [name for name in _FIELDS[:5] if name not in item]
    if missing:
        raise invalid(f"missing field(s) {', '.join(missing)}")

    values = {}
    for name in _BOX_FIELDS:
        value = item[name]
        # bool is a subclass of int, so True and False are rejected on their own.
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"{name} must be a whole number of level-0 pixels, got {value!r}")
        values[name] = value
    box = Box(values["x"], values["y"], values["width"], values["height"])
    if box.width < 1 or box.height < 1:
        raise invalid(f"width and height must be at least 1 pixel, got {box.width}x{box.height}")
    if box.x < 0 or box.y < 0 or box.right > width or box.bottom > height:
        raise invalid(f"rectangle at ({box.x}, {box.y}) of {box.width}x{box.height} pixels "
                      f"does not lie inside the slide ({width}x{height} pixels)")

    action = item["action"]
    if action not in CORRECTION_ACTIONS:
        raise invalid(f"action must be one of {', '.join(CORRECTION_ACTIONS)}, got {action!r}")
    method = item.get("method")
    if action == "keep-original":
        if method is not None:
            raise invalid("method applies only to the restore action")
        return Correction(box=box, action="keep-original")
    method = "od" if method is None else method
    if method not in RESTORE_METHODS:
        raise invalid(f"method must be one of {', '.join(RESTORE_METHODS)}, got {method!r}")
    return Correction(box=box, action="restore", method=cast(RestoreMethod, method))


def local_area(box: Box, tile: Box) -> tuple[slice, slice]:
    """Return the rows and columns of ``tile``'s pixels that ``box`` covers (may be empty)."""
    left, top = max(box.x, tile.x) - tile.x, max(box.y, tile.y) - tile.y
    right, bottom = min(box.right, tile.right) - tile.x, min(box.bottom, tile.bottom) - tile.y
    return slice(top, max(top, bottom)), slice(left, max(left, right))


def apply_corrections(base: np.ndarray, tile: Box, corrections: list[Correction], *,
                      keep_values: Callable[[], np.ndarray],
                      restore_values: Callable[[str], np.ndarray]) -> np.ndarray:
    """Return a copy of ``base`` with each correction's area replaced.

    Keep-original areas take ``keep_values()`` and restore areas ``restore_values(method)``,
    both arrays shaped like ``base``. Corrections are applied in order, so a later
    rectangle wins where two overlap.
    """
    output = base.copy()
    for correction in corrections:
        rows, columns = local_area(correction.box, tile)
        if correction.action == "keep-original":
            source = keep_values()
        else:
            source = restore_values(str(correction.method))
        output[rows, columns] = source[rows, columns]
    return output


def covered_by_original(tile: Box, corrections: list[Correction]) -> bool:
    """Return whether keep-original areas cover the whole tile after every correction."""
    original = np.zeros((tile.height, tile.width), dtype=bool)
    for correction in corrections:
        original[local_area(correction.box, tile)] = correction.action == "keep-original"
    return bool(original.all())
