package metatest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var scanCases = []string{
	`{}`, `[]`, ` { "a" : 1 , "b" : [ 1 , { "c" : "}" } ] } `, `{"a":1,"a":2}`,
	`{"k\u0041":"v","q\"":"\\"}`, `{"e":"é\u00e9","n":null,"t":true,"f":false,"x":-1.5e+3}`,
	`[1,"two",{"three":[3]},[],{},null]`, `{"nested":{"deep":{"deeper":["a",{"b":"c"}]}}}`,
	`{"data":[{"event_name":"x","user_data":{"em":["aa","bb"]}}],"access_token":"t"}`,
	`{"a":"x\n","b":"\ud83d\ude00"}`, `"not an object"`, `42`,
}

// checkScan compares members and elements with encoding/json on valid JSON.
func checkScan(t *testing.T, in string) {
	t.Helper()
	if !json.Valid([]byte(in)) {
		return
	}
	var wantObj map[string]json.RawMessage
	objErr := json.Unmarshal([]byte(in), &wantObj)
	gotObj, ok := members([]byte(in))
	if ok != (objErr == nil && wantObj != nil) || (ok && !reflect.DeepEqual(norm(gotObj), norm(wantObj))) {
		t.Errorf("members(%q) = %q, %v; encoding/json: %q, %v", in, gotObj, ok, wantObj, objErr)
	}
	var wantAny map[string]any
	d := json.NewDecoder(strings.NewReader(in))
	d.UseNumber()
	if d.Decode(&wantAny) == nil && wantAny != nil {
		got, err := decodeObject(json.RawMessage(in))
		if err != nil || !reflect.DeepEqual(got, wantAny) {
			t.Errorf("decodeObject(%q) = %#v, %v; encoding/json: %#v", in, got, err, wantAny)
		}
	}
	var wantArr []json.RawMessage
	arrErr := json.Unmarshal([]byte(in), &wantArr)
	gotArr, ok := elements([]byte(in))
	if ok != (arrErr == nil && wantArr != nil) || (ok && !reflect.DeepEqual(normList(gotArr), normList(wantArr))) {
		t.Errorf("elements(%q) = %q, %v; encoding/json: %q, %v", in, gotArr, ok, wantArr, arrErr)
	}
}

func norm(m map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func normList(l []json.RawMessage) []string {
	out := []string{}
	for _, v := range l {
		out = append(out, string(v))
	}
	return out
}

func TestScan(t *testing.T) {
	for _, in := range scanCases {
		checkScan(t, in)
	}
}

func FuzzScan(f *testing.F) {
	for _, in := range scanCases {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) { checkScan(t, in) })
}
