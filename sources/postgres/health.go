package postgres

import "fmt"

// Streaming reports whether a replication connection is up, and why not
// (for /readyz). Before the first connection it says so.
func (s *Source) Streaming() (bool, string) { return s.health.Get("replication not started yet") }

func (s *Source) setStreaming(up bool, reason string) { s.health.Set(up, reason) }

func streamDownReason(err error) string {
	if err == nil {
		return "replication stopped"
	}
	return fmt.Sprintf("replication connection lost, reconnecting: %v", err)
}
