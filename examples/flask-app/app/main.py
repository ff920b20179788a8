"""A minimal Flask service: GET /health answers {"status": "ok"}."""

from flask import Flask

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/")
def root():
    return {"service": "flask-app"}
