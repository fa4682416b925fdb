"""The operator side, above the services: the `kaenkhun` command (`cli`), the local launcher behind `kaenkhun up`
(`launcher`), the consistency checker, the demo, and the development broker and scratch databases the tests and
benchmarks use. The services and the foundation (`shared`) never import it."""
