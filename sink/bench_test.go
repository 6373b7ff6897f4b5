package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func hexSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// benchEvents are n events shaped like the whole-pipeline benchmark's: a
// lead id, three hashed contact values and the CRM custom_data.
func benchEvents(n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{
			EventName:    "marketing_qualified_lead",
			EventTime:    time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Unix() + int64(i),
			ActionSource: ActionSystemGenerated,
			EventID:      hexSHA(fmt.Sprint("event", i))[:32],
			UserData: UserData{
				LeadID: 1000000000000000 + int64(i),
				Em:     []string{hexSHA(fmt.Sprintf("lead%d@example.com", i))},
				Ph:     []string{hexSHA(fmt.Sprintf("1555%07d", i))},
				Fn:     []string{hexSHA(fmt.Sprintf("jane%d", i))},
			},
			CustomData: map[string]any{"event_source": "crm", "lead_event_source": "Bench CRM"},
		}
	}
	return evs
}

// BenchmarkEncodeRequest encodes one request of 1,000 events, Meta's
// largest.
func BenchmarkEncodeRequest(b *testing.B) {
	cfg := DefaultConfig()
	cfg.DatasetID = "123456789012345"
	cfg.AccessToken = Secret("EAAB" + "benchtoken")
	c, err := New(cfg, DefaultDeliveryConfig(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(MaxBatch)
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		body, err := c.body(evs, idx)
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.ReportMetric(float64(size), "bytes/request")
}

// TestEncodeMatchesMarshal: the hand-written encoder makes exactly the
// bytes encoding/json makes of the same Request.
func TestEncodeMatchesMarshal(t *testing.T) {
	odd := Event{
		EventName: "stage <&> \"x\"", EventTime: 1, ActionSource: ActionSystemGenerated, EventID: "id\u2028\x01é",
		UserData: UserData{
			Em: []string{"a", "b"}, Ph: nil, Ln: []string{}, Country: []string{"c"}, ExternalID: []string{"x\\y"},
			Fbc: "fb.1.1700000000000.abc", ClientUserAgent: "Mozilla/5.0 <x>", IgSid: "s", Madid: "\xff",
		},
		CustomData: map[string]any{
			"event_source": "crm", "b": true, "i": int64(-5), "n": 3, "f": 1.5e21, "g": 0.000001,
			"num": json.Number("12.50"), "raw": json.RawMessage(`{ "a" : [1, 2] }`), "list": []any{"x", int64(1)},
			"nil": nil, "nested": map[string]any{"z": 1, "a": "<"}, "u": uint64(18446744073709551615),
		},
	}
	noCustom := benchEvents(1)[0]
	noCustom.CustomData = nil
	cases := []struct {
		name            string
		events          []Event
		proof, testCode string
	}{
		{"bench events", benchEvents(3), "", ""},
		{"odd values", []Event{odd}, "", ""},
		{"nil custom_data", []Event{noCustom}, "", ""},
		{"proof and test code", benchEvents(2), "0123abc", "TEST<1>"},
		{"empty", nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx := make([]int, len(tc.events))
			for i := range idx {
				idx[i] = len(idx) - 1 - i // any order
			}
			req := Request{Data: make([]Event, len(idx)), AccessToken: "EAAB<tok>", AppSecretProof: tc.proof, TestEventCode: tc.testCode}
			for j, i := range idx {
				req.Data[j] = tc.events[i]
			}
			want, err := json.Marshal(&req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendRequest(nil, tc.events, idx, "EAAB<tok>", tc.proof, tc.testCode)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("encoder differs from encoding/json:\n got %s\nwant %s", got, want)
			}
		})
	}
	bad := benchEvents(1)
	bad[0].CustomData = map[string]any{"c": make(chan int)}
	if _, err := appendRequest(nil, bad, []int{0}, "t", "", ""); err == nil {
		t.Error("a channel in custom_data encoded without error")
	}
}
