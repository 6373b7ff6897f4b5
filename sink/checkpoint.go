package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/leadtail/leadtail/sources"
)

// CheckpointFile is the name of the checkpoint file inside the state directory.
const CheckpointFile = "checkpoint.json"

// FileStore keeps the last delivered source position in
// <dir>/checkpoint.json as {"position": "...", "saved_at": "..."}.
// Save replaces the file atomically, so a crash leaves the old or the new
// position, never a torn file. A FileStore is safe for one writer.
type FileStore struct {
	dir  string
	path string
}

// NewFileStore returns a store in dir. Nothing is touched until Load or Save.
func NewFileStore(dir string) *FileStore {
	return &FileStore{dir: dir, path: filepath.Join(dir, CheckpointFile)}
}

// Path is the checkpoint file's path.
func (s *FileStore) Path() string { return s.path }

type checkpointJSON struct {
	Position sources.Position `json:"position"`
	SavedAt  time.Time        `json:"saved_at"`
}

// Load returns the saved position, or "" and nil when there is no
// checkpoint file yet.
func (s *FileStore) Load(ctx context.Context) (sources.Position, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return s.loadFile(s.path)
}

func (s *FileStore) loadFile(path string) (sources.Position, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checkpoint: read %s: %w%s", path, err, hint(err))
	}
	var c checkpointJSON
	if err := json.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("checkpoint: %s is not a valid checkpoint (move it away to start from the source's own position): %w", path, err)
	}
	return c.Position, nil
}

// Save durably replaces the checkpoint with p: write a temp file, fsync,
// rename over checkpoint.json, fsync the directory. It creates the
// directory when missing. When Save fails the old checkpoint is intact and
// no temp file is left behind.
func (s *FileStore) Save(ctx context.Context, p sources.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(checkpointJSON{Position: p, SavedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("checkpoint: encode: %w", err)
	}
	if err := ensureDir("checkpoint", s.dir); err != nil {
		return err
	}
	return writeAtomic("checkpoint", s.path, append(data, '\n'), 0o600)
}
