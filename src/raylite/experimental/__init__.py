"""Experimental APIs, as Ray's `ray.experimental`: `raylite.experimental.tqdm_ray` (progress
bars updated in tasks and actors, drawn by the driver). Submodules are imported on demand."""
