"""Knowledge of the outside world, one table per module, each citing its source."""
