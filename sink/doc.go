// Package sink is leadtail's side of Meta's Conversions API: events are
// checked ([Prepare]), sent in batches by a [Client], refused ones land in a
// [DeadLetterFile], and a [FileStore] keeps the checkpoint.
//
// # Error policy
//
// [Client.Deliver] returns nil only when every event was either accepted by
// Meta or written and fsynced to the dead-letter file; anything else keeps
// the batch (and the checkpoint) where it is. Answers are classified by the
// JSON body (error.code, error.error_subcode, error.is_transient), never by
// message text, and the HTTP status only matters without a Graph error:
//
//   - Before sending, [Prepare] dead-letters what Meta is known to refuse
//     (older than 7 days minus delivery.expiry_margin, before the lead's
//     creation, bad lead_id, unhashed contact data, no strong identifier),
//     since one such event fails a whole request.
//   - Transient (network errors, timeouts, 5xx, non-JSON bodies, codes 1, 2,
//     21009, is_transient): the same request is retried forever with
//     jittered exponential backoff between retry_min and retry_max.
//   - Throttled (4, 17, 32, 341, 613, 80000–80014): every request of the
//     client pauses for Retry-After or X-Business-Use-Case-Usage's
//     estimated_time_to_regain_access, else for a client-wide backoff.
//   - Configuration (190, 102, 10, 200–299, 3, 100/33, 368, a code-100
//     GraphMethodException without subcode such as a wrong appsecret_proof,
//     and every code leadtail does not know): the client halts. [Client.State] reports it
//     with a one-line reason naming the fix, nothing is dropped or
//     dead-lettered, and the request is retried every halt_retry.
//   - 100/2804003 (too old): events stale by our clock are dead-lettered
//     and the rest resent; if our clock finds none, as below.
//   - Any other code 100 (the Conversions API's payload errors): the request is split in halves, recursively, until
//     the bad events are isolated; those are dead-lettered with Meta's
//     code, subcode, message and fbtrace_id, the rest delivered.
//
// The access token travels only in the request body. It is never logged,
// never part of an error, and redacted from anything Meta echoes back.
package sink
