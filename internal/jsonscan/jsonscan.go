// Package jsonscan walks JSON that is already known to be valid without
// decoding it: the mapping reads one path out of a jsonb column, and the
// fake Graph API splits request bodies it has validated. Decoding whole
// documents into maps of copies showed in both profiles.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// SkipSpace returns the index of the first non-space byte at or after i.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// TrimSpace drops JSON white space at both ends.
func TrimSpace(b []byte) []byte {
	i := SkipSpace(b, 0)
	j := len(b)
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// ValueEnd returns where the value starting at b[i] ends. On valid JSON
// it is exact; on anything else it returns some end, and a json.Valid
// check of the result decides.
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
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

// stringEnd returns the index after the string opening at b[i].
func stringEnd(b []byte, i int) int {
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

// Members calls fn with the quoted key and the value of each member of the
// valid JSON object raw, in order, until fn returns false. It reports
// false when raw is not an object. Values share raw's memory.
func Members(raw []byte, fn func(key, value []byte) bool) bool {
	raw = TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '{' {
		return false
	}
	for i := SkipSpace(raw, 1); i < len(raw) && raw[i] != '}'; {
		kEnd := ValueEnd(raw, i)
		key := raw[i:kEnd]
		i = SkipSpace(raw, kEnd)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = SkipSpace(raw, i+1)
		vEnd := ValueEnd(raw, i)
		if !fn(key, raw[i:vEnd:vEnd]) {
			return true
		}
		i = next(raw, vEnd)
	}
	return true
}

// Elements calls fn with each element of the valid JSON array raw, in
// order, until fn returns false. It reports false when raw is not an
// array. Elements share raw's memory.
func Elements(raw []byte, fn func(value []byte) bool) bool {
	raw = TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '[' {
		return false
	}
	for i := SkipSpace(raw, 1); i < len(raw) && raw[i] != ']'; {
		end := ValueEnd(raw, i)
		if !fn(raw[i:end:end]) {
			return true
		}
		i = next(raw, end)
	}
	return true
}

// next skips the comma after a member ending at i.
func next(raw []byte, i int) int {
	i = SkipSpace(raw, i)
	if i < len(raw) && raw[i] == ',' {
		i = SkipSpace(raw, i+1)
	}
	return i
}

// Unquote returns the string a JSON string literal holds, as
// encoding/json decodes it; ok is false for anything else. Without
// escapes and with valid UTF-8 it is a plain copy.
func Unquote(q []byte) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	if s := q[1 : len(q)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s), true
	}
	var out string
	return out, json.Unmarshal(q, &out) == nil
}

// KeyIs reports whether the quoted key q holds key, without a copy in the
// common case of no escapes.
func KeyIs(q []byte, key string) bool {
	if len(q) >= 2 && q[0] == '"' && q[len(q)-1] == '"' {
		if s := q[1 : len(q)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s) == key
		}
	}
	k, ok := Unquote(q)
	return ok && k == key
}
