package postgres

import "fmt"

// Streaming reports whether a replication connection is up, and why not
// (for /readyz). Before the first connection it says so.
func (s *Source) Streaming() (bool, string) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.healthUp {
		return true, ""
	}
	if s.healthDown == "" {
		return false, "replication not started yet"
	}
	return false, s.healthDown
}

func (s *Source) setStreaming(up bool, reason string) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.healthUp, s.healthDown = up, reason
}

func streamDownReason(err error) string {
	if err == nil {
		return "replication stopped"
	}
	return fmt.Sprintf("replication connection lost, reconnecting: %v", err)
}
