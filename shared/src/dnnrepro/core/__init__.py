"""dnnrepro-core: the small shared core of the dnnrepro paper packages.

Modules: ``data`` (datasets), ``models`` (networks shared by several papers), ``train`` (the one
training loop and its checkpoints), ``results`` (claims, verdicts, results.json and READMEs),
``reproduce`` (the run context every package's reproduce uses), ``kernels`` (CuPy kernel loading),
``bench`` (timing), ``cli`` (the ``dnnrepro`` command), ``errors``, ``io`` (atomic writes, hashing).
"""

__version__ = "0.1.0"
