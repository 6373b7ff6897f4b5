package sink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveCheckpointDirectoryInTheWay: when something took checkpoint.json's
// name (a directory), Save fails saying so, and leaves no temp file behind.
// Before, the error ended in a bare "file exists" (found by the
// fault-injection suite).
func TestSaveCheckpointDirectoryInTheWay(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir)
	ctx := context.Background()
	if err := s.Save(ctx, "0/10"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(t *testing.T)
	}{
		{"empty directory", func(t *testing.T) {
			if err := os.Mkdir(s.Path(), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"non-empty directory", func(t *testing.T) {
			if err := os.MkdirAll(filepath.Join(s.Path(), "in-the-way"), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.RemoveAll(s.Path()); err != nil {
				t.Fatal(err)
			}
			tc.make(t)
			err := s.Save(ctx, "0/20")
			if err == nil || !strings.Contains(err.Error(), "a directory is in the way") {
				t.Fatalf("Save over a directory: %v, want an error saying a directory is in the way", err)
			}
			if tmp, _ := filepath.Glob(filepath.Join(dir, ".checkpoint.json.*.tmp")); len(tmp) > 0 {
				t.Errorf("temp files left behind: %v", tmp)
			}
		})
	}
}
