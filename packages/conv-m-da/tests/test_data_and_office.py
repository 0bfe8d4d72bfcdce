import numpy as np
import pytest
import torch

from dnnrepro.conv_m_da import office
from dnnrepro.conv_m_da.tasks import load_task, resize
from dnnrepro.core.errors import ConfigError, DataError


def test_resize_shapes_and_range():
    x = torch.rand(2, 1, 8, 8)
    assert resize(x, 16).shape == (2, 1, 16, 16)
    big = resize(torch.rand(2, 1, 28, 28), 16)
    assert big.shape == (2, 1, 16, 16) and big.min() >= 0 and big.max() <= 1


def test_load_task_with_a_fake_loader():
    def loader(name, split):
        size = 8 if name == "digits" else 28
        return torch.rand(30, 1, size, size), torch.arange(30) % 10

    t = load_task("mnist5k->digits", loader, limit=20)
    assert t.source_train[0].shape == (20, 1, 16, 16) and t.target_test[0].shape == (20, 1, 16, 16)
    assert set(t.source_train[1].tolist()) == set(range(10))
    with pytest.raises(ConfigError, match="unknown task"):
        load_task("svhn->mnist", loader)


def test_office_loader(tmp_path):
    from PIL import Image

    root = tmp_path / "office31" / "amazon" / "images"
    for c, name in enumerate(["back_pack", "bike"]):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((5, 7, 3), 40 * (c + i), np.uint8)).save(
                root / name / f"{i}.png"
            )
    x, y = office.load_domain(tmp_path, "office31", "amazon", size=12)
    assert x.shape == (4, 3, 12, 12) and y.tolist() == [0, 0, 1, 1]
    assert len(office.tasks("office31")) == 6 and len(office.tasks("office-caltech")) == 12
    with pytest.raises(DataError, match="webcam"):
        office.load_domain(tmp_path, "office31", "webcam")
