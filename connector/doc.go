// Package connector wires a source, the mappings and the Meta sink into
// one pipeline, owns the configuration and runs the delivery/checkpoint
// protocol.
//
// # The protocol
//
//  1. Start from the stored position: the checkpoint file under state_dir
//     (the Postgres source also consults its slot's confirmed_flush_lsn,
//     which is durable on the server).
//  2. Map each change. A change that yields no event (skipped, filtered, an
//     unmapped table, a heartbeat) still carries its position forward:
//     otherwise an idle or filtered database would pin WAL or binlog forever.
//  3. Batch events by count (delivery.batch_size, at most Meta's 1,000) and
//     time (delivery.batch_wait). A batch carries the last position seen
//     while it was open; sources set positions only at transaction ends.
//  4. Deliver up to delivery.max_in_flight batches at once. The sink returns
//     only when every event of a batch is accepted by Meta or written to the
//     dead-letter file (it retries transient errors and waits out halts such
//     as an expired token on its own).
//  5. Batches complete in any order but are committed in order: a position is
//     saved (checkpoint file: temp, fsync, rename, fsync dir) only when its
//     batch and every batch before it are done, and only after the save is it
//     acknowledged to the source (Source.Ack), which lets the server forget it.
//  6. On SIGINT/SIGTERM the source stops, the open batch is flushed and
//     in-flight batches finish within delivery.shutdown_timeout; what was
//     delivered is saved and acked. A batch cut off by the timeout is not
//     committed: it is sent again after the restart, with the same event_ids.
//
// Consequences: nothing is acknowledged before it is delivered, so a crash
// at any point loses nothing; at most the batches in flight at the crash are
// sent twice, and Meta deduplicates them by event_id + event_name.
package connector
