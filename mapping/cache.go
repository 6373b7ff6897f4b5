package mapping

import (
	"container/list"
	"sync"
	"time"

	"github.com/leadtail/leadtail/sources"
)

// lruCache bounds lookup results by entry count and age. Entries older
// than ttl are refetched so an edited contact is picked up within ttl.
type lruCache struct {
	mu    sync.Mutex
	size  int
	ttl   time.Duration
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key  string
	rows []sources.Row
	at   time.Time
}

func newLRU(size int, ttl time.Duration) *lruCache {
	return &lruCache{size: size, ttl: ttl, ll: list.New(), items: make(map[string]*list.Element, size)}
}

func (c *lruCache) get(key string, now time.Time) ([]sources.Row, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*lruEntry)
	if now.Sub(e.at) > c.ttl {
		c.ll.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.rows, true
}

func (c *lruCache) put(key string, rows []sources.Row, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		e.rows, e.at = rows, now
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key: key, rows: rows, at: now})
	for c.ll.Len() > c.size {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*lruEntry).key)
	}
}

func (c *lruCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
