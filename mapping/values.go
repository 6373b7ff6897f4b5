package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leadtail/leadtail/sources"
)

// pathElem is one step of a JSON path: a key, an index, or every element.
type pathElem struct {
	key   string
	index int
	all   bool
	isIdx bool
}

// parsePath reads paths such as contact.email, emails[0], emails[*].address
// or a leading "$." as in JSONPath.
func parsePath(s string) ([]pathElem, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "$"), ".")
	if s == "" {
		return nil, errors.New("empty JSON path")
	}
	var out []pathElem
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return nil, fmt.Errorf("empty step in JSON path %q", s)
		}
		key := part
		var idx []string
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			rest := part[i:]
			for rest != "" {
				if rest[0] != '[' {
					return nil, fmt.Errorf("bad index in JSON path %q", s)
				}
				j := strings.IndexByte(rest, ']')
				if j < 0 {
					return nil, fmt.Errorf("unclosed [ in JSON path %q", s)
				}
				idx = append(idx, rest[1:j])
				rest = rest[j+1:]
			}
		}
		if key != "" {
			out = append(out, pathElem{key: key})
		}
		for _, x := range idx {
			if x == "*" || x == "" {
				out = append(out, pathElem{all: true, isIdx: true})
				continue
			}
			n, err := strconv.Atoi(x)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("index %q in JSON path %q is not a number or *", x, s)
			}
			out = append(out, pathElem{index: n, isIdx: true})
		}
	}
	return out, nil
}

// decodeJSONValue turns a json/jsonb column value into decoded JSON.
func decodeJSONValue(v any) (any, bool) {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	case string:
		raw = []byte(x)
	case map[string]any, []any:
		return x, true
	default:
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // lead ids inside JSON keep all 17 digits
	var out any
	if err := d.Decode(&out); err != nil {
		return nil, false
	}
	return out, true
}

// walkPath returns every value the path reaches.
func walkPath(v any, path []pathElem) []any {
	if len(path) == 0 {
		return []any{v}
	}
	p := path[0]
	switch {
	case p.isIdx:
		arr, ok := v.([]any)
		if !ok {
			return nil
		}
		if p.all {
			var out []any
			for _, e := range arr {
				out = append(out, walkPath(e, path[1:])...)
			}
			return out
		}
		if p.index >= len(arr) {
			return nil
		}
		return walkPath(arr[p.index], path[1:])
	default:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		e, ok := obj[p.key]
		if !ok {
			return nil
		}
		return walkPath(e, path[1:])
	}
}

// errUnknownValue marks a value the source could not see.
var errUnknownValue = errors.New("value unknown")

// canon renders a scalar row value as text: the form stage values, filters
// and normalisers compare. ok is false for NULL, objects and unknowns.
func canon(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	case []byte:
		if utf8.Valid(x) {
			return string(x), true
		}
		return "", false
	case json.RawMessage:
		var s string
		if json.Unmarshal(x, &s) == nil {
			return s, true
		}
		return strings.TrimSpace(string(x)), len(x) > 0
	}
	return "", false
}

// flatten turns a value into its scalar members: arrays (Go or JSON) yield
// each element, NULL yields nothing.
func flatten(v any, out []any) []any {
	switch x := v.(type) {
	case nil:
		return out
	case []any:
		for _, e := range x {
			out = flatten(e, out)
		}
		return out
	case []string:
		for _, e := range x {
			out = append(out, e)
		}
		return out
	case json.RawMessage:
		t := bytes.TrimSpace(x)
		if len(t) > 0 && t[0] == '[' {
			if d, ok := decodeJSONValue(x); ok {
				return flatten(d, out)
			}
		}
		return append(out, x)
	}
	return append(out, v)
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads a timestamp column value. Values without a zone are read
// in tc.loc (UTC when unset); sources hand zone-less timestamps over as UTC
// wall-clock times, which the zone then reinterprets.
func parseTime(v any, tc *timeCol) (time.Time, error) {
	loc := tc.loc
	if loc == nil {
		loc = time.UTC
	}
	unix := func(n float64) time.Time {
		if tc.ms {
			return time.UnixMilli(int64(n)).UTC()
		}
		sec, frac := math.Modf(n)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	switch x := v.(type) {
	case nil:
		return time.Time{}, errors.New("NULL")
	case sources.Unknown:
		return time.Time{}, errUnknownValue
	case time.Time:
		if tc.loc != nil {
			// Reinterpret the wall clock in the configured zone.
			return time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), loc).UTC(), nil
		}
		return x.UTC(), nil
	case int64:
		return unix(float64(x)), nil
	case int:
		return unix(float64(x)), nil
	case uint64:
		return unix(float64(x)), nil
	case float64:
		return unix(x), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, fmt.Errorf("not a number: %w", err)
		}
		return unix(f), nil
	}
	s, ok := canon(v)
	if !ok {
		return time.Time{}, fmt.Errorf("unsupported value type %T", v)
	}
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "-:") {
		return unix(f), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a recognised timestamp")
}
