"""Commands: the acts behind the CLI that read the host and write files, over the pure layers
below. `lock` resolves the stale targets and writes their locks; the CLI parses arguments,
takes the environment snapshot, renders and exits."""
