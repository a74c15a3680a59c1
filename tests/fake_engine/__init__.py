"""A fake engine for the tests: canned answers, word tokens and a deterministic clock, no model library.

It registers as real engines do, by name (`fake:FOLDER`), through sizebench.engines'
SIZEBENCH_EXTRA_ENGINES, which tests/conftest.py sets for this process and its workers. A fake model is a
folder whose config.json holds a `fake` block (fake_engine.model.Behaviour): what it answers, how long each
token takes on its clock, and how it fails. The worker, the stages, the supervisor, the store and the report
run around it as they run around a real engine; what depends on a real engine stays tested on one.
"""

from fake_engine.model import Behaviour, make_model

__all__ = ["Behaviour", "make_model"]
