package mapping

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// pathValues is what path reaches in a json/jsonb column value: the same
// values as walkPath over decodeJSONValue (FuzzPathValues holds it to
// that), but a document given as text is scanned, and only what the path
// reaches is decoded. Decoding whole documents was a tenth of the mapping's
// CPU for one field read from a small jsonb column.
func pathValues(v any, path []pathElem) ([]any, bool) {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	case string:
		raw = []byte(x)
	default:
		doc, ok := decodeJSONValue(v)
		if !ok {
			return nil, false
		}
		return walkPath(doc, path), true
	}
	// Like json.Decoder, which decodeJSONValue uses: the first value
	// counts, whatever follows it.
	raw = trimSpace(raw)
	first := raw[:skipValue(raw, 0)]
	if len(first) == 0 || !json.Valid(first) {
		return nil, false
	}
	return walkRaw(first, path), true
}

// walkRaw follows path through the valid JSON value raw.
func walkRaw(raw []byte, path []pathElem) []any {
	if len(path) == 0 {
		v, ok := decodeLeaf(raw)
		if !ok {
			return nil
		}
		return []any{v}
	}
	p := path[0]
	switch {
	case p.isIdx:
		if raw[0] != '[' {
			return nil
		}
		var out []any
		n := 0
		for i := firstMember(raw); i < len(raw) && raw[i] != ']'; n++ {
			end := skipValue(raw, i)
			if p.all {
				out = append(out, walkRaw(raw[i:end], path[1:])...)
			} else if n == p.index {
				return walkRaw(raw[i:end], path[1:])
			}
			i = nextMember(raw, end)
		}
		return out
	default:
		if raw[0] != '{' {
			return nil
		}
		var found []byte // the last of duplicate keys wins, as in a map
		for i := firstMember(raw); i < len(raw) && raw[i] != '}'; {
			kEnd := skipValue(raw, i)
			key := raw[i:kEnd]
			i = skipSpace(raw, kEnd) + 1 // past ':'
			i = skipSpace(raw, i)
			vEnd := skipValue(raw, i)
			if keyEquals(key, p.key) {
				found = raw[i:vEnd]
			}
			i = nextMember(raw, vEnd)
		}
		if found == nil {
			return nil
		}
		return walkRaw(found, path[1:])
	}
}

// decodeLeaf decodes a value the path ends at; strings and numbers
// directly, objects and arrays as decodeJSONValue would.
func decodeLeaf(raw []byte) (any, bool) {
	switch c := raw[0]; {
	case c == '"':
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s), true
		}
		var out string
		if json.Unmarshal(raw, &out) != nil {
			return nil, false
		}
		return out, true
	case c == '-' || c >= '0' && c <= '9':
		return json.Number(raw), true
	case c == 't':
		return true, true
	case c == 'f':
		return false, true
	case c == 'n':
		return nil, true
	}
	return decodeJSONValue(json.RawMessage(raw))
}

func keyEquals(quoted []byte, key string) bool {
	s := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s) == key
	}
	var k string
	return json.Unmarshal(quoted, &k) == nil && k == key
}

// firstMember is the index of the first member of the object or array
// opening at raw[0] (or of its closing bracket).
func firstMember(raw []byte) int { return skipSpace(raw, 1) }

// nextMember skips the comma after a member ending at i.
func nextMember(raw []byte, i int) int {
	i = skipSpace(raw, i)
	if i < len(raw) && raw[i] == ',' {
		i = skipSpace(raw, i+1)
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	i := skipSpace(b, 0)
	j := len(b)
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// skipValue returns where the value starting at b[i] ends. On valid JSON
// it is exact; on anything else it returns some end, and the caller's
// json.Valid check decides.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
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

// skipString returns the index after the string opening at b[i].
func skipString(b []byte, i int) int {
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
