"""Adapters to other frameworks; each needs its optional extra (e.g. ``pip install '.[langchain]'``)."""
