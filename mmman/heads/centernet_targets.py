"""CenterNet's training targets for all boxes of a batch at once.

MMDet's ``CenterNetHead.get_targets`` loops over the boxes in Python and
reads each box's centre, size and radius back to the host: about 30 host
syncs per box (1457 of a Faster R-CNN MAN++ K=4 step's 1507 with 8 boxes
on each of 2 images, three heads). On a GPU each is a device
synchronisation. This computes the same targets with batched tensor ops
and no host sync: the same float32 arithmetic in the same order (the
square roots in float64, as ``math.sqrt`` does there), each Gaussian drawn
over the whole map and merged by maximum, and where boxes share a centre
cell the last one's size and offset, as the loop leaves them.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor

MIN_OVERLAP = 0.3  # CenterNetHead.get_targets' gaussian_radius setting


def gaussian_radii(height: Tensor, width: Tensor,
                   min_overlap: float = MIN_OVERLAP) -> Tensor:
    """MMDet's ``gaussian_radius`` of each box, truncated to an int >= 0."""

    def root(value: Tensor) -> Tensor:
        return value.double().sqrt().to(value.dtype)

    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - root(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - root(b2**2 - 4 * 4 * c2)) / (2 * 4)
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + root(b3**2 - 4 * a3 * c3)) / (2 * a3)
    radius = torch.minimum(torch.minimum(r1, r2), r3)
    return radius.int().clamp(min=0)


def centernet_targets(gt_bboxes: Sequence[Tensor],
                      gt_labels: Sequence[Tensor], num_classes: int,
                      feat_shape: Sequence[int],
                      img_shape: Sequence[int]) -> Tuple[dict, Tensor]:
    """``(targets, avg_factor)`` as ``CenterNetHead.get_targets`` returns
    them (``avg_factor`` a tensor)."""
    img_h, img_w = img_shape[:2]
    bs, _, feat_h, feat_w = feat_shape
    width_ratio = float(feat_w / img_w)
    height_ratio = float(feat_h / img_h)
    ref = gt_bboxes[-1]
    heatmap = ref.new_zeros([bs, num_classes, feat_h, feat_w])
    wh = ref.new_zeros([bs, 2, feat_h, feat_w])
    offset = ref.new_zeros([bs, 2, feat_h, feat_w])
    weight = ref.new_zeros([bs, 2, feat_h, feat_w])
    boxes = torch.cat(list(gt_bboxes))
    if len(boxes):
        labels = torch.cat(list(gt_labels)).long()
        image = torch.cat([
            torch.full((len(b), ), i, dtype=torch.long, device=ref.device)
            for i, b in enumerate(gt_bboxes)
        ])
        cx = (boxes[:, 0] + boxes[:, 2]) * width_ratio / 2
        cy = (boxes[:, 1] + boxes[:, 3]) * height_ratio / 2
        cx_int, cy_int = cx.int(), cy.int()
        box_h = (boxes[:, 3] - boxes[:, 1]) * height_ratio
        box_w = (boxes[:, 2] - boxes[:, 0]) * width_ratio
        radius = gaussian_radii(box_h, box_w)
        _draw_gaussians(heatmap, image, labels, cx_int, cy_int, radius)
        # boxes sharing a centre cell all write the last one's size and
        # offset (no boolean mask: its size would be read back to the host)
        cell = (image * feat_h + cy_int) * feat_w + cx_int
        order = torch.arange(len(boxes), device=ref.device)
        last = torch.full((bs * feat_h * feat_w, ), -1, dtype=torch.long,
                          device=ref.device).scatter_reduce(
                              0, cell, order, 'amax')[cell]
        at = (image, slice(None), cy_int, cx_int)
        wh[at] = torch.stack([box_w, box_h], 1)[last]
        offset[at] = torch.stack([cx - cx_int, cy - cy_int], 1)[last]
        weight[at] = 1
    avg_factor = heatmap.eq(1).sum().clamp(min=1)
    return dict(
        center_heatmap_target=heatmap,
        wh_target=wh,
        offset_target=offset,
        wh_offset_target_weight=weight), avg_factor


def _draw_gaussians(heatmap: Tensor, image: Tensor, labels: Tensor,
                    cx: Tensor, cy: Tensor, radius: Tensor,
                    chunk: int = 32) -> None:
    """MMDet's ``gen_gaussian_target`` of every box into ``heatmap``
    (B, C, H, W), ``chunk`` boxes at a time (each drawn over the whole
    map), merged by maximum."""
    for i in range(0, len(image), chunk):
        part = slice(i, i + chunk)
        _draw_chunk(heatmap, image[part], labels[part], cx[part], cy[part],
                    radius[part])


def _draw_chunk(heatmap: Tensor, image: Tensor, labels: Tensor, cx: Tensor,
                cy: Tensor, radius: Tensor) -> None:
    bs, num_classes, feat_h, feat_w = heatmap.shape
    dx = (torch.arange(feat_w, device=heatmap.device)[None] -
          cx[:, None]).to(heatmap.dtype)
    dy = (torch.arange(feat_h, device=heatmap.device)[None] -
          cy[:, None]).to(heatmap.dtype)
    # sigma = diameter / 6 and 2 * sigma * sigma in float64, as in Python
    sigma = (2 * radius + 1).double() / 6
    denom = (2 * sigma * sigma).to(heatmap.dtype)
    dist = dx[:, None, :]**2 + dy[:, :, None]**2
    value = (-dist / denom[:, None, None]).exp()
    r = radius.to(heatmap.dtype)[:, None, None]
    inside = (dx.abs()[:, None, :] <= r) & (dy.abs()[:, :, None] <= r)
    value = torch.where(
        inside & (value >= torch.finfo(value.dtype).eps), value,
        value.new_zeros(()))
    value = value.flatten(1)
    rows = (image * num_classes + labels)[:, None].expand_as(value)
    heatmap.view(bs * num_classes, -1).scatter_reduce_(0, rows, value, 'amax')
