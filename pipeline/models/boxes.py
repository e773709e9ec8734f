"""Axis-aligned box arithmetic in torch: areas, pairwise IoU and non-maximum suppression.

Boxes are (N, 4) float tensors of corners ``(x0, y0, x1, y1)`` with x0 <= x1 and y0 <= y1,
in any one pixel unit. A box's area is ``(x1 - x0) * (y1 - y0)``: corners are continuous
coordinates, so a box from 0 to 10 is 10 pixels wide.
"""

from __future__ import annotations

import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Return the area of each (N, 4) xyxy box, shape (N,)."""
    widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=0)
    heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    return widths * heights


def box_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Return the (N, M) intersection over union of (N, 4) and (M, 4) xyxy boxes.

    A pair whose union is empty (two zero-area boxes) has IoU 0.
    """
    top_left = torch.maximum(first[:, None, :2], second[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(first[:, None, 2:], second[None, :, 2:])  # (N, M, 2)
    overlap = (bottom_right - top_left).clamp(min=0)
    intersection = overlap[..., 0] * overlap[..., 1]  # (N, M)
    union = box_area(first)[:, None] + box_area(second)[None, :] - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1e-12), torch.zeros_like(union))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Run greedy non-maximum suppression; return kept indices in decreasing score order.

    The highest-scoring box is kept, every remaining box whose IoU with it is greater
    than ``iou_threshold`` is removed, and the step repeats on what is left. Equal
    scores keep their input order.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold  # (N, N)
    # One transfer to the host, then a plain loop: the loop is sequential by nature and
    # indexing a device tensor per step would synchronise every time.
    suppresses = overlaps.cpu()
    removed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for position in range(len(order)):
        if removed[position]:
            continue
        kept.append(position)
        removed |= suppresses[position]
    return order[torch.tensor(kept, dtype=torch.long, device=order.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Run ``nms`` separately for each label; return kept indices in decreasing score order.

    Boxes of different labels never suppress each other. Each label's boxes are moved
    by a label-dependent offset larger than every coordinate span, so one NMS pass over
    all boxes gives the same result as a pass per label.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = float(boxes.max() - boxes.min()) + 1.0
    offsets = labels.to(boxes.dtype) * span
    shifted = boxes - boxes.min() + offsets[:, None]
    return nms(shifted, scores, iou_threshold)
