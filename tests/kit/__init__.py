"""What tests share: import helpers from here, ask for fixtures by name (they are plugins, see fixtures/).

- env.py: the test environment: the PostgreSQL server (KAENKHUN_TEST_POSTGRES_URL), optional system tools,
  Kafka settings tuned for tests, NO_BROKER (the bootstrap address for apps run with the bus off).
- apps.py: running a service app in-process (settings, lifespan, HTTP client or real uvicorn), tokens,
  problem+json answers, CSV imports, events delivered through a service's real consumer path.
- registry.py, assessment.py, assistance.py, reporting.py: each service as tests drive it (the object its
  fixture yields) and the request bodies and events other tests build for it (citizen IDs, households, ...).
- auth.py: the auth tests' own app (shared/auth on a tiny FastAPI app), its settings and clients, tokens for them,
  and the checks of a 401 or 403 answer.
- observability.py: a tiny app with shared.observability installed, and a client on it.
- bus.py: a tiny producer service and consumer service built only from shared/bus, for the bus tests.
- compose.py: docker-compose.yml as the Compose and Dockerfile tests read it (paths, interpolation).
- production.py: the keys and secrets an operator supplies for production, and a process environment of only
  a container's variables (the Compose and Kubernetes production tests).
- fixtures/: the fixtures every test may use: brokers, databases, the four services' apps, the auth tests' app,
  the Compose file.

What only one directory's tests use stays in that directory (its support.py, tests/reporting/audit.py,
tests/hostile/openapi.py); the fixtures only one directory uses stay in its test modules.
"""
