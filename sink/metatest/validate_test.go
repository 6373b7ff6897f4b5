package metatest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRefusedRequests: every kind of bad request is refused with Meta's
// status, code and subcode, a fresh fbtrace_id, and nothing accepted.
func TestRefusedRequests(t *testing.T) {
	good := func(t testing.TB) request { return jsonRequest(t, reqBody(goodEvent("e1"))) }
	withPath := func(p string) func(testing.TB) request {
		return func(t testing.TB) request { r := good(t); r.path = p; return r }
	}
	withBody := func(mut func(b map[string]any)) func(testing.TB) request {
		return func(t testing.TB) request {
			b := reqBody(goodEvent("e1"))
			mut(b)
			return jsonRequest(t, b)
		}
	}
	manyEvents := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = goodEvent("e")
		}
		return out
	}

	cases := []struct {
		name    string
		opts    Options
		build   func(testing.TB) request
		status  int
		code    int
		subcode int
		msg     string // substring of error.message
	}{
		{name: "token in URL query", build: withPath(eventsPath(DefaultDatasetID) + "?access_token=" + DefaultAccessToken),
			status: 400, code: 100, msg: "URL"},
		{name: "no version", build: withPath("/" + DefaultDatasetID + "/events"), status: 400, code: 2500, msg: "Unknown path components"},
		{name: "version without .0", build: withPath("/v26/" + DefaultDatasetID + "/events"), status: 400, code: 2500},
		{name: "deprecated version v24.0", build: withPath("/v24.0/" + DefaultDatasetID + "/events"), status: 400, code: 2635, msg: "deprecated version"},
		{name: "alias node", build: withPath("/v26.0/me/events"), status: 404, code: 803, msg: "aliases"},
		{name: "unknown edge", build: withPath("/v26.0/" + DefaultDatasetID + "/activities"), status: 400, code: 2500},
		{name: "extra path component", build: withPath("/v26.0/" + DefaultDatasetID + "/events/x"), status: 400, code: 2500},
		{name: "node without edge", build: withPath("/v26.0/" + DefaultDatasetID), status: 400, code: 2500},
		{name: "GET", build: func(t testing.TB) request { r := good(t); r.method = http.MethodGet; r.body = nil; return r },
			status: 400, code: 100, subcode: 33, msg: "Unsupported get request"},
		{name: "DELETE", build: func(t testing.TB) request { r := good(t); r.method = http.MethodDelete; return r },
			status: 400, code: 100, subcode: 33},
		{name: "other dataset", build: withPath(eventsPath("999999999999999")), status: 400, code: 100, subcode: 33, msg: "Unsupported post request"},
		{name: "content type text/plain", build: func(t testing.TB) request { r := good(t); r.ctype = "text/plain"; return r },
			status: 400, code: 100, msg: "Content-Type"},
		{name: "form encoded", build: func(t testing.TB) request {
			return request{method: "POST", path: eventsPath(DefaultDatasetID), ctype: "application/x-www-form-urlencoded",
				body: []byte("access_token=" + DefaultAccessToken + "&data=%5B%5D")}
		}, status: 400, code: 100},
		{name: "no content type", build: func(t testing.TB) request { r := good(t); r.ctype = ""; return r }, status: 400, code: 100},
		{name: "malformed JSON", build: func(t testing.TB) request { r := good(t); r.body = r.body[:len(r.body)-2]; return r },
			status: 400, code: 100, msg: "The parameter data is required"},
		{name: "two JSON values", build: func(t testing.TB) request { r := good(t); r.body = append(r.body, r.body...); return r },
			status: 400, code: 100},
		{name: "JSON array body", build: func(t testing.TB) request { r := good(t); r.body = []byte(`[1]`); return r }, status: 400, code: 100},
		{name: "no access_token", build: withBody(func(b map[string]any) { delete(b, "access_token") }),
			status: 400, code: 104, msg: "access token is required"},
		{name: "empty access_token", build: withBody(func(b map[string]any) { b["access_token"] = "" }), status: 400, code: 104},
		{name: "wrong access_token", build: withBody(func(b map[string]any) { b["access_token"] = "nope" }),
			status: 401, code: 190, msg: "Invalid OAuth access token"},
		{name: "access_token not a string", build: withBody(func(b map[string]any) { b["access_token"] = 42 }), status: 401, code: 190},
		{name: "unknown top-level key", build: withBody(func(b map[string]any) { b["partner_agent"] = "x" }), status: 400, code: 100, msg: "Invalid parameter"},
		{name: "test_event_code not a string", build: withBody(func(b map[string]any) { b["test_event_code"] = 7 }), status: 400, code: 100},
		{name: "no data", build: withBody(func(b map[string]any) { delete(b, "data") }), status: 400, code: 100, msg: "The parameter data is required"},
		{name: "data null", build: withBody(func(b map[string]any) { b["data"] = nil }), status: 400, code: 100},
		{name: "data is an object", build: withBody(func(b map[string]any) { b["data"] = goodEvent("e1") }), status: 400, code: 100, msg: "array"},
		{name: "data empty", build: withBody(func(b map[string]any) { b["data"] = []any{} }), status: 400, code: 100, msg: "The parameter data is required"},
		{name: "data over 1000", build: withBody(func(b map[string]any) { b["data"] = manyEvents(1001) }), status: 400, code: 100, msg: "1000"},
		{name: "appsecret_proof missing", opts: Options{AppSecret: "app_secret"},
			build: good, status: 400, code: 100, msg: "require an appsecret_proof"},
		{name: "appsecret_proof wrong", opts: Options{AppSecret: "app_secret"},
			build: withBody(func(b map[string]any) { b["appsecret_proof"] = strings.Repeat("0", 64) }), status: 400, code: 100, msg: "Invalid appsecret_proof"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Now = fixedNow
			s := Start(t, opts)
			a := send(t, s, tc.build(t))
			checkRefused(t, s, a, tc.status, tc.code, tc.subcode, tc.msg)
		})
	}
}

