"""The data under ``schemas/``, importable as ``lakehouse.schemas`` so that
``importlib.resources`` finds it in a wheel and in an editable install (lakehouse/resources.py)."""
