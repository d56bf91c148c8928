"""mainmast benchmarks: each module `bench/<name>.py` exposes `main() -> None`."""
