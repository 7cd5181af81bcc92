"""MLflow: the store and its retries (store), and the helper process that imports MLflow beside torch
(helper)."""
