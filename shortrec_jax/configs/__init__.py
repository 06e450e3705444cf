"""The experiments: one per file, each `get_config()` returning an `ml_collections.ConfigDict`.

Packaged with the library so that evaluation configs (and a non-editable install) find the
training configs they name, e.g. "configs/xdeepfm_ml100k.py" (`shortrec_jax.config_files`);
the repository's top-level `configs` is a link to this folder, so the README's
`--config=configs/...` commands work from the repository root.
"""
