"""What the test modules share: nothing here is a test, and no test module imports another.

* :mod:`support.graphql`: reading GraphQL answers (``codes``, ``perrs``, ``errs``, ``leaks``) and
  posting to ``/graphql`` (multipart uploads);
* :mod:`support.ws`: one graphql-transport-ws client (:class:`support.ws.Client`), ``ws_url``,
  ``bearer`` and polling helpers;
* :mod:`support.audit`: the live ``auditEvents`` helpers built on that client;
* :mod:`support.campaigns`, :mod:`support.provider_events`, :mod:`support.conversations`,
  :mod:`support.segments`, :mod:`support.segment_oracle`: set-up and requests of those areas.

How it is imported: pytest runs in its default ``prepend`` import mode. ``tests/`` has no
``__init__.py``, so ``tests/conftest.py`` puts ``tests/`` on ``sys.path``: ``from conftest import
Api`` and ``from support.ws import Client`` work from every folder below, whichever file or folder
pytest is given. The area folders (``tests/customers/``, ``tests/platform/``, …) have no
``__init__.py`` either: each test module is imported under its file name, so a test file's name
must be unique across ``tests/`` (pytest stops with "import file mismatch" when two are not).
Packages there would shadow installed modules of the same name (``platform`` is the standard
library's). ``tests/delivery/`` and ``tests/fakes/`` are packages of their own.
"""
