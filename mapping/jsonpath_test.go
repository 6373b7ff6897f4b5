package mapping

import (
	"encoding/json"
	"reflect"
	"testing"
)

// jsonPathCases pair documents with paths; the test and the fuzz target
// check that pathValues finds what decoding the whole document finds.
var jsonPathCases = []struct{ doc, path string }{
	{`{"name":{"first":"Jane","last":"Doe"}}`, "name.first"},
	{` {"name" : { "first" : "Jane" } } `, "name.first"},
	{`{"name":{"first":"Ja\u006ee \"J\""}}`, "name.first"},
	{`{"a":1,"a":2}`, "a"},
	{`{"a\u0062":"escaped key"}`, "ab"},
	{`{"emails":["a@x.com","b@x.com"]}`, "emails[1]"},
	{`{"emails":["a@x.com","b@x.com"]}`, "emails[*]"},
	{`{"emails":["a@x.com","b@x.com"]}`, "emails"},
	{`{"emails":["a@x.com"]}`, "emails[5]"},
	{`{"c":[{"v":"1"},{"v":2},{"w":3},[],{"v":{"deep":[1,2]}}]}`, "c[*].v"},
	{`{"id":12345678901234567,"f":1.5e3,"neg":-0.25}`, "id"},
	{`{"id":12345678901234567,"f":1.5e3,"neg":-0.25}`, "f"},
	{`{"t":true,"f":false,"n":null}`, "t"},
	{`{"t":true,"f":false,"n":null}`, "n"},
	{`{"t":true,"f":false,"n":null}`, "missing"},
	{`[1,2,3]`, "[2]"},
	{`"just a string"`, "a"},
	{`{"a":"x"} trailing`, "a"},
	{`{"a":"x",}`, "a"},
	{`{"a":"x"`, "a"},
	{`not json`, "a"},
	{``, "a"},
	{`{"a":"\xff\xfe"}`, "a"},
	{`{"a":{"b":{"c":{"d":"deep"}}}}`, "a.b.c.d"},
	{`{"a":{"b":"x"}}`, "a.b.c"},
	{`{"a":[[1,2],[3,4]]}`, "a[1][0]"},
	{`{"a":"x}"  ,  "b" : "{y"}`, "b"},
}

func oldPathValues(raw string, path []pathElem) ([]any, bool) {
	doc, ok := decodeJSONValue(json.RawMessage(raw))
	if !ok {
		return nil, false
	}
	return walkPath(doc, path), true
}

func checkPathValues(t *testing.T, doc, path string) {
	t.Helper()
	p, err := parsePath(path)
	if err != nil {
		return
	}
	want, wantOK := oldPathValues(doc, p)
	for _, v := range []any{json.RawMessage(doc), []byte(doc), doc} {
		got, ok := pathValues(v, p)
		// ok differs only for a top-level scalar followed by more (json.Decoder
		// stops after "0" of "00"); no path reaches into a scalar, so the
		// values are the same: none.
		if (ok != wantOK && len(want) > 0) || !reflect.DeepEqual(got, want) {
			t.Errorf("pathValues(%T %q, %q) = %#v, %v; decoding the document gives %#v, %v", v, doc, path, got, ok, want, wantOK)
		}
	}
}

func TestPathValues(t *testing.T) {
	for _, c := range jsonPathCases {
		checkPathValues(t, c.doc, c.path)
	}
	// Already decoded values take the old path.
	got, ok := pathValues(map[string]any{"a": "x"}, []pathElem{{key: "a"}})
	if !ok || !reflect.DeepEqual(got, []any{"x"}) {
		t.Errorf("decoded map: %v %v", got, ok)
	}
}

func FuzzPathValues(f *testing.F) {
	for _, c := range jsonPathCases {
		f.Add(c.doc, c.path)
	}
	f.Fuzz(func(t *testing.T, doc, path string) {
		checkPathValues(t, doc, path)
	})
}
