package metatest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkCheckRequest validates one 1,000-event request the way the fake
// does for every request: in the whole-pipeline benchmarks the fake shares
// the machine with leadtail and the database, so its cost shows in their
// figures.
func BenchmarkCheckRequest(b *testing.B) {
	s := New(Options{Now: fixedNow})
	evs := make([]map[string]any, 1000)
	for i := range evs {
		evs[i] = goodEvent(fmt.Sprintf("event-%d", i))
		delete(userData(evs[i]), "fbc")
		userData(evs[i])["fn"] = []any{sha(fmt.Sprint("jane", i))}
	}
	body := jsonRequest(b, reqBody(evs...)).body
	r := httptest.NewRequest(http.MethodPost, eventsPath(DefaultDatasetID), nil)
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		out, e := s.checkRequest(r, body, 1)
		if e != nil || len(out.events) != len(evs) || len(out.violations) > 0 {
			b.Fatalf("%v %d %v", e, len(out.events), out.violations)
		}
	}
}
