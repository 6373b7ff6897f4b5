package sources

import "sync"

// Health records whether a source's stream is up and, if not, why: what
// /readyz reports. The zero value means "not started yet".
type Health struct {
	mu   sync.Mutex
	up   bool
	down string
}

// Set records the stream's state; reason says why it is down.
func (h *Health) Set(up bool, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up, h.down = up, reason
}

// Get returns the state; notStarted is the reason given before any Set.
func (h *Health) Get(notStarted string) (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.up:
		return true, ""
	case h.down == "":
		return false, notStarted
	}
	return false, h.down
}
