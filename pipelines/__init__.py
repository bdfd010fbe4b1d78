"""SageMaker pipeline definitions (one module per pipeline, each with `get_pipeline(...)`),
the step code that runs inside SageMaker jobs, and the local runner."""
