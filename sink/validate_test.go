package sink

import (
	"strings"
	"testing"
	"time"
)

func TestPrepare(t *testing.T) {
	const margin = time.Hour
	now := testNow
	tests := []struct {
		name     string
		mod      func(*Event)
		want     string
		wantTime int64 // 0: unchanged
	}{
		{name: "valid", mod: func(*Event) {}},
		{name: "missing event_name", mod: func(e *Event) { e.EventName = "" }, want: ReasonMissingEventName},
		{name: "missing event_id", mod: func(e *Event) { e.EventID = "" }, want: ReasonMissingEventID},
		{name: "missing event_time", mod: func(e *Event) { e.EventTime = 0 }, want: ReasonMissingEventTime},
		{name: "milliseconds", mod: func(e *Event) { e.EventTime = now.UnixMilli() }, want: ReasonMillis},
		{name: "future is clamped", mod: func(e *Event) { e.EventTime = now.Add(time.Hour).Unix() }, wantTime: now.Unix()},
		{name: "just inside the window", mod: func(e *Event) { e.EventTime = now.Add(-MaxEventAge + margin + time.Minute).Unix() }},
		{name: "inside 7 days but within the margin", mod: func(e *Event) { e.EventTime = now.Add(-MaxEventAge + margin/2).Unix() }, want: ReasonExpired},
		{name: "older than 7 days", mod: func(e *Event) { e.EventTime = now.Add(-8 * 24 * time.Hour).Unix() }, want: ReasonExpired},
		{name: "before lead creation", mod: func(e *Event) { e.LeadCreated = e.EventTime + 1 }, want: ReasonBeforeLead},
		{name: "at lead creation", mod: func(e *Event) { e.LeadCreated = e.EventTime }},
		{name: "lead created in the future, event too", mod: func(e *Event) {
			e.LeadCreated = now.Add(time.Minute).Unix()
			e.EventTime = now.Add(2 * time.Minute).Unix()
		}, wantTime: now.Unix()},
		{name: "lead_id 14 digits", mod: func(e *Event) { e.UserData.LeadID = 12345678901234 }, want: ReasonInvalidLeadID},
		{name: "lead_id 15 digits", mod: func(e *Event) { e.UserData.LeadID = 123456789012345 }},
		{name: "lead_id 17 digits", mod: func(e *Event) { e.UserData.LeadID = 12345678901234567 }},
		{name: "lead_id 18 digits", mod: func(e *Event) { e.UserData.LeadID = 123456789012345678 }, want: ReasonInvalidLeadID},
		{name: "lead_id negative", mod: func(e *Event) { e.UserData.LeadID = -123456789012345 }, want: ReasonInvalidLeadID},
		{name: "plaintext email", mod: func(e *Event) { e.UserData.Em = []string{"jane@example.com"} }, want: ReasonUnhashed},
		{name: "upper-case hash", mod: func(e *Event) { e.UserData.Em = []string{strings.ToUpper(sha("x"))} }, want: ReasonUnhashed},
		{name: "empty hashed value", mod: func(e *Event) { e.UserData.Ph = []string{""} }, want: ReasonUnhashed},
		{name: "plaintext city among hashes", mod: func(e *Event) { e.UserData.Ct = []string{sha("a"), "berlin"} }, want: ReasonUnhashed},
		{name: "no identifier", mod: func(e *Event) { e.UserData = UserData{} }, want: ReasonNoIdentifier},
		{name: "only weak identifiers", mod: func(e *Event) {
			e.UserData = UserData{Fn: []string{sha("jane")}, Ge: []string{sha("f")}, Ct: []string{sha("berlin")}}
		}, want: ReasonNoIdentifier},
		{name: "ip without user agent", mod: func(e *Event) { e.UserData = UserData{ClientIPAddress: "192.0.2.1"} }, want: ReasonNoIdentifier},
		{name: "ip and user agent", mod: func(e *Event) {
			e.UserData = UserData{ClientIPAddress: "192.0.2.1", ClientUserAgent: "Mozilla/5.0"}
		}},
		{name: "only ph", mod: func(e *Event) { e.UserData = UserData{Ph: []string{sha("15551234567")}} }},
		{name: "only external_id", mod: func(e *Event) { e.UserData = UserData{ExternalID: []string{sha("crm-7")}} }},
		{name: "only fbc", mod: func(e *Event) { e.UserData = UserData{Fbc: "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrSt"} }},
		{name: "only fbp", mod: func(e *Event) { e.UserData = UserData{Fbp: "fb.1.1596403881668.1116446470"} }},
		{name: "empty action_source defaults", mod: func(e *Event) { e.ActionSource = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := goodEvent(1)
			tt.mod(&ev)
			before := ev.EventTime
			if got := Prepare(&ev, now, margin); got != tt.want {
				t.Fatalf("Prepare = %q, want %q", got, tt.want)
			}
			want := tt.wantTime
			if want == 0 {
				want = before
			}
			if tt.want == "" && ev.EventTime != want {
				t.Errorf("event_time = %d, want %d", ev.EventTime, want)
			}
			if tt.want == "" && ev.ActionSource != ActionSystemGenerated {
				t.Errorf("action_source = %q", ev.ActionSource)
			}
		})
	}
}
