"""Live training runs: points streamed in while a run trains, diagnosed incrementally."""
