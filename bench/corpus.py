#!/usr/bin/env python3
"""Reproducible benchmark corpus: a tree shaped like an installed node_modules
(many small files, median about 1.1 KB, a few large ones) plus big single files.

usage: corpus.py tree DIR [--files N] [--total-mb M]
       corpus.py file PATH SIZE_MB
Bytes come from a fixed-seed generator, so every run builds the same corpus."""
import hashlib
import os
import random
import sys


def stream(seed: bytes, n: int):
    """n pseudo-random bytes from SHAKE-256 of the seed, in 1 MiB chunks."""
    h = hashlib.shake_256(seed)
    block = 1 << 20
    data = h.digest(min(n, 64 << 20))  # one long keystream, reused with rotation
    out = 0
    i = 0
    while out < n:
        k = min(block, n - out)
        start = (i * 7919) % max(1, len(data) - k) if len(data) > k else 0
        yield data[start:start + k]
        out += k
        i += 1


def write(path: str, seed: bytes, n: int):
    with open(path, "wb") as f:
        for chunk in stream(seed, n):
            f.write(chunk)


def tree(root: str, files: int, total_mb: int):
    rng = random.Random(20260531)
    sizes = [max(0, int(rng.lognormvariate(7.0, 1.3))) for _ in range(files)]  # median ~1.1 KB
    big = total_mb * (1 << 20) - sum(sizes)
    n_big = 6
    for i in range(n_big):
        sizes[rng.randrange(files)] += max(0, big // n_big)
    dirs = []
    for p in range(files // 40 + 1):
        pkg = f"node_modules/pkg{p:04d}"
        dirs += [pkg, f"{pkg}/lib", f"{pkg}/dist", f"{pkg}/lib/util"]
    small_text = (b"module.exports = function (a, b) { return a + b; };\n" * 64)
    for i, size in enumerate(sizes):
        d = os.path.join(root, dirs[i % len(dirs)])
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"file{i:05d}.js")
        if size <= len(small_text) * 4 and i % 3:
            seed = hashlib.sha256(str(i).encode()).digest()[:8]
            body = (seed + small_text) * (size // (len(small_text) + 8) + 1)
            with open(path, "wb") as f:
                f.write(body[:size])
        else:
            write(path, str(i).encode(), size)
    print(f"{files} files, {sum(sizes) / (1 << 20):.0f} MiB in {root}")


def main():
    args = sys.argv[1:]
    if args[:1] == ["tree"] and len(args) >= 2:
        files = int(args[args.index("--files") + 1]) if "--files" in args else 16767
        total = int(args[args.index("--total-mb") + 1]) if "--total-mb" in args else 548
        tree(args[1], files, total)
    elif args[:1] == ["file"] and len(args) == 3:
        write(args[1], b"big-file", int(args[2]) << 20)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
