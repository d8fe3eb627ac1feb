"""The inference API: the registry's champion model behind API Gateway and Lambda (or uvicorn, locally).

- ``app``: the Lambda entry point (``handler``) and the ASGI ``app``;
- ``api``: the HTTP adapter (Starlette routes, request checks, per-request telemetry);
- ``service``: what the API does (predict, record feedback, describe, health), free of HTTP and Lambda;
- ``body``: request bodies as JSON (strict decoding; why a refused body was refused);
- ``schema`` / ``openapi``: request validation and the OpenAPI document, from the model's feature schema;
- ``feedback``: ground-truth feedback bodies, checked against the live model and the prediction ids issued;
- ``model`` / ``sources``: the ONNX session over a verified bundle; where it comes from and when it is replaced;
- ``errors``: the API's errors and the one table mapping them to status codes;
- ``capture``: the sinks that served predictions and feedback go to, and capture sampling;
- ``telemetry``: JSON logs and EMF metrics (names from ``functions.common.metrics``);
- ``settings``: the environment contract (``InferenceSettings``) that the serving stack renders.
"""
