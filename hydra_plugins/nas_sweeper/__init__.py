"""Hydra sweeper plugin `hydra/sweeper=nas`: budgeted architecture search for your own Hydra app."""
