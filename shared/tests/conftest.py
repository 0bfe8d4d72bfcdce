"""Shared fixtures: a private data dir so tests never touch the user's data/."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A session-wide data folder, materialized on first use by the tests that need it."""
    return tmp_path_factory.mktemp("data")
