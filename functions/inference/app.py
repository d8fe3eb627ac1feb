"""The inference Lambda's entry point (``functions.inference.app.handler``) and ASGI app (``app``, for uvicorn).

Importing it reads the settings (a bad setting fails here, with every problem listed) and loads the model, so
that work happens in Lambda's init phase rather than in the first request.
"""

from __future__ import annotations

from mangum import Mangum

from functions.inference.api import create_app
from functions.inference.settings import InferenceSettings

app = create_app(InferenceSettings.from_env())
# lifespan="off": the app needs no startup hooks, and "auto" would run them on every invocation.
handler = Mangum(app, lifespan="off")
