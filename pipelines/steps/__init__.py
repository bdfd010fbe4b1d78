"""Step code: plain functions with explicit arguments and a thin `main()` per container."""
