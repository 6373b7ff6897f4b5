package sink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// writeAtomic replaces path with data so that a crash leaves either the old
// or the new content: write a temp file in the same directory, fsync it,
// rename it over path, fsync the directory. The temp file is removed on any
// failure. what names the file in errors ("checkpoint", "dead letters").
func writeAtomic(what, path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("%s: create temp file in %s: %w%s", what, dir, err, hint(err))
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("%s: chmod %s: %w%s", what, tmpName, err, hint(err))
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("%s: write %s: %w%s", what, tmpName, err, hint(err))
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: fsync %s: %w%s", what, tmpName, err, hint(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: close %s: %w%s", what, tmpName, err, hint(err))
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("%s: rename %s to %s: %w%s", what, tmpName, path, err, hint(err))
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// syncDir makes a rename or a file creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// EINVAL: the file system cannot fsync directories; nothing to do.
		return fmt.Errorf("fsync directory %s: %w%s", dir, err, hint(err))
	}
	return nil
}

// hint adds what the operator should look at for the usual local failures.
func hint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return " (disk full: free space on the state_dir file system)"
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return " (no write permission: check the owner and mode of state_dir)"
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, fs.ErrNotExist):
		return " (state_dir is missing or not a directory)"
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, fs.ErrExist):
		// rename(2) over a directory: something else took the file's name.
		return " (a directory is in the way: move it out of state_dir)"
	}
	return ""
}

// ensureDir creates dir (and parents) with mode 0700 when missing.
func ensureDir(what, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: create directory %s: %w%s", what, dir, err, hint(err))
	}
	return nil
}
