"""Repository-level pytest setup.

The `gpu`/`slow` markers and the skip-without-CUDA rule live in dnnrepro.core.testing, which an
installed dnnrepro-core registers through its `pytest11` entry point. When the tests run from the
source folders instead (`PYTHONPATH=shared/src:packages/*/src python -m pytest -m gpu` on a GPU
machine with nothing installed), register it here.
"""


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("dnnrepro"):
        import dnnrepro.core.testing as plugin

        config.pluginmanager.register(plugin, "dnnrepro")
