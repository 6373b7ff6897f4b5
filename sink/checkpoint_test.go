package sink

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadtail/leadtail/sources"
)

func TestFileStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by Save
	s := NewFileStore(dir)
	ctx := t.Context()
	p, err := s.Load(ctx)
	if err != nil || p != "" {
		t.Fatalf("Load without a file = %q, %v; want \"\", nil", p, err)
	}
	for _, want := range []sources.Position{"0/16B3748:1", `mysql-bin.000003:4711 {"gtid":"x"}`, ""} {
		if err := s.Save(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx)
		if err != nil || got != want {
			t.Fatalf("Load = %q, %v; want %q", got, err, want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Position *string   `json:"position"`
		SavedAt  time.Time `json:"saved_at"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw.Position == nil || raw.SavedAt.IsZero() {
		t.Errorf("file = %s (%v)", data, err)
	}
	if st, err := os.Stat(s.Path()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v", st.Mode(), err)
	}
	assertNoTempFiles(t, dir)
}

// TestFileStoreFailedSaveKeepsOld: a Save that cannot complete leaves the
// previous checkpoint intact and no temp file behind.
func TestFileStoreFailedSaveKeepsOld(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir)
	if err := s.Save(t.Context(), "old"); err != nil {
		t.Fatal(err)
	}
	// Make the rename fail: checkpoint.json becomes a non-empty directory.
	if err := os.Rename(s.Path(), filepath.Join(dir, "saved")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Path(), "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := s.Save(t.Context(), "new")
	if err == nil || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("err = %v, want one naming %s", err, s.Path())
	}
	assertNoTempFiles(t, dir)
	old, err := NewFileStore(dir).loadFile(filepath.Join(dir, "saved"))
	if err != nil || old != "old" {
		t.Errorf("old checkpoint = %q, %v", old, err)
	}
}

func TestFileStoreErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("state_dir is a file", func(t *testing.T) {
		s := NewFileStore(file)
		err := s.Save(t.Context(), "p")
		if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Save err = %v", err)
		}
		if _, err := s.Load(t.Context()); err == nil || !strings.Contains(err.Error(), file) {
			t.Fatalf("Load err = %v", err)
		}
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores directory permissions")
		}
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		err := NewFileStore(ro).Save(t.Context(), "p")
		if err == nil || !strings.Contains(err.Error(), ro) || !strings.Contains(err.Error(), "permission") {
			t.Fatalf("Save err = %v", err)
		}
	})
	t.Run("corrupt file", func(t *testing.T) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, CheckpointFile), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewFileStore(d).Load(t.Context())
		if err == nil || !strings.Contains(err.Error(), d) {
			t.Fatalf("Load err = %v", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := NewFileStore(t.TempDir()).Save(ctx, "p"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Save err = %v", err)
		}
	})
}
