"""Every environment variable runner sets or reads. Only values that must cross a process boundary travel
this way: a Hydra launcher may run a sweep's jobs in other processes (joblib, submitit), a DDP job's
workers are spawned processes, and the tests talk to a `runner` subprocess.
"""

# sweep callback (runner/run/sweep.py) → each job of the sweep
PARENT_RUN_ID = "RUNNER_PARENT_RUN_ID"  # the sweep's MLflow parent run: jobs nest under it
SWEPT_KEYS = "RUNNER_SWEPT_KEYS"  # comma-separated: a job's run name shows only the values the sweep varies

# job process → the DDP workers it spawns (runner/run/ddp.py)
SPAWNED = "RUNNER_SPAWNED"  # set: this process is one of our workers, not a rank started by torchrun/Slurm

# hydra/launcher=gpus (runner/run/slots.py) → each job: the GPU(s) its worker process owns, set before
# CUDA starts there; read back into the MLflow tag runner.cuda_visible_devices (runner/run/job.py run_tags).
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"

# tests → a `runner` subprocess (test-only)
FAULT = "RUNNER_FAULT"  # "<rank>:<step>": that rank raises right after that optimizer step, in the next job

# Set by torchrun, torch.distributed.elastic or Slurm (runner/run/ddp.py reads them):
# RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, SLURM_*, SUBMITIT_EXECUTOR.
