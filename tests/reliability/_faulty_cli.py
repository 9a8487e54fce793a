"""Run ``polypvision`` with one fault injected, so a test sees exactly what a user would.

Usage: python _faulty_cli.py FAULT AFTER -- polypvision-args...

FAULT is one of: video-write, log-write, mask-write, video-commit (disk full, ENOSPC, after
AFTER frames or at the final flush) and rmtree-output (the output folder is deleted, for
real, after AFTER frames). Not a test module; tests/reliability/test_rel_faults.py runs it.
"""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path


def install(fault: str, after: int, out_dir: Path) -> None:
    from polypvision import recording

    def enospc() -> OSError:
        return OSError(errno.ENOSPC, "No space left on device")

    if fault == "video-write":
        orig = recording.VideoWriter.write

        class FullStream:  # the encoder's output hits a full disk
            def __init__(self, real):
                self.real = real

            def encode(self, frame=None):
                raise enospc()

        def write(self, result):
            if self.frames == after and self.backend == "pyav-h264":
                self._stream = FullStream(self._stream)
            orig(self, result)

        recording.VideoWriter.write = write
    elif fault == "log-write":
        orig_log = recording.DetectionLog.write

        class FullFile:
            def __init__(self, real):
                self.real = real

            def write(self, text):
                raise enospc()

            def close(self):
                self.real.close()

        def write_log(self, result):
            if self.lines == after:
                self._fh = FullFile(self._fh)
            orig_log(self, result)

        recording.DetectionLog.write = write_log
    elif fault == "mask-write":
        # A full disk as the mask writer meets it: cv2.imwrite leaves an empty file and reports
        # success (libpng's buffered write fails inside an unchecked fclose), a checked Python
        # write raises ENOSPC.
        import cv2

        real = cv2.imwrite
        count = {"n": 0}

        def imwrite(path, img, *a):
            count["n"] += 1
            if count["n"] > after:
                Path(path).write_bytes(b"")
                return True
            return real(path, img, *a)

        cv2.imwrite = imwrite
        real_write = getattr(recording, "write_file", None)
        if real_write is not None:

            def write_file(path, data):
                count["n"] += 1
                if count["n"] > after:
                    Path(path).write_bytes(b"")
                    raise enospc()
                real_write(path, data)

            recording.write_file = write_file
    elif fault == "video-commit":

        def finish(self):
            raise enospc()

        recording.VideoWriter._finish_encoder = finish
    elif fault == "rmtree-output":
        orig_w = recording.VideoWriter.write

        def write_rm(self, result):
            if self.frames == after:
                shutil.rmtree(out_dir)
            orig_w(self, result)

        recording.VideoWriter.write = write_rm
    else:
        raise SystemExit(f"unknown fault {fault}")


if __name__ == "__main__":
    fault, after, sep, *args = sys.argv[1:]
    assert sep == "--"
    out = Path(args[args.index("-o") + 1])
    install(fault, int(after), out.parent)
    from polypvision.cli import main

    sys.exit(main(args))
