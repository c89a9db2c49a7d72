"""The engine: where tensors move. Device and precision (decided once, in :mod:`.runtime`), the allocator,
preprocessing, the plugin contract check, inference and evaluation at the original resolution, losses, the
training loop and several processes (DDP). Imported by module, so that light commands never load torch."""
