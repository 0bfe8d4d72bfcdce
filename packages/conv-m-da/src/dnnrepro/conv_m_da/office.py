"""Office-31 and Office-Caltech-10 from folders the user supplies (never downloaded here).

Expected layout under the data directory (the layout of the public releases):

    office31/{amazon,dslr,webcam}/images/<class>/<image>.jpg            31 classes
    office_caltech_10/{amazon,caltech,dslr,webcam}/<class>/<image>.jpg  10 classes

``load_domain(root, benchmark, domain, size)`` returns float32 images (N, 3, size, size) in [0, 1]
(each image resized to size x size, bilinear) and int64 labels (class folders in sorted order).
A missing folder is one DataError naming the folder to create.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from dnnrepro.core.errors import DataError

BENCHMARKS = {
    "office31": ("office31", ("amazon", "dslr", "webcam"), "images"),
    "office-caltech": ("office_caltech_10", ("amazon", "caltech", "dslr", "webcam"), ""),
}
SHORT = {"amazon": "A", "dslr": "D", "webcam": "W", "caltech": "C"}
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def tasks(benchmark: str) -> list[tuple[str, str]]:
    """All ordered (source, target) domain pairs: 6 for Office-31, 12 for Office-Caltech."""
    domains = BENCHMARKS[benchmark][1]
    return [(s, t) for s in domains for t in domains if s != t]


def domain_dir(root: str | os.PathLike, benchmark: str, domain: str) -> Path:
    folder, domains, sub = BENCHMARKS[benchmark]
    if domain not in domains:
        raise DataError(f"{benchmark} has no domain {domain!r}; domains: {', '.join(domains)}")
    return Path(root) / folder / domain / sub if sub else Path(root) / folder / domain


def load_domain(
    root: str | os.PathLike, benchmark: str, domain: str, size: int = 224
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, size, size) float32 in [0, 1] and labels (N,) int64 of one domain."""
    from PIL import Image

    path = domain_dir(root, benchmark, domain)
    if not path.is_dir():
        raise DataError(
            f"{benchmark} domain {domain!r} not found: put its class folders into {path} "
            f"(layout: {path}/<class>/<image>.jpg); the paper profile needs the Office datasets"
        )
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{path} holds no class folders")
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() not in EXTENSIONS:
                continue
            with Image.open(file) as im:
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8))
            labels.append(label)
    if not images:
        raise DataError(f"{path} holds no images ({', '.join(EXTENSIONS)})")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(), torch.tensor(labels, dtype=torch.int64)
