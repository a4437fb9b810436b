"""Generation backends that need torch: imported only by the worker process."""
