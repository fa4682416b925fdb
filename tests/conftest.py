"""The shared fixtures (brokers, databases, the four services' apps) live in tests/kit/fixtures/ and are
registered here, once, for every test; helpers are imported from tests/kit/ (see its __init__.py)."""

pytest_plugins = [
    "tests.kit.fixtures.auth",
    "tests.kit.fixtures.broker",
    "tests.kit.fixtures.compose",
    "tests.kit.fixtures.databases",
    "tests.kit.fixtures.services",
]
