"""The benchmark app: a small Flask service that validates input with pydantic and can call out with requests."""
