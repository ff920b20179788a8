"""`python3 -m app` runs the development server."""

from app.main import app

app.run(host="0.0.0.0", port=8000)
