package sink

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendRequest appends the JSON body of a request carrying events[idx]:
// the same bytes json.Marshal makes of the Request (TestEncodeMatchesMarshal
// holds it to that), written without reflection. encoding/json cost about
// 8 µs per event and a seventh of the daemon's CPU when catching up.
// Values it has no fast path for (floats, nested custom_data) still go
// through json.Marshal.
func appendRequest(dst []byte, events []Event, idx []int, token, proof, testCode string) ([]byte, error) {
	dst = append(dst, `{"data":[`...)
	for j, i := range idx {
		if j > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendEvent(dst, &events[i]); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `],"access_token":`...)
	dst = appendString(dst, token)
	if proof != "" {
		dst = append(dst, `,"appsecret_proof":`...)
		dst = appendString(dst, proof)
	}
	if testCode != "" {
		dst = append(dst, `,"test_event_code":`...)
		dst = appendString(dst, testCode)
	}
	return append(dst, '}'), nil
}

func appendEvent(dst []byte, ev *Event) ([]byte, error) {
	dst = append(dst, `{"event_name":`...)
	dst = appendString(dst, ev.EventName)
	dst = append(dst, `,"event_time":`...)
	dst = strconv.AppendInt(dst, ev.EventTime, 10)
	dst = append(dst, `,"action_source":`...)
	dst = appendString(dst, ev.ActionSource)
	dst = append(dst, `,"event_id":`...)
	dst = appendString(dst, ev.EventID)
	dst = append(dst, `,"user_data":{`...)
	u := &ev.UserData
	first := true
	if u.LeadID != 0 {
		dst, first = appendKey(dst, first, "lead_id")
		dst = strconv.AppendInt(dst, u.LeadID, 10)
	}
	for _, k := range HashedKeys {
		vs := *u.Hashed(k)
		if len(vs) == 0 {
			continue
		}
		dst, first = appendKey(dst, first, k)
		dst = append(dst, '[')
		for n, v := range vs {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, v)
		}
		dst = append(dst, ']')
	}
	for _, k := range PlainKeys {
		if v := *u.Plain(k); v != "" {
			dst, first = appendKey(dst, first, k)
			dst = appendString(dst, v)
		}
	}
	dst = append(dst, `},"custom_data":`...)
	var err error
	if dst, err = appendMap(dst, ev.CustomData); err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

// appendKey writes `"k":`, after a comma unless first. Keys are plain
// ASCII names.
func appendKey(dst []byte, first bool, k string) ([]byte, bool) {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, `":`...), false
}

// appendMap writes keys sorted, as encoding/json does.
func appendMap(dst []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	var arr [8]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for n, k := range keys {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = appendValue(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendString(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case nil:
		return append(dst, "null"...), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// plainCustomData reports whether every custom_data value is one the
// encoder writes itself and cannot fail on (string, integer, bool, nil):
// such an event needs no trial encoding before it is sent.
func plainCustomData(m map[string]any) bool {
	for _, v := range m {
		switch v.(type) {
		case string, int64, int, bool, nil:
		default:
			return false
		}
	}
	return true
}

// appendString quotes s as encoding/json does (HTML-safe escaping):
// directly when every byte is printable ASCII that needs no escape, else
// through json.Marshal, which keeps the rare cases byte-identical.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// plainByte: the bytes encoding/json writes as they are.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
