"""What the Python test scripts share: one way to fail a check (a message on
stderr, exit status 1, which the Swift test that ran the script reports), and
the fvecs reader for the dataset's vectors."""
import struct
import sys


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def read_fvecs(path, rows):
    """The first `rows` vectors of an .fvecs file, as lists of floats."""
    out = []
    with open(path, "rb") as f:
        for _ in range(rows):
            (d,) = struct.unpack("<i", f.read(4))
            out.append(list(struct.unpack(f"<{d}f", f.read(4 * d))))
    return out
