# A RAM filesystem mounted at /ram (MicroPython, board side). semhil copies its native module and
# program there with `mpremote run semhil_ramfs.py cp ... :/ram/`: it works on boards without a
# writable filesystem (QEMU: read-only ROMFS), leaves nothing on a board's flash and wears no flash.
# It holds only what MicroPython's import and mpremote's cp/ls/rm/df call; a soft reset forgets it.
import gc
import io
import os

try:
    import vfs
except ImportError:  # MicroPython before 1.23: mount is in os
    vfs = os

_DIR = 0x4000
_FILE = 0x8000
_ENOENT = 2
_EEXIST = 17


def _size(chunks):
    return sum(len(c) for c in chunks)


class _Writer:
    # a file open for writing: the file is the list of the chunks written (see RamFS)
    def __init__(self, fs, path, chunks):
        self.fs, self.path, self.chunks = fs, path, chunks

    def write(self, data):
        gc.collect()  # frees the last command's garbage first: the chunks then lie side by side
        self.chunks.append(data.encode() if isinstance(data, str) else bytes(data))
        return len(data)

    def close(self):
        if self.chunks is not None:
            self.fs.files[self.path] = self.chunks
            self.chunks = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Reader(io.IOBase):
    # a file open for reading, served from its chunks (no copy: import reads through readinto)
    def __init__(self, chunks):
        self.chunks, self.i, self.pos = chunks, 0, 0

    def readinto(self, buf):
        # fills buf unless the file ends: MicroPython's import takes a short read for the end
        n = 0
        while n < len(buf) and self.i < len(self.chunks):
            chunk = self.chunks[self.i]
            k = min(len(buf) - n, len(chunk) - self.pos)
            buf[n:n + k] = memoryview(chunk)[self.pos:self.pos + k]
            n, self.pos = n + k, self.pos + k
            if self.pos == len(chunk):
                self.i, self.pos = self.i + 1, 0
        return n

    def read(self, size=-1):
        out = b""
        while size < 0 or len(out) < size:
            buf = bytearray(256 if size < 0 else min(256, size - len(out)))
            n = self.readinto(buf)
            if not n:
                break
            out += buf[:n]
        return out

    def ioctl(self, request, arg):
        return 255 if request == 11 else 0  # MP_STREAM_GET_BUFFER_SIZE: import's largest; close: done

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class RamFS:
    def __init__(self):
        # absolute path inside the filesystem -> the file's chunks as written: joining them into one
        # bytes object fragments the heap (a module then needs ~4x its size of free heap to load)
        self.files = {}
        self.dirs = {"/"}
        self.cwd = "/"

    def _abs(self, path):
        parts = []
        for p in ((path if path.startswith("/") else self.cwd + "/" + path)).split("/"):
            if p == "..":
                parts = parts[:-1]
            elif p and p != ".":
                parts.append(p)
        return "/" + "/".join(parts)

    def _existing(self, path):
        path = self._abs(path)
        if path not in self.files and path not in self.dirs:
            raise OSError(_ENOENT)
        return path

    def _file(self, path):
        path = self._abs(path)
        if path not in self.files:
            raise OSError(_ENOENT)
        return path

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        path = self._existing(path)
        if path in self.dirs:
            return (_DIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return (_FILE, 0, 0, 0, 0, 0, _size(self.files[path]), 0, 0, 0)

    def ilistdir(self, path):
        path = self._existing(path).rstrip("/") + "/"
        for name in sorted(self.dirs) + sorted(self.files):
            base = name[len(path):]
            if name.startswith(path) and base and "/" not in base:
                size = _size(self.files[name]) if name in self.files else 0
                yield (base, _FILE if name in self.files else _DIR, 0, size)

    def open(self, path, mode):
        path = self._abs(path)
        if path in self.dirs or self._abs(path + "/..") not in self.dirs:
            raise OSError(_ENOENT)
        if "w" in mode or "a" in mode:
            return _Writer(self, path, list(self.files.get(path, [])) if "a" in mode else [])
        chunks = self.files[self._file(path)]
        return _Reader(chunks) if "b" in mode else io.StringIO(b"".join(chunks).decode())

    def remove(self, path):
        del self.files[self._file(path)]

    def mkdir(self, path):
        path = self._abs(path)
        if path in self.files or path in self.dirs:
            raise OSError(_EEXIST)
        self._existing(path + "/..")
        self.dirs.add(path)

    def rmdir(self, path):
        path = self._existing(path)
        if path == "/" or list(self.ilistdir(path)):
            raise OSError(_EEXIST)
        self.dirs.remove(path)

    def rename(self, old, new):
        self.files[self._abs(new)] = self.files.pop(self._file(old))

    def chdir(self, path):
        path = self._existing(path)
        if path not in self.dirs:
            raise OSError(_ENOENT)
        self.cwd = path

    def getcwd(self):
        return self.cwd

    def statvfs(self, path):
        used, free = sum(_size(c) for c in self.files.values()), gc.mem_free()
        return (1, 1, used + free, free, free, 0, 0, 0, 0, 255)


def mount(where="/ram"):
    # idempotent: a second run (same session, no soft reset in between) keeps the files
    try:
        os.stat(where)
    except OSError:
        vfs.mount(RamFS(), where)


mount()
