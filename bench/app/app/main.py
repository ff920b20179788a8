"""Flask + requests + pydantic: the app `bench/run.sh` builds with rbuild and with buildah."""

import requests
from flask import Flask, jsonify, request
from pydantic import BaseModel, ValidationError

app = Flask(__name__)

# bench/run.sh rewrites this line for the warm-app scenario (one app file changed).
BUILD_MARK = "0"


class Greeting(BaseModel):
    name: str
    times: int = 1


@app.get("/health")
def health():
    return {"status": "ok", "mark": BUILD_MARK}


@app.post("/greet")
def greet():
    try:
        g = Greeting.model_validate(request.get_json(force=True))
    except ValidationError as e:
        return jsonify(error=e.errors()), 422
    return {"message": " ".join([f"hello {g.name}"] * g.times)}


@app.get("/fetch")
def fetch():
    url = request.args.get("url", "http://127.0.0.1:8000/health")
    r = requests.get(url, timeout=5)
    return {"status": r.status_code, "bytes": len(r.content)}


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
