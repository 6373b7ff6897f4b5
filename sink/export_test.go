package sink

import (
	"context"
	"time"
)

// SetMaxPause caps throttling pauses so that tests honouring Meta's
// minute-long hints finish quickly.
func SetMaxPause(c *Client, d time.Duration) { c.maxPause = d }

// DeliverUnchecked is Deliver without Prepare: it lets a test put an event
// Meta refuses into a request.
func DeliverUnchecked(ctx context.Context, c *Client, events []Event) (Result, error) {
	r, err := c.deliver(ctx, events, deliverOpts{skipPrepare: true})
	return r.Result, err
}
