"""A FUSE file system whose unsynced writes live only in this process.

    /usr/bin/python3 tools/crash/volatile_fs.py BACKING MOUNTPOINT

Mirrors BACKING at MOUNTPOINT. A file's writes and truncations stay in this
process's memory until fsync or fdatasync of that file, which writes its
whole current contents to BACKING and fsyncs there. SIGKILL to this process
is therefore a power cut for file data: what was never synced is gone, and
the next mount sees only what was. Names (create, mkdir, rename, unlink,
link) go to BACKING at once: the in-process FaultInjectionFileSystem is the
strict model of directory entries; this one checks the real binary's file
syncs end to end, including SQLite's.

SEXTANT_VOLATILE_FS_FSYNC_LIES=1 makes fsync a no-op (a disk that ignores
flushes), to show that the cross-check can fail.

Uses Debian's python3-pyfuse3 (tools/setup installs it with fuse3).
"""
import errno
import os
import stat
import sys

import pyfuse3
import trio


class VolatileFS(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, backing, fsync_lies=False):
        super().__init__()
        self.fsync_lies = fsync_lies
        self.backing = backing
        self.paths = {pyfuse3.ROOT_INODE: backing}  # our inode -> backing path
        self.inodes = {}  # backing st_ino -> our inode
        self.lookups = {pyfuse3.ROOT_INODE: 1}
        self.buffers = {}  # our inode -> bytearray: contents written since the last sync
        self.handles = {}  # fh -> (our inode, os fd)
        self.next_fh = 1

    # Inodes and paths

    def _inode_for(self, path):
        info = os.lstat(path)
        inode = self.inodes.get(info.st_ino)
        if inode is None:
            inode = info.st_ino if info.st_ino != pyfuse3.ROOT_INODE else info.st_ino + (1 << 40)
            self.inodes[info.st_ino] = inode
        self.paths[inode] = path
        return inode, info

    def _path(self, inode):
        try:
            return self.paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT)

    def _attributes(self, inode, info):
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = inode
        entry.generation = 0
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        entry.st_mode = info.st_mode
        entry.st_nlink = info.st_nlink
        entry.st_uid = info.st_uid
        entry.st_gid = info.st_gid
        entry.st_rdev = info.st_rdev
        entry.st_size = len(self.buffers[inode]) if inode in self.buffers else info.st_size
        entry.st_blksize = 4096
        entry.st_blocks = (entry.st_size + 511) // 512
        entry.st_atime_ns = info.st_atime_ns
        entry.st_mtime_ns = info.st_mtime_ns
        entry.st_ctime_ns = info.st_ctime_ns
        return entry

    def _lstat(self, path):
        try:
            return os.lstat(path)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)

    async def lookup(self, parent_inode, name, ctx=None):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        try:
            inode, info = self._inode_for(path)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)
        self.lookups[inode] = self.lookups.get(inode, 0) + 1
        return self._attributes(inode, info)

    async def forget(self, inode_list):
        for inode, count in inode_list:
            left = self.lookups.get(inode, 0) - count
            if left > 0:
                self.lookups[inode] = left
            else:
                self.lookups.pop(inode, None)

    async def getattr(self, inode, ctx=None):
        return self._attributes(inode, self._lstat(self._path(inode)))

    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self._path(inode)
        if fields.update_size:
            data = self._buffer(inode)
            if attr.st_size < len(data):
                del data[attr.st_size:]
            else:
                data.extend(bytes(attr.st_size - len(data)))
        if fields.update_mode:
            os.chmod(path, stat.S_IMODE(attr.st_mode))
        return await self.getattr(inode, ctx)

    async def statfs(self, ctx):
        info = os.statvfs(self.backing)
        out = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(out, name, getattr(info, name))
        return out

    # Directories: straight to the backing folder

    async def opendir(self, inode, ctx):
        self._path(inode)
        return inode

    async def readdir(self, fh, start_id, token):
        path = self._path(fh)
        names = sorted(os.listdir(path))
        for index, name in enumerate(names[start_id:], start_id):
            try:
                inode, info = self._inode_for(os.path.join(path, name))
            except OSError:
                continue
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attributes(inode, info), index + 1):
                break
            self.lookups[inode] = self.lookups.get(inode, 0) + 1

    async def releasedir(self, fh):
        pass

    async def fsyncdir(self, fh, datasync):
        pass  # names reach the backing folder at once

    async def mkdir(self, parent_inode, name, mode, ctx):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        try:
            os.mkdir(path, mode)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)
        return await self.lookup(parent_inode, name, ctx)

    async def rmdir(self, parent_inode, name, ctx):
        try:
            os.rmdir(os.path.join(self._path(parent_inode), os.fsdecode(name)))
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)

    async def unlink(self, parent_inode, name, ctx):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        try:
            os.unlink(path)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old = os.path.join(self._path(parent_inode_old), os.fsdecode(name_old))
        new = os.path.join(self._path(parent_inode_new), os.fsdecode(name_new))
        try:
            os.rename(old, new)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)
        # Paths under a renamed folder move with it.
        for inode, path in list(self.paths.items()):
            if path == old or path.startswith(old + "/"):
                self.paths[inode] = new + path[len(old):]

    async def link(self, inode, new_parent_inode, new_name, ctx):
        path = os.path.join(self._path(new_parent_inode), os.fsdecode(new_name))
        try:
            os.link(self._path(inode), path)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)
        return await self.lookup(new_parent_inode, new_name, ctx)

    # Files: contents buffered until a sync

    def _buffer(self, inode):
        data = self.buffers.get(inode)
        if data is None:
            with open(self._path(inode), "rb") as handle:
                data = bytearray(handle.read())
            self.buffers[inode] = data
        return data

    def _handle(self, inode, flags):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = inode
        return pyfuse3.FileInfo(fh=fh, keep_cache=False)

    async def open(self, inode, flags, ctx):
        self._path(inode)
        if flags & os.O_TRUNC:
            self._buffer(inode).clear()
        return self._handle(inode, flags)

    async def create(self, parent_inode, name, mode, flags, ctx):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, stat.S_IMODE(mode))
            os.close(fd)
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno)
        entry = await self.lookup(parent_inode, name, ctx)
        if flags & os.O_TRUNC:
            self._buffer(entry.st_ino).clear()
        return self._handle(entry.st_ino, flags), entry

    async def read(self, fh, offset, size):
        inode = self.handles[fh]
        if inode in self.buffers:
            return bytes(self.buffers[inode][offset:offset + size])
        with open(self._path(inode), "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    async def write(self, fh, offset, buffer):
        data = self._buffer(self.handles[fh])
        if len(data) < offset:
            data.extend(bytes(offset - len(data)))
        data[offset:offset + len(buffer)] = buffer
        return len(buffer)

    async def fsync(self, fh, datasync):
        inode = self.handles[fh]
        data = self.buffers.get(inode)
        if data is None or self.fsync_lies:
            return
        fd = os.open(self._path(inode), os.O_WRONLY)
        try:
            os.pwrite(fd, bytes(data), 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        del self.buffers[inode]

    async def flush(self, fh):
        pass  # close(2) makes nothing durable

    async def release(self, fh):
        self.handles.pop(fh, None)


def main():
    backing, mountpoint = sys.argv[1], sys.argv[2]
    operations = VolatileFS(os.path.abspath(backing), fsync_lies=os.environ.get("SEXTANT_VOLATILE_FS_FSYNC_LIES") == "1")
    options = set(pyfuse3.default_options)
    options.add("fsname=sextant-volatile")
    options.discard("default_permissions")
    pyfuse3.init(operations, mountpoint, options)
    print("mounted", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
