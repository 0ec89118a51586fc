"""The HTTP service: the app and its lifespan (``app``), routes per resource, the hot
routes' plain lanes, request and response schemas, middleware (tokens before bodies,
bounded heads, strict JSON, logs and metrics), the docs and the widget."""
