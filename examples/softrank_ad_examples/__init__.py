"""What the examples and the method study share: CIFAR data (discovery, checks, augmentation),
models, the training loop and its recipes, robustness evaluation, paired statistics, and the
grid of configurations. Not part of the library: it needs the ``examples`` extra
(``pip install -e ".[examples]"``), and its modules change with the experiments.

Modules: ``data``, ``models``, ``training``, ``robustness``, ``stats``, ``configs``.
"""
