"""Engine benchmark: plain diffusers against openveo on full-size random-weight networks.

Same as `openveo bench`; see `python bench/engine.py --help` and docs/performance.md.
"""

from openveo.cli import app

if __name__ == "__main__":
    app(["bench", *__import__("sys").argv[1:]])
