package mapping

import (
	"encoding/json"

	"github.com/leadtail/leadtail/internal/jsonscan"
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
	raw = jsonscan.TrimSpace(raw)
	first := raw[:jsonscan.ValueEnd(raw, 0)]
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
	if p.isIdx {
		var out []any
		n := 0
		jsonscan.Elements(raw, func(el []byte) bool {
			switch {
			case p.all:
				out = append(out, walkRaw(el, path[1:])...)
			case n == p.index:
				out = walkRaw(el, path[1:])
				return false
			}
			n++
			return true
		})
		return out
	}
	var found []byte // the last of duplicate keys wins, as in a map
	jsonscan.Members(raw, func(key, value []byte) bool {
		if jsonscan.KeyIs(key, p.key) {
			found = value
		}
		return true
	})
	if found == nil {
		return nil
	}
	return walkRaw(found, path[1:])
}

// decodeLeaf decodes a value the path ends at; strings and numbers
// directly, objects and arrays as decodeJSONValue would.
func decodeLeaf(raw []byte) (any, bool) {
	switch c := raw[0]; {
	case c == '"':
		s, ok := jsonscan.Unquote(raw)
		if !ok {
			return nil, false
		}
		return s, true
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
