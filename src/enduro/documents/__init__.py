"""The documents of a run directory that other tools and enduro's own commands read, as
pydantic models: ``results.json`` (results.py), ``state.json`` (state.py), ``events.jsonl``
(events.py), the undo journal ``faults.journal.jsonl`` (journal.py), and the messages of the
pipes to load workers (worker_messages.py). Each is written from its model and read through
it; ``enduro schema NAME`` prints a document's JSON Schema (schemas.py).

This layer sits just above ``plan`` and imports only pydantic, ``enduro.base`` and
``enduro.plan``: every layer above may read and write documents."""
