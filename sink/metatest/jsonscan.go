package metatest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The fake splits objects and arrays it has already validated (the whole
// body passed json.Decoder) with the scanner below instead of decoding
// each level again into maps of copies: decoding every event several
// times made the fake cost more CPU than leadtail in the whole-pipeline
// benchmarks, where the two share the machine. FuzzScan holds members and
// elements to what encoding/json makes of the same input.

// members returns the members of a valid JSON object as json.Unmarshal
// into map[string]json.RawMessage would (the last of duplicate keys wins),
// with values that share raw's memory.
func members(raw []byte) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '{' {
		return nil, false
	}
	out := map[string]json.RawMessage{}
	for i := skipWS(raw, 1); i < len(raw) && raw[i] != '}'; {
		kEnd := skipJSONValue(raw, i)
		key, ok := unquoteKey(raw[i:kEnd])
		if !ok {
			return nil, false
		}
		i = skipWS(raw, kEnd)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = skipWS(raw, i+1)
		vEnd := skipJSONValue(raw, i)
		out[key] = raw[i:vEnd:vEnd]
		i = skipWS(raw, vEnd)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return out, true
}

// elements returns the elements of a valid JSON array, sharing raw's
// memory.
func elements(raw []byte) ([]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '[' {
		return nil, false
	}
	out := []json.RawMessage{}
	for i := skipWS(raw, 1); i < len(raw) && raw[i] != ']'; {
		end := skipJSONValue(raw, i)
		out = append(out, raw[i:end:end])
		i = skipWS(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return out, true
}

func unquoteKey(q []byte) (string, bool) {
	if len(q) < 2 || q[0] != '"' {
		return "", false
	}
	s := q[1 : len(q)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s), true
	}
	var k string
	return k, json.Unmarshal(q, &k) == nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONValue returns where the valid JSON value starting at b[i] ends.
func skipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipJSONString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipJSONString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', ']', '}', ':', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

func skipJSONString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}