// TestRefusedEvents: one bad event of each kind rejects the request.
func TestRefusedEvents(t *testing.T) {
	ev := func(mut func(ev map[string]any)) map[string]any {
		e := goodEvent("e1")
		mut(e)
		return e
	}
	ud := func(mut func(u map[string]any)) map[string]any {
		return ev(func(e map[string]any) { mut(userData(e)) })
	}
	weakOnly := func(keys ...string) map[string]any {
		return ev(func(e map[string]any) {
			u := map[string]any{}
			for _, k := range keys {
				switch k {
				case "client_ip_address", "client_user_agent":
					u[k] = "203.0.113.7"
				default:
					u[k] = []any{sha(k)}
				}
			}
			e["user_data"] = u
		})
	}

	cases := []struct {
		name    string
		event   map[string]any
		status  int
		code    int
		subcode int
	}{
		{"event is a string", nil, 400, 100, 0},
		{"event_name missing", ev(func(e map[string]any) { delete(e, "event_name") }), 400, 100, SubcodeMissingParameter},
		{"event_name empty", ev(func(e map[string]any) { e["event_name"] = "" }), 400, 100, SubcodeMissingParameter},
		{"event_name not a string", ev(func(e map[string]any) { e["event_name"] = 3 }), 400, 100, 0},
		{"event_time missing", ev(func(e map[string]any) { delete(e, "event_time") }), 400, 100, SubcodeMissingParameter},
		{"event_time float", ev(func(e map[string]any) { e["event_time"] = json.Number(string(unix(testNow)) + ".5") }), 400, 100, SubcodeInvalidEventTime},
		{"event_time float .0", ev(func(e map[string]any) { e["event_time"] = json.Number(string(unix(testNow)) + ".0") }), 400, 100, SubcodeInvalidEventTime},
		{"event_time exponent", ev(func(e map[string]any) { e["event_time"] = json.Number("1.7894e9") }), 400, 100, SubcodeInvalidEventTime},
		{"event_time string", ev(func(e map[string]any) { e["event_time"] = string(unix(testNow)) }), 400, 100, SubcodeInvalidEventTime},
		{"event_time milliseconds", ev(func(e map[string]any) { e["event_time"] = testNow.UnixMilli() }), 400, 100, SubcodeInvalidEventTime},
		{"event_time zero", ev(func(e map[string]any) { e["event_time"] = 0 }), 400, 100, SubcodeInvalidEventTime},
		{"event_time 8 days old", ev(func(e map[string]any) { e["event_time"] = unix(testNow.Add(-8 * 24 * time.Hour)) }), 400, 100, SubcodeEventTooOld},
		{"event_time 7 days and 1 s old", ev(func(e map[string]any) { e["event_time"] = unix(testNow.Add(-7*24*time.Hour - time.Second)) }), 400, 100, SubcodeEventTooOld},
		{"action_source missing", ev(func(e map[string]any) { delete(e, "action_source") }), 400, 100, SubcodeMissingParameter},
		{"action_source unknown", ev(func(e map[string]any) { e["action_source"] = "crm" }), 400, 100, 0},
		{"action_source not a string", ev(func(e map[string]any) { e["action_source"] = true }), 400, 100, 0},
		{"event_id not a string", ev(func(e map[string]any) { e["event_id"] = 12 }), 400, 100, 0},
		{"unknown event key", ev(func(e map[string]any) { e["evnt_id"] = "x" }), 400, 100, 0},
		{"user_data missing", ev(func(e map[string]any) { delete(e, "user_data") }), 400, 100, SubcodeMissingParameter},
		{"user_data an array", ev(func(e map[string]any) { e["user_data"] = []any{} }), 400, 100, 0},
		{"user_data empty", ev(func(e map[string]any) { e["user_data"] = map[string]any{} }), 400, 100, SubcodeNotEnoughUserData},
		{"only fn ln ge", weakOnly("fn", "ln", "ge"), 400, 100, SubcodeNotEnoughUserData},
		{"only location and birth date", weakOnly("ct", "st", "zp", "country", "db"), 400, 100, SubcodeNotEnoughUserData},
		{"only client_ip_address", weakOnly("client_ip_address", "fn"), 400, 100, SubcodeNotEnoughUserData},
		{"only empty hashed arrays", ev(func(e map[string]any) { e["user_data"] = map[string]any{"em": []any{}} }), 400, 100, SubcodeNotEnoughUserData},
		{"unknown user_data key", ud(func(u map[string]any) { u["email"] = []any{hashEm} }), 400, 100, 0},
		{"em unhashed", ud(func(u map[string]any) { u["em"] = []any{"jane@example.com"} }), 400, 100, SubcodeUnhashed},
		{"em upper-case hex", ud(func(u map[string]any) { u["em"] = []any{strings.ToUpper(hashEm)} }), 400, 100, SubcodeUnhashed},
		{"em 63 hex characters", ud(func(u map[string]any) { u["em"] = []any{hashEm[1:]} }), 400, 100, SubcodeUnhashed},
		{"em number in array", ud(func(u map[string]any) { u["em"] = []any{1} }), 400, 100, SubcodeUnhashed},
		{"em an object", ud(func(u map[string]any) { u["em"] = map[string]any{} }), 400, 100, SubcodeUnhashed},
		{"second em unhashed", ud(func(u map[string]any) { u["em"] = []any{hashEm, "john@example.com"} }), 400, 100, SubcodeUnhashed},
		{"ph unhashed string", ud(func(u map[string]any) { u["ph"] = "+41791234567" }), 400, 100, SubcodeUnhashed},
		{"external_id unhashed", ud(func(u map[string]any) { u["external_id"] = []any{"crm-42"} }), 400, 100, SubcodeUnhashed},
		{"country unhashed", ud(func(u map[string]any) { u["country"] = []any{"ch"} }), 400, 100, SubcodeUnhashed},
		{"lead_id string", ud(func(u map[string]any) { u["lead_id"] = leadID17 }), 400, 100, SubcodeInvalidLeadID},
		{"lead_id float", ud(func(u map[string]any) { u["lead_id"] = json.Number("123456789012345.0") }), 400, 100, SubcodeInvalidLeadID},
		{"lead_id exponent", ud(func(u map[string]any) { u["lead_id"] = json.Number("1.2345678901234567e16") }), 400, 100, SubcodeInvalidLeadID},
		{"lead_id 14 digits", ud(func(u map[string]any) { u["lead_id"] = json.Number("12345678901234") }), 400, 100, SubcodeInvalidLeadID},
		{"lead_id 18 digits", ud(func(u map[string]any) { u["lead_id"] = json.Number("123456789012345678") }), 400, 100, SubcodeInvalidLeadID},
		{"lead_id negative", ud(func(u map[string]any) { u["lead_id"] = json.Number("-123456789012345") }), 400, 100, SubcodeInvalidLeadID},
		{"lead_id hashed", ud(func(u map[string]any) { u["lead_id"] = []any{sha(leadID17)} }), 400, 100, SubcodeInvalidLeadID},
		{"fbc not a string", ud(func(u map[string]any) { u["fbc"] = 1 }), 400, 100, 0},
		{"custom_data a string", ev(func(e map[string]any) { e["custom_data"] = "crm" }), 400, 100, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Now: fixedNow})
			var data any = tc.event
			if tc.event == nil {
				data = "not an event"
			}
			// The bad event sits between two good ones: the whole request
			// is refused, the good ones are not kept.
			b := map[string]any{"data": []any{goodEvent("g1"), data, goodEvent("g2")}, "access_token": DefaultAccessToken}
			a := send(t, s, jsonRequest(t, b))
			checkRefused(t, s, a, tc.status, tc.code, tc.subcode, "")
			if got := s.Requests()[0].Events; got != 3 {
				t.Errorf("RequestLog.Events = %d, want 3", got)
			}
			if tc.subcode >= 2804000 {
				// Conversions API validation errors carry every field
				// ([LiveV26]): is_transient false, a title and a message.
				if !bytes.Contains(a.raw, []byte(`"is_transient":false`)) || a.err.ErrorUserTitle == "" || a.err.ErrorUserMsg == "" ||
					a.err.Message != "Invalid parameter" || a.err.Type != "OAuthException" {
					t.Errorf("CAPI error body incomplete: %s", a.raw)
				}
			}
		})
	}
}

