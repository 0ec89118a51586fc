"""The service as deployed: real HTTP through uvicorn, the OpenAPI document fuzzed, the
widget in headless Chromium, the Kubernetes manifests."""
