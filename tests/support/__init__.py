"""What the test modules share: nothing here is a test, and no test module imports another.

* :mod:`support.ws`: one graphql-transport-ws client (:class:`support.ws.Client`), ``ws_url``,
  ``bearer``, ``wait_for`` and ``poll``; :mod:`support.audit` reads live ``auditEvents`` with it;
* :mod:`support.graphql`: reading GraphQL answers (``codes``, ``errs``, ``perrs``,
  ``payload_codes``) and finding what an answer must not name (``found``, ``leaks``,
  ``form_leaks``);
* :mod:`support.outages`: the suite's embedded services (``embedded``) and ``redis_down``, which
  stops Redis for a block;
* :mod:`support.isolation`: the rows of the isolation tests, one module per area, and the
  ``two_tenants`` fixtures (tenant A, tenant B, A's principals) of those tests, their common
  ``Read`` row and ``refused_unchanged`` (a refused mutation leaves tenant A as it was);
* :mod:`support.campaigns`, :mod:`support.sending`, :mod:`support.provider_events`,
  :mod:`support.conversations`, :mod:`support.segments`, :mod:`support.segment_oracle`: set-up,
  requests and checks of those areas.

How it is imported: pytest runs in its default ``prepend`` import mode. ``tests/`` has no
``__init__.py``, so pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``:
``from conftest import Api`` and ``from support.ws import Client`` work in every folder below,
whichever file or folder pytest is given. The area folders (``tests/campaigns/``,
``tests/platform/``, …) have no ``__init__.py`` either, on purpose: as packages, ``platform``
would shadow the standard library's module of that name. Each test module is therefore imported
under its file name, so a test file's name must be unique across ``tests/``: pytest stops with
"import file mismatch" when two are not. ``tests/delivery/`` and ``tests/fakes/`` are packages of
their own (``delivery.test_providers``, ``fakes.providers``).
"""