// checkRefused asserts an error answer and that nothing was accepted.
func checkRefused(t *testing.T, s *Server, a answer, status, code, subcode int, msg string) {
	t.Helper()
	if a.status != status || a.err.Code != code || a.err.ErrorSubcode != subcode {
		t.Fatalf("got status %d code %d subcode %d, want %d %d %d: %s", a.status, a.err.Code, a.err.ErrorSubcode, status, code, subcode, a.raw)
	}
	if msg != "" && !strings.Contains(a.err.Message, msg) {
		t.Errorf("message %q does not contain %q", a.err.Message, msg)
	}
	if a.err.FbtraceID == "" || a.header.Get("X-FB-Trace-ID") != a.err.FbtraceID {
		t.Errorf("fbtrace_id %q, header %q", a.err.FbtraceID, a.header.Get("X-FB-Trace-ID"))
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if acc := s.Accepted(); len(acc) != 0 {
		t.Errorf("%d events accepted from a refused request", len(acc))
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Status != status || reqs[0].Code != code || reqs[0].Subcode != subcode || reqs[0].Reason == "" {
		t.Errorf("request log %+v", reqs)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations from a refused request: %v", v)
	}
}

// TestAcceptsGoodRequest: a good request is answered like Meta and recorded
// exactly, the 17-digit lead_id intact.
func TestAcceptsGoodRequest(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	e1, e2 := goodEvent("id-1"), goodEvent("id-2")
	e2["event_name"] = "sales_opportunity"
	e2["event_time"] = unix(testNow.Add(-7 * 24 * time.Hour)) // exactly 7 days: still in the window
	b := reqBody(e1, e2)
	b["test_event_code"] = "TEST123"
	a := mustPost(t, s, b)

	if a.ok.EventsReceived != 2 || a.ok.FbtraceID == "" || a.ok.Messages == nil || len(a.ok.Messages) != 0 {
		t.Errorf("answer %s", a.raw)
	}
	if !bytes.Contains(a.raw, []byte(`"messages":[]`)) {
		t.Errorf("messages not an empty array: %s", a.raw)
	}
	acc := s.Accepted()
	if len(acc) != 2 {
		t.Fatalf("accepted %d events, want 2", len(acc))
	}
	for i, want := range []map[string]any{e1, e2} {
		wantRaw, _ := json.Marshal(want)
		if !bytes.Equal(acc[i].Raw, wantRaw) {
			t.Errorf("Raw[%d] = %s, want %s", i, acc[i].Raw, wantRaw)
		}
		if !bytes.Contains(acc[i].Raw, []byte(`"lead_id":`+leadID17)) {
			t.Errorf("lead_id altered in Raw: %s", acc[i].Raw)
		}
		got := acc[i].Event
		if got.UserData.LeadID != leadID17Int || got.EventID != want["event_id"] || got.EventName != want["event_name"] ||
			got.ActionSource != "system_generated" || len(got.UserData.Em) != 1 || got.UserData.Em[0] != hashEm ||
			got.UserData.Fbc == "" || got.CustomData["event_source"] != "crm" {
			t.Errorf("Event[%d] = %+v", i, got)
		}
		if acc[i].TestEventCode != "TEST123" || acc[i].RequestID != 1 {
			t.Errorf("Received[%d] TestEventCode %q RequestID %d", i, acc[i].TestEventCode, acc[i].RequestID)
		}
	}
	if acc[1].Event.EventTime != testNow.Add(-7*24*time.Hour).Unix() {
		t.Errorf("EventTime %d", acc[1].Event.EventTime)
	}
	if r := s.Requests(); len(r) != 1 || r[0] != (RequestLog{ID: 1, Status: 200, Events: 2}) {
		t.Errorf("request log %+v", r)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}

	// A resend is accepted again and recorded again (leadtail is
	// at-least-once; Meta drops the duplicate itself within 48 h), with a
	// fresh fbtrace_id.
	a2 := mustPost(t, s, b)
	if a2.ok.FbtraceID == a.ok.FbtraceID {
		t.Error("fbtrace_id reused")
	}
	if acc := s.Accepted(); len(acc) != 4 || acc[2].RequestID != 2 || acc[2].Event.EventID != "id-1" {
		t.Errorf("after resend: %d accepted", len(acc))
	}
}

// TestAcceptsOtherIdentifiers: strong identifiers other than lead_id.
func TestAcceptsOtherIdentifiers(t *testing.T) {
	for name, u := range map[string]map[string]any{
		"em only":             {"em": []any{hashEm}},
		"ph only":             {"ph": []any{hashPh}},
		"external_id only":    {"external_id": []any{sha("crm-42")}},
		"fbc only":            {"fbc": "fb.1.1554763741205.AbCd"},
		"fbp with weak":       {"fbp": "fb.1.1558571054389.1098115397", "fn": []any{sha("jane")}},
		"ip and user agent":   {"client_ip_address": "203.0.113.7", "client_user_agent": "Mozilla/5.0"},
		"lead_id 15 digits":   {"lead_id": json.Number("123456789012345")},
		"null values ignored": {"lead_id": json.Number("123456789012345"), "em": nil, "fbc": nil},
	} {
		t.Run(name, func(t *testing.T) {
			s := Start(t, Options{Now: fixedNow})
			e := goodEvent("x")
			e["user_data"] = u
			mustPost(t, s, reqBody(e))
			if v := s.Violations(); len(v) != 0 {
				t.Errorf("violations: %v", v)
			}
		})
	}
}

// TestMaxBatchAccepted: exactly 1000 events pass.
func TestMaxBatchAccepted(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	events := make([]map[string]any, 1000)
	for i := range events {
		events[i] = goodEvent("e")
	}
	if a := mustPost(t, s, reqBody(events...)); a.ok.EventsReceived != 1000 {
		t.Errorf("events_received %d", a.ok.EventsReceived)
	}
}

// TestViolations: what Meta accepts but leadtail must never send is
// accepted and reported.
func TestViolations(t *testing.T) {
	ev := func(mut func(ev map[string]any)) map[string]any {
		e := goodEvent("v1")
		mut(e)
		return e
	}
	cases := []struct {
		name     string
		event    map[string]any
		header   http.Header
		want     string // substring of the violation
		messages bool   // Meta adds a warning to messages
	}{
		{name: "action_source website", event: ev(func(e map[string]any) { e["action_source"] = "website" }), want: "system_generated"},
		{name: "action_source other", event: ev(func(e map[string]any) { e["action_source"] = "other" }), want: "system_generated"},
		{name: "event_id missing", event: ev(func(e map[string]any) { delete(e, "event_id") }), want: "event_id missing"},
		{name: "event_id empty", event: ev(func(e map[string]any) { e["event_id"] = "" }), want: "event_id missing"},
		{name: "custom_data missing", event: ev(func(e map[string]any) { delete(e, "custom_data") }), want: "custom_data missing"},
		{name: "event_source not crm", event: ev(func(e map[string]any) { e["custom_data"].(map[string]any)["event_source"] = "web" }), want: "event_source"},
		{name: "event_source missing", event: ev(func(e map[string]any) { delete(e["custom_data"].(map[string]any), "event_source") }), want: "event_source"},
		{name: "lead_event_source empty", event: ev(func(e map[string]any) { e["custom_data"].(map[string]any)["lead_event_source"] = " " }), want: "lead_event_source"},
		{name: "fbc malformed", event: ev(func(e map[string]any) { userData(e)["fbc"] = "fb.1.1554763741.AbCd" }), want: "fbc", messages: true},
		{name: "fbc bad subdomain index", event: ev(func(e map[string]any) { userData(e)["fbc"] = "fb.3.1554763741205.AbCd" }), want: "fbc", messages: true},
		{name: "fbc without click id", event: ev(func(e map[string]any) { userData(e)["fbc"] = "fb.1.1554763741205." }), want: "fbc", messages: true},
		{name: "event_time in the future", event: ev(func(e map[string]any) { e["event_time"] = unix(testNow.Add(time.Hour)) }), want: "future"},
		{name: "Meta parameter leadtail never sends", event: ev(func(e map[string]any) { e["event_source_url"] = "https://x.example" }), want: "event_source_url"},
		{name: "hashed field as a string", event: ev(func(e map[string]any) { userData(e)["em"] = hashEm }), want: "arrays"},
		{name: "Authorization header", event: goodEvent("v1"), header: http.Header{"Authorization": {"Bearer " + DefaultAccessToken}}, want: "Authorization"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Now: fixedNow})
			rq := jsonRequest(t, reqBody(goodEvent("ok"), tc.event))
			rq.header = tc.header
			a := send(t, s, rq)
			if a.status != 200 || a.ok.EventsReceived != 2 {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			if got := len(a.ok.Messages) > 0; got != tc.messages {
				t.Errorf("messages %s", a.raw)
			}
			if n := len(s.Accepted()); n != 2 {
				t.Errorf("accepted %d, want 2", n)
			}
			v := s.Violations()
			if len(v) != 1 || !strings.Contains(v[0], tc.want) || !strings.Contains(v[0], "request 1") {
				t.Errorf("violations %q, want one containing %q", v, tc.want)
			}
		})
	}
}

// TestStringHashDecodesAsSlice: Meta takes a single string for a hashed key;
// Accepted shows it as a one-element slice.
func TestStringHashDecodesAsSlice(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	e := goodEvent("x")
	userData(e)["em"] = hashEm
	mustPost(t, s, reqBody(e))
	if em := s.Accepted()[0].Event.UserData.Em; len(em) != 1 || em[0] != hashEm {
		t.Errorf("Em = %q", em)
	}
}

// TestBodyTooLarge: the fake's 10 MB limit.
func TestBodyTooLarge(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	b := reqBody(goodEvent("x"))
	b["test_event_code"] = strings.Repeat("a", MaxBodyBytes)
	a := send(t, s, jsonRequest(t, b))
	if a.status != http.StatusRequestEntityTooLarge || a.err.Code != 100 {
		t.Fatalf("status %d code %d", a.status, a.err.Code)
	}
	if len(s.Accepted()) != 0 {
		t.Error("accepted")
	}
}
