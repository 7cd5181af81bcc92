"""Running jobs: the pre-flight, one Hydra job = one MLflow run (job), the sweep's parent run (sweep), DDP
worker processes (ddp) and GPU slots for a sweep's jobs (slots)."""
