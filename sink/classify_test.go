package sink

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	ge := func(code, sub int, transient bool) string {
		return fmt.Sprintf(`{"error":{"message":"m","type":"OAuthException","code":%d,"error_subcode":%d,"is_transient":%t,"fbtrace_id":"T"}}`,
			code, sub, transient)
	}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   class
		wait   time.Duration
	}{
		{"success", 200, nil, `{"events_received":2,"messages":[],"fbtrace_id":"T"}`, classOK, 0},
		{"success with whitespace", 200, nil, " \n{\"events_received\":1}\n", classOK, 0},
		{"html 502", 502, nil, "<html><body>Sorry, something went wrong.</body></html>", classTransient, 0},
		{"empty 500", 500, nil, "", classTransient, 0},
		{"200 non-JSON", 200, nil, "OK", classTransient, 0},
		{"truncated JSON", 200, nil, `{"events_rec`, classTransient, 0},
		{"503 JSON without error", 503, nil, `{}`, classTransient, 0},
		{"429 without body", 429, http.Header{"Retry-After": {"7"}}, "", classThrottled, 7 * time.Second},
		{"404 JSON without error", 404, nil, `{"foo":1}`, classHalt, 0},
		{"redirect", 301, http.Header{"Location": {"https://graph.facebook.com/v26.0/1/events"}}, "", classHalt, 0},
		{"code 1", 500, nil, ge(1, 0, false), classTransient, 0},
		{"code 2", 500, nil, ge(2, 0, true), classTransient, 0},
		{"is_transient on unknown code", 400, nil, ge(12345, 0, true), classTransient, 0},
		{"code 21009", 400, nil, ge(21009, 0, false), classTransient, 0},
		{"code 4", 400, nil, ge(4, 0, false), classThrottled, 0},
		{"code 17 transient flag", 400, nil, ge(17, 2446079, true), classThrottled, 0},
		{"code 32", 400, nil, ge(32, 0, false), classThrottled, 0},
		{"code 341", 400, nil, ge(341, 0, false), classThrottled, 0},
		{"code 613", 400, nil, ge(613, 0, false), classThrottled, 0},
		{"code 80000", 400, nil, ge(80000, 0, false), classThrottled, 0},
		{"code 80014", 400, nil, ge(80014, 0, false), classThrottled, 0},
		{"code 80015 is unknown", 400, nil, ge(80015, 0, false), classHalt, 0},
		{"code 190", 401, nil, ge(190, 463, false), classHalt, 0},
		{"code 102", 400, nil, ge(102, 0, false), classHalt, 0},
		{"code 10", 403, nil, ge(10, 0, false), classHalt, 0},
		{"code 200", 403, nil, ge(200, 0, false), classHalt, 0},
		{"code 299", 403, nil, ge(299, 0, false), classHalt, 0},
		{"code 3", 400, nil, ge(3, 0, false), classHalt, 0},
		{"code 368", 400, nil, ge(368, 1404078, false), classHalt, 0},
		{"code 100/33", 400, nil, ge(100, 33, false), classHalt, 0},
		{"wrong appsecret_proof", 400, nil, `{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"GraphMethodException","code":100}}`, classHalt, 0},
		{"code 100 OAuthException no subcode", 400, nil, `{"error":{"message":"(#100) Param","type":"OAuthException","code":100}}`, classBadEvent, 0},
		{"code 100/2804003", 400, nil, ge(100, 2804003, false), classStale, 0},
		{"code 100/2804036", 400, nil, ge(100, 2804036, false), classBadEvent, 0},
		{"code 100 no subcode", 400, nil, `{"error":{"message":"(#100) Param","code":100}}`, classBadEvent, 0},
		{"code 100 on a 500", 500, nil, ge(100, 2804016, false), classBadEvent, 0},
		{"unknown code", 400, nil, ge(2635, 0, false), classHalt, 0},
		{"error_data as string", 400, nil, `{"error":{"message":"x","code":100,"error_subcode":2804050,"error_data":"oops"}}`, classBadEvent, 0},
		{"error_data as object", 400, nil, `{"error":{"message":"x","code":100,"error_subcode":2804050,"error_data":{"a":1}}}`, classBadEvent, 0},
		{"retry-after seconds", 400, http.Header{"Retry-After": {"30"}}, ge(4, 0, false), classThrottled, 30 * time.Second},
		{"usage header minutes", 400, http.Header{"X-Business-Use-Case-Usage": {
			`{"123":[{"type":"ads_management","call_count":100,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":3}]}`,
		}}, ge(80000, 0, false), classThrottled, 3 * time.Minute},
		{"larger of both hints", 400, http.Header{
			"Retry-After":               {"30"},
			"X-Business-Use-Case-Usage": {`{"1":[{"estimated_time_to_regain_access":0}],"2":[{"estimated_time_to_regain_access":2}]}`},
		}, ge(17, 0, false), classThrottled, 2 * time.Minute},
		{"garbage hints", 400, http.Header{
			"Retry-After":               {"soon"},
			"X-Business-Use-Case-Usage": {`not json`},
		}, ge(4, 0, false), classThrottled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			o := classify(tt.status, h, []byte(tt.body), testNow)
			if o.class != tt.want {
				t.Fatalf("class = %v, want %v", o.class, tt.want)
			}
			if o.wait != tt.wait {
				t.Errorf("wait = %v, want %v", o.wait, tt.wait)
			}
		})
	}
}

func TestThrottleHintHTTPDate(t *testing.T) {
	h := http.Header{"Retry-After": {testNow.Add(90 * time.Second).Format(http.TimeFormat)}}
	if got := throttleHint(h, testNow); got != 90*time.Second {
		t.Fatalf("wait = %v, want 90s", got)
	}
}

func TestHaltReasons(t *testing.T) {
	tests := []struct {
		code, sub int
		want      string
	}{
		{190, 463, "meta.access_token"},
		{102, 0, "meta.access_token"},
		{10, 0, "permission"},
		{200, 0, "permission"},
		{3, 0, "capability"},
		{100, 33, "meta.dataset_id"},
		{368, 0, "policy"},
		{4242, 7, "does not know"},
		{2635, 0, "meta.api_version"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			o := outcome{graph: &GraphError{Code: tt.code, ErrorSubcode: tt.sub, Message: "line one\nline two"}}
			cfg := Config{DatasetID: testDataset, APIVersion: "v26.0"}
			r := haltReason(&o, &cfg)
			if !strings.Contains(r, tt.want) {
				t.Errorf("reason %q does not mention %q", r, tt.want)
			}
			if strings.Contains(r, "\n") {
				t.Errorf("reason %q is not one line", r)
			}
		})
	}
}
