"""Release folders: assemble, dataset card, manifest, inspect."""
