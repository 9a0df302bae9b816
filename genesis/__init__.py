"""Chain specs: the `dev` and `local` presets, loading a spec file, and its raw (storage) form."""
