"""The HTTP layer: parse and validate, call the engine, answer JSON or problem+json."""
