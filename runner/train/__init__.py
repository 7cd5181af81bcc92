"""Training one job: the loop (loop) and its parts: checkpoint, metrics, optimizer, schedule, devices,
sync batch norm, FLOP counting."""
