"""Regenerate exclusion masks from shapes.json at any resolution.
usage: python render_masks.py [size=1024] [outdir=.]
Shapes are in full-resolution (4096 px) pixel coordinates; a mask pixel is classified by
evaluating the shapes at the full-res pixel centre it samples (nearest-neighbour downsampling:
output pixel (i,j) samples full-res pixel (floor(i*4096/size), floor(j*4096/size)), as cv2
INTER_NEAREST does).
Codes: 0 usable, 1 carbon (incl. +-edge band), 2 contamination, 3 border; priority 2 > 1 > 3 > 0."""

import json
import os
import sys

import cv2
import numpy as np

size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
out = sys.argv[2] if len(sys.argv) > 2 else "."
here = os.path.dirname(os.path.abspath(__file__))
sh = json.load(open(os.path.join(here, "shapes.json")))
W = sh["_meta"]["image_size"][0]
EH = sh["_meta"]["carbon_edge_half_width_px"]
idx = np.floor(np.arange(size) * W / size).astype(int)
xx, yy = np.meshgrid(idx + 0.5, idx + 0.5)
for stem, e in sh.items():
    if stem.startswith("_"):
        continue
    m = np.zeros((size, size), np.uint8)
    b = e["border"]
    m[(xx < b["left"]) | (xx >= W - b["right"]) | (yy < b["top"]) | (yy >= W - b["bottom"])] = 3
    if e["hole"]:
        h = e["hole"]
        m[np.hypot(xx - h["cx"], yy - h["cy"]) >= h["r"] - EH] = 1
    cm = (
        np.zeros((W, W), np.uint8)
        if any(c["type"] == "polygon" for c in e["contamination"])
        else None
    )
    c2 = np.zeros((size, size), bool)
    for c in e["contamination"]:
        if c["type"] == "circle":
            c2 |= (xx - c["cx"]) ** 2 + (yy - c["cy"]) ** 2 <= c["r"] ** 2
        else:
            cv2.fillPoly(cm, [np.array(c["points"], np.int32)], 1)
            c2 |= cm[np.ix_(idx, idx)] > 0
    m[c2] = 2
    cv2.imwrite(os.path.join(out, stem + ".png"), m)
