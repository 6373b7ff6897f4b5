package connector

import (
	"sort"
	"sync"

	"github.com/leadtail/leadtail/sink"
)

// Counters is a snapshot of what the pipeline did. Keys hold mapping
// names, Meta keys and reasons only, never row data.
type Counters struct {
	Changes      int64
	Accepted     int64
	DeadLettered int64
	Warnings     int64
	Skipped      map[string]int64 // "mapping: reason"
	Dropped      map[string]int64 // "mapping: key: reason"
}

// Stats counts what the pipeline did; safe for concurrent use.
type Stats struct {
	mu sync.Mutex
	c  Counters
}

// NewStats returns empty counters.
func NewStats() *Stats {
	return &Stats{c: Counters{Skipped: map[string]int64{}, Dropped: map[string]int64{}}}
}

func (s *Stats) change() {
	s.mu.Lock()
	s.c.Changes++
	s.mu.Unlock()
}

func (s *Stats) skip(mapping, reason string) {
	s.mu.Lock()
	s.c.Skipped[mapping+": "+reason]++
	s.mu.Unlock()
}

func (s *Stats) drop(mapping, key, reason string) {
	s.mu.Lock()
	s.c.Dropped[mapping+": "+key+": "+reason]++
	s.mu.Unlock()
}

func (s *Stats) delivered(r sink.Result) {
	s.mu.Lock()
	s.c.Accepted += int64(r.Accepted)
	s.c.DeadLettered += int64(r.DeadLettered)
	s.c.Warnings += int64(r.Warnings)
	s.mu.Unlock()
}

// Snapshot returns a copy safe to read while the pipeline runs.
func (s *Stats) Snapshot() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.c
	c.Skipped = make(map[string]int64, len(s.c.Skipped))
	c.Dropped = make(map[string]int64, len(s.c.Dropped))
	for k, v := range s.c.Skipped {
		c.Skipped[k] = v
	}
	for k, v := range s.c.Dropped {
		c.Dropped[k] = v
	}
	return c
}

func (s *Stats) logPairs() []any {
	c := s.Snapshot()
	skipped, dropped := int64(0), int64(0)
	for _, v := range c.Skipped {
		skipped += v
	}
	for _, v := range c.Dropped {
		dropped += v
	}
	return []any{"changes", c.Changes, "accepted", c.Accepted, "dead_lettered", c.DeadLettered,
		"skipped", skipped, "values_dropped", dropped, "warnings", c.Warnings}
}

// SortedKeys returns a counter map's keys in order (stable output).
func SortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
