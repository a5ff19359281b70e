"""The Vigil lab: synthetic data and the detection-quality evaluation.

Not part of the product: nothing in ``alerts``, ``detectors``, ``rules``, ``notifiers``,
``delivery``, ``tickets`` or ``vigil`` imports it (``lint-imports`` enforces this).  Its commands,
``vigil demo`` and ``vigil eval``, plug into the ``vigil`` command through the ``vigil.commands``
entry-point group; ``bench/`` and ``tests/lab`` use its generators directly.
"""
