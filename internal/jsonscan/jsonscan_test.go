package jsonscan

import (
	"reflect"
	"testing"
)

// The differential fuzz targets FuzzPathValues (mapping) and FuzzScan
// (sink/metatest) hold these helpers to encoding/json; this test pins the
// basic cases here.
func TestMembersAndElements(t *testing.T) {
	cases := []struct {
		in          string
		keys, vals  []string
		isObj, isAr bool
	}{
		{in: ` { "a" : 1 , "b\u0063" : [ "}" , {"x":2} ] } `, keys: []string{`"a"`, `"b\u0063"`}, vals: []string{`1`, `[ "}" , {"x":2} ]`}, isObj: true},
		{in: `{}`, isObj: true},
		{in: `[1, "two", {"3":[4]}, null]`, vals: []string{`1`, `"two"`, `{"3":[4]}`, `null`}, isAr: true},
		{in: `[]`, isAr: true},
		{in: `"str"`},
	}
	for _, c := range cases {
		var keys, vals []string
		ok := Members([]byte(c.in), func(k, v []byte) bool { keys, vals = append(keys, string(k)), append(vals, string(v)); return true })
		if ok != c.isObj || (ok && (!reflect.DeepEqual(keys, c.keys) || !reflect.DeepEqual(vals, c.vals))) {
			t.Errorf("Members(%s) = %v %q %q", c.in, ok, keys, vals)
		}
		vals = nil
		ok = Elements([]byte(c.in), func(v []byte) bool { vals = append(vals, string(v)); return true })
		if ok != c.isAr || (ok && !reflect.DeepEqual(vals, c.vals)) {
			t.Errorf("Elements(%s) = %v %q", c.in, ok, vals)
		}
	}
	// fn returning false stops the walk.
	n := 0
	Elements([]byte(`[1,2,3]`), func([]byte) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("Elements went on after false: %d calls", n)
	}
}

func TestUnquoteAndKeyIs(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`"tab\tq\"u\u00e9"`, "tab\tq\"ué", true},
		{"\"\xff\"", "\ufffd", true},
		{`12`, "", false},
		{`"`, "", false},
	}
	for _, c := range cases {
		got, ok := Unquote([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("Unquote(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
		if c.ok && !KeyIs([]byte(c.in), c.want) {
			t.Errorf("KeyIs(%q, %q) = false", c.in, c.want)
		}
		if KeyIs([]byte(c.in), c.want+"x") {
			t.Errorf("KeyIs(%q, %q) = true", c.in, c.want+"x")
		}
	}
}
