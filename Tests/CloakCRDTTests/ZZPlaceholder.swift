// Keeps the target non-empty while the module is being written; delete when real files exist.
