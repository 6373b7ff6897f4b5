package sourcetest

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Logger returns a logger named name that writes to t.Log at the level in
// $LEADTAIL_TEST_LOG (default warn) and drops lines once the test has
// finished (late lines from goroutines would otherwise panic t.Log).
func Logger(t testing.TB, name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("LEADTAIL_TEST_LOG"))
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	w := &tlogWriter{t: t}
	t.Cleanup(w.close)
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: w})
}

type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tlogWriter) close() { w.mu.Lock(); w.done = true; w.mu.Unlock() }
