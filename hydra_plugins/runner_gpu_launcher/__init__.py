"""runner's Hydra launcher plugin: `runner -m hydra/launcher=gpus ...` (runner/conf/hydra/launcher/gpus.yaml).

Hydra finds it by scanning the `hydra_plugins` namespace package (no __init__.py there, on purpose: other
plugins, e.g. hydra-joblib-launcher, install into the same namespace). The logic is runner/run/slots.py.
"""
