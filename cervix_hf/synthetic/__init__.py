"""Deterministic generator of synthetic Pap-smear-like cells and fields.

THESE ARE SYNTHETIC IMAGES FOR THE TEST-SUITE AND THE OFFLINE DEMO. They are NOT medical
data, were not derived from any patient material, and say nothing about real cells: a
model trained or evaluated on them tells you only that the code runs end to end.

The cells are drawn with vectorised numpy (a polar "radius profile" per shape, a
Beer-Lambert style stain model, smooth noise for texture) plus a light PIL blur and pixel
noise. The five cell types of SIPaKMeD differ roughly the way real ones do (size,
cytoplasm colour and density, nucleus size, shape and darkness, perinuclear halo), with
every parameter jittered and overlapping between neighbouring types, so a classifier
can learn Normal (first three types) vs Abnormal (last two) well above chance but not
perfectly.

Modules, one concern each: :mod:`.shapes` (outlines), :mod:`.morphology` (what each type
looks like), :mod:`.render` (pixels; :func:`make_cell`), :mod:`.tree` (the raw SIPaKMeD
layout; :func:`write_raw_sipakmed`) and :mod:`.fields` (harder whole fields for the cell
locator; :func:`make_field`, :func:`write_raw_fields`).

:func:`write_raw_sipakmed` writes the raw SIPaKMeD download layout::

    OUT_DIR/SYNTHETIC.txt                               # marker: the preparer labels it SYNTHETIC
    OUT_DIR/im_<T>/im_<T>/NNN.bmp                       # cluster image (first few clusters)
    OUT_DIR/im_<T>/im_<T>/NNN_cytMM.dat, NNN_nucMM.dat  # boundaries in the cluster image
    OUT_DIR/im_<T>/im_<T>/CROPPED/NNN_MM.bmp            # single-cell crop
    OUT_DIR/im_<T>/im_<T>/CROPPED/NNN_MM_cyt.dat, NNN_MM_nuc.dat  # boundaries in the crop

where NNN is the cluster id (from 001) and MM the cell index in that cluster (from 01).
Boundary files hold one ``x,y`` pixel coordinate per line (:mod:`cervix_hf.boundaries`). The
cells of one cluster share a "slide" (background, stain strength and tint), so a split that
ignores clusters leaks.
"""

from __future__ import annotations

from ..labels import CELL_TYPES
from .fields import FIELD_SIZE, SyntheticField, make_field, write_raw_fields
from .render import MAX_SIDE, MIN_SIDE, make_cell
from .tree import CLUSTER_IMAGES_PER_TYPE, OutputDirNotEmptyError, write_raw_sipakmed

__all__ = [
    "CELL_TYPES",
    "CLUSTER_IMAGES_PER_TYPE",
    "FIELD_SIZE",
    "MAX_SIDE",
    "MIN_SIDE",
    "OutputDirNotEmptyError",
    "SyntheticField",
    "make_cell",
    "make_field",
    "write_raw_fields",
    "write_raw_sipakmed",
]
