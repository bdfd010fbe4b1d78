"""Serving a model: the scoring contract (scoring.py) and the HTTP server SageMaker hosting
runs as `<inference image> serve` (server.py), shared by the endpoint, local serving and
batch."""
