package metatest

import (
	"encoding/json"

	"github.com/leadtail/leadtail/internal/jsonscan"
)

// The fake splits objects and arrays it has already validated (the whole
// body passed json.Valid) with jsonscan instead of decoding each level
// again into maps of copies: decoding every event several times made the
// fake cost more CPU than leadtail in the whole-pipeline benchmarks, where
// the two share the machine. FuzzScan holds members and elements to what
// encoding/json makes of the same input.

// members returns the members of a valid JSON object as json.Unmarshal
// into map[string]json.RawMessage would (the last of duplicate keys wins),
// with values that share raw's memory.
func members(raw []byte) (map[string]json.RawMessage, bool) {
	out := map[string]json.RawMessage{}
	keysOK := true
	ok := jsonscan.Members(raw, func(key, value []byte) bool {
		k, ok := jsonscan.Unquote(key)
		if !ok {
			keysOK = false
			return false
		}
		out[k] = value
		return true
	})
	if !ok || !keysOK {
		return nil, false
	}
	return out, true
}

// elements returns the elements of a valid JSON array, sharing raw's
// memory.
func elements(raw []byte) ([]json.RawMessage, bool) {
	out := []json.RawMessage{}
	if !jsonscan.Elements(raw, func(v []byte) bool { out = append(out, v); return true }) {
		return nil, false
	}
	return out, true
}
