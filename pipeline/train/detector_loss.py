"""The YOLOv3 training loss of the detector: anchor assignment, box, objectness and class terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.models.boxes import box_iou
from pipeline.models.detector import STRIDES, DetectorConfig, anchor_grid, decode_boxes


@dataclass
class LossTerms:
    """The loss terms of a batch, each summed over anchors and divided by the batch size.

    ``positives`` is the number of ground-truth boxes assigned to an anchor.
    """

    box: torch.Tensor
    objectness: torch.Tensor
    classes: torch.Tensor
    positives: int

    @property
    def total(self) -> torch.Tensor:
        """Sum of the three terms, the value to back-propagate."""
        return self.box + self.objectness + self.classes

    def as_floats(self) -> dict[str, float]:
        """Return the terms as plain floats (waits for the device to finish)."""
        return {
            "loss": float(self.total.detach()),
            "box": float(self.box.detach()),
            "objectness": float(self.objectness.detach()),
            "classes": float(self.classes.detach()),
        }


def yolo_loss(
    outputs: list[torch.Tensor],
    targets: list[torch.Tensor],
    config: DetectorConfig,
    *,
    ignore_iou: float = 0.5,
) -> LossTerms:
    """Compute the YOLOv3 loss of raw per-stride outputs against ground-truth boxes.

    ``targets`` contains per image a (K, 5) tensor of x0, y0, x1, y1 in input pixels and
    the class index. Each box is assigned to the one anchor, over all strides, whose
    shape (width and height, centred together) has the highest IoU with it, in the
    cell containing its centre. Terms:

    - box: BCE of sigmoid(tx, ty) against the centre offset in the cell and squared
      error of (tw, th) against log(size / anchor), weighted by 2 - box area / image
      area so that small boxes count more;
    - objectness: BCE, 1 on assigned anchors, 0 elsewhere except on anchors whose
      decoded box already overlaps some ground truth with IoU > ``ignore_iou``;
    - classes: BCE of each class logit against a one-hot target, assigned anchors only.
    """
    device = outputs[0].device
    batch = outputs[0].shape[0]
    anchors = anchor_grid(config, device)  # (scales, A, 2)
    flat_anchors = anchors.view(-1, 2)
    image_area = float(config.input_size_px**2)

    positive = [torch.zeros(raw.shape[:4], dtype=torch.bool, device=device) for raw in outputs]
    ignore = [torch.zeros(raw.shape[:4], dtype=torch.bool, device=device) for raw in outputs]
    # Assigned anchors: (scale, image, anchor, row, column) and their regression targets.
    assigned: list[tuple[int, int, int, int, int]] = []
    offset_targets = []
    scale_targets = []
    weights = []
    class_targets = []

    for image, boxes in enumerate(targets):
        if boxes.numel() == 0:
            continue
        boxes = boxes.to(device=device, dtype=torch.float32)
        with torch.no_grad():
            for scale, (raw, stride) in enumerate(zip(outputs, STRIDES, strict=True)):
                predicted = decode_boxes(
                    raw[image : image + 1].detach().float(), anchors[scale], stride
                )  # (1, A, H, W, 4)
                best = box_iou(predicted.view(-1, 4), boxes[:, :4]).max(dim=1).values
                ignore[scale][image] |= (best > ignore_iou).view(raw.shape[1:4])

        sizes = (boxes[:, 2:4] - boxes[:, 0:2]).clamp(min=1.0)  # (K, 2)
        centres = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
        best_anchor = _shape_iou(sizes, flat_anchors).argmax(dim=1)  # (K,)
        for box_index in range(boxes.shape[0]):
            flat = int(best_anchor[box_index])
            scale, anchor = divmod(flat, config.anchors_per_scale)
            stride = STRIDES[scale]
            height, width = outputs[scale].shape[2:4]
            grid = centres[box_index] / stride
            column = min(max(int(grid[0]), 0), width - 1)
            row = min(max(int(grid[1]), 0), height - 1)
            positive[scale][image, anchor, row, column] = True
            assigned.append((scale, image, anchor, row, column))
            offset_targets.append(grid - torch.tensor([column, row], device=device))
            scale_targets.append(torch.log(sizes[box_index] / flat_anchors[flat]))
            weights.append(2.0 - float(sizes[box_index].prod()) / image_area)
            one_hot = torch.zeros(config.num_classes, device=device)
            one_hot[int(boxes[box_index, 4])] = 1.0
            class_targets.append(one_hot)

    objectness_loss = outputs[0].new_zeros((), dtype=torch.float32)
    for scale, raw in enumerate(outputs):
        logits = raw[..., 4].float()
        target = positive[scale].float()
        counted = positive[scale] | ~ignore[scale]
        per_anchor = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        objectness_loss = objectness_loss + (per_anchor * counted).sum()

    box_loss = objectness_loss.new_zeros(())
    class_loss = objectness_loss.new_zeros(())
    if assigned:
        # Two boxes assigned to the same anchor both add box and class terms, which pull
        # the anchor towards their mean. Its objectness target is 1 either way.
        predictions = torch.stack(
            [outputs[s][i, a, r, c].float() for s, i, a, r, c in assigned]
        )  # (P, 5 + C)
        offsets = torch.stack(offset_targets).clamp(0.0, 1.0)
        log_scales = torch.stack(scale_targets)
        weight = torch.tensor(weights, device=device)[:, None]
        centre_loss = F.binary_cross_entropy_with_logits(
            predictions[:, 0:2], offsets, reduction="none"
        )
        size_loss = 0.5 * (predictions[:, 2:4] - log_scales) ** 2
        box_loss = ((centre_loss + size_loss) * weight).sum()
        class_loss = F.binary_cross_entropy_with_logits(
            predictions[:, 5:], torch.stack(class_targets), reduction="sum"
        )

    return LossTerms(
        box=box_loss / batch,
        objectness=objectness_loss / batch,
        classes=class_loss / batch,
        positives=len(assigned),
    )


def _shape_iou(sizes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Return the (K, M) IoU of (K, 2) box sizes and (M, 2) anchor sizes, centres aligned."""
    overlap = torch.minimum(sizes[:, None, :], anchors[None, :, :]).prod(dim=2)
    union = sizes.prod(dim=1)[:, None] + anchors.prod(dim=1)[None, :] - overlap
    return overlap / union
