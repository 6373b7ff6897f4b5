package mapping

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/leadtail/leadtail/sources"
)

// benchMapping is the whole-pipeline benchmark's mapping (cmd/leadtail):
// a lead id, two hashed contact fields and one value inside a JSON column.
const benchMapping = `
name: leads
table: public.leads
lead_event_source: Bench CRM
stage: {column: status, events: {new: initial_lead, contacted: contacted, qualified: marketing_qualified_lead, won: converted}}
user_data:
  lead_id: fb_lead_id
  em: email
  ph: phone
  fn: {json: profile, path: name.first}
`

// BenchmarkMapEvent maps one stage change into an event: transition
// detection, normalising and hashing three contact values, event id.
func BenchmarkMapEvent(b *testing.B) {
	m := compileYAML(b, benchMapping, Options{})
	before := row("id", int64(42), "status", "new", "email", "Lead42@Example.com", "phone", "+1 555 0000042",
		"fb_lead_id", "1000000000000042", "profile", json.RawMessage(`{"name": {"first": "Jane42"}}`))
	after := sources.Row{}
	for k, v := range before {
		after[k] = v
	}
	after["status"] = "contacted"
	ch := change(sources.OpUpdate, before, after)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.Map(ctx, ch, nil)
		if err != nil || len(out) != 1 || out[0].Event == nil {
			b.Fatalf("map: %v %+v", err, out)
		}
	}
}
