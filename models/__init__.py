"""Model definitions. ``get_model(name, **kwargs)`` builds one by name."""

from models.tinyconv import TinyConv

MODELS = {"tinyconv": TinyConv}


def get_model(name: str = "tinyconv", **kwargs):
    from harness.errors import HarnessError

    if name not in MODELS:
        raise HarnessError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
