package connector

import (
	"context"

	"github.com/leadtail/leadtail/sink"
	"github.com/leadtail/leadtail/sources"
)

// Source is a database change stream.
type Source interface {
	// Stream calls emit for each committed change in commit order, starting
	// strictly after from (the empty Position: where the source's own durable
	// state says, e.g. the slot's confirmed_flush_lsn). emit may block: that
	// is backpressure. Stream returns ctx.Err() when ctx is cancelled and a
	// non-nil error for anything it could not recover from itself.
	Stream(ctx context.Context, from sources.Position, emit func(context.Context, sources.Change) error) error
	// Ack tells the source that every change up to and including p is
	// delivered and checkpointed, so the server may forget it. It never
	// blocks on the network.
	Ack(p sources.Position) error
	// Close releases connections. Stream must have returned.
	Close() error
}

// Sink delivers events to Meta.
type Sink interface {
	// Deliver returns nil once every event was accepted by Meta or written
	// to the dead-letter file. It retries transient failures and waits out
	// halts (expired token) itself, so its only errors are ctx's and local
	// failures (dead-letter file unwritable).
	Deliver(ctx context.Context, events []sink.Event) (sink.Result, error)
}

// CheckpointStore persists the last delivered position.
type CheckpointStore interface {
	Load(ctx context.Context) (sources.Position, error)
	Save(ctx context.Context, p sources.Position) error
}
