"""Framings of a landed object: one class per way records are laid out in its bytes.

Each framing (lake.framings.base.Framing) owns its splitter (cleaning's Python path), its
sampler (the crawler's classifier) and its DuckDB reader (cleaning's fast path);
lake.framings.registry picks one from a stream's `format` or from detected content.
"""
