__version__ = "0.1.0"
"""fourier_nb: parameter-efficient transformer embeddings, reproduced, measured and taken apart.

    from fourier_nb import Config, SentenceEncoder, train_and_eval, from_pretrained

The names below are imported on first use, so `import fourier_nb.config` (or any one module) stays light."""

_EXPORTS = {'Config': 'config', 'ModelConfig': 'config', 'SentenceEncoder': 'model', 'train_and_eval': 'run',
            'from_pretrained': 'hub', 'save_pretrained': 'hub', 'load_run': 'checkpoint', 'sts_scores': 'evaluate',
            'Trainer': 'train'}
__all__ = list(_EXPORTS)

def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
    raise AttributeError(f"module 'fourier_nb' has no attribute {name!r}")
