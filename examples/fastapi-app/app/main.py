"""A minimal FastAPI service: GET /health answers {"status": "ok"}."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/")
def root() -> dict[str, str]:
    return {"service": "fastapi-app"}
