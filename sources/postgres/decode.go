package postgres

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Values arrive in PostgreSQL's text format (pgoutput sends text; lookups
// ask for text results) and are decoded by type OID into the closed set of
// sources.Row types. Connections pin DateStyle=ISO, TimeZone=UTC,
// bytea_output=hex and extra_float_digits=3 (see sessionParams) so the text
// is in the forms parsed here whatever the server's defaults are.

// arrayElem maps the built-in array type OIDs to their element type OIDs.
// Arrays of other types (enums, domains, extension types) fall back to text.
var arrayElem = map[uint32]uint32{
	pgtype.BoolArrayOID:        pgtype.BoolOID,
	pgtype.ByteaArrayOID:       pgtype.ByteaOID,
	pgtype.QCharArrayOID:       pgtype.QCharOID,
	pgtype.NameArrayOID:        pgtype.NameOID,
	pgtype.Int2ArrayOID:        pgtype.Int2OID,
	pgtype.Int4ArrayOID:        pgtype.Int4OID,
	pgtype.Int8ArrayOID:        pgtype.Int8OID,
	pgtype.OIDArrayOID:         pgtype.OIDOID,
	pgtype.TextArrayOID:        pgtype.TextOID,
	pgtype.VarcharArrayOID:     pgtype.VarcharOID,
	pgtype.BPCharArrayOID:      pgtype.BPCharOID,
	pgtype.Float4ArrayOID:      pgtype.Float4OID,
	pgtype.Float8ArrayOID:      pgtype.Float8OID,
	pgtype.NumericArrayOID:     pgtype.NumericOID,
	pgtype.DateArrayOID:        pgtype.DateOID,
	pgtype.TimestampArrayOID:   pgtype.TimestampOID,
	pgtype.TimestamptzArrayOID: pgtype.TimestamptzOID,
	pgtype.UUIDArrayOID:        pgtype.UUIDOID,
	pgtype.JSONArrayOID:        pgtype.JSONOID,
	pgtype.JSONBArrayOID:       pgtype.JSONBOID,
}

// decodeText decodes one non-NULL value in text format by its type OID.
// Unknown OIDs (enums, domains, extension types such as citext) stay text.
// Errors never carry the value: it may be contact data.
func decodeText(oid uint32, src []byte) (any, error) {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		n, err := strconv.ParseInt(string(src), 10, 64)
		if err != nil {
			return nil, errors.New("malformed integer")
		}
		return n, nil
	case pgtype.Float4OID, pgtype.Float8OID:
		// ParseFloat accepts PostgreSQL's NaN, Infinity and -Infinity.
		f, err := strconv.ParseFloat(string(src), 64)
		if err != nil {
			return nil, errors.New("malformed float")
		}
		return f, nil
	case pgtype.BoolOID:
		switch string(src) {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, errors.New("malformed boolean")
	case pgtype.NumericOID:
		// Exact: the mapping decides whether a float is good enough.
		return string(src), nil
	case pgtype.TimestampOID:
		return parseTimestamp(string(src), false)
	case pgtype.TimestamptzOID:
		return parseTimestamp(string(src), true)
	case pgtype.DateOID:
		return parseTimestamp(string(src), false)
	case pgtype.JSONOID, pgtype.JSONBOID:
		return json.RawMessage(clone(src)), nil
	case pgtype.ByteaOID:
		return decodeBytea(src)
	}
	if elem, ok := arrayElem[oid]; ok {
		return parseArray(string(src), elem)
	}
	// text, varchar, bpchar, name, "char", uuid, citext, enums, domains and
	// every type we do not know: the text form is the value.
	return string(src), nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func decodeBytea(src []byte) (any, error) {
	s := string(src)
	if !strings.HasPrefix(s, `\x`) {
		return nil, errors.New("bytea not in hex format (bytea_output must be hex)")
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, errors.New("malformed hex bytea")
	}
	return b, nil
}

// parseTimestamp parses ISO DateStyle output of date, timestamp and
// timestamptz: "2026-01-02", "2026-01-02 03:04:05.123456",
// "2026-01-02 03:04:05.123456+00" (offsets as +hh, +hh:mm or +hh:mm:ss),
// years beyond 9999 and a " BC" suffix. "infinity" and "-infinity" have no
// time.Time and are returned as those strings. Values without a zone are
// taken as written, in UTC; values with one are converted to UTC.
func parseTimestamp(s string, withZone bool) (any, error) {
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	// Cut, not Split, and a shared error: this runs for every timestamp
	// column of every row, and allocations here showed in profiles.
	bad := errMalformedTime
	bc := false
	if rest, ok := strings.CutSuffix(s, " BC"); ok {
		s, bc = rest, true
	}
	datePart, timePart, _ := strings.Cut(s, " ")
	ys, rest, ok1 := strings.Cut(datePart, "-")
	ms, dd, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || strings.Contains(dd, "-") {
		return nil, bad
	}
	year, err1 := strconv.Atoi(ys)
	month, err2 := strconv.Atoi(ms)
	day, err3 := strconv.Atoi(dd)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, bad
	}
	if bc {
		year = 1 - year // 1 BC is year 0 in ISO 8601
	}
	var hour, minute, sec, nsec, offset int
	if timePart != "" {
		// Split off the zone offset: the first + or - after the clock.
		clock, zone := timePart, ""
		if i := strings.IndexAny(timePart, "+-"); i >= 0 {
			clock, zone = timePart[:i], timePart[i:]
		}
		if withZone && zone == "" || !withZone && zone != "" {
			return nil, bad
		}
		hs, rest, ok1 := strings.Cut(clock, ":")
		mins, secs, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || strings.Contains(secs, ":") {
			return nil, bad
		}
		var err error
		if hour, err = strconv.Atoi(hs); err != nil {
			return nil, bad
		}
		if minute, err = strconv.Atoi(mins); err != nil {
			return nil, bad
		}
		whole, frac, _ := strings.Cut(secs, ".")
		if sec, err = strconv.Atoi(whole); err != nil {
			return nil, bad
		}
		if frac != "" {
			if len(frac) > 9 {
				return nil, bad
			}
			f, err := strconv.Atoi(frac)
			if err != nil {
				return nil, bad
			}
			nsec = f * pow10(9-len(frac))
		}
		if zone != "" {
			sign := 1
			if zone[0] == '-' {
				sign = -1
			}
			mult := 3600
			for p, more := zone[1:], true; more; {
				var part string
				part, p, more = strings.Cut(p, ":")
				n, err := strconv.Atoi(part)
				if err != nil || mult == 0 {
					return nil, bad
				}
				offset += n * mult
				mult /= 60
			}
			offset *= sign
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), nil
}

var errMalformedTime = errors.New("malformed date/time")

func pow10(n int) int {
	p := 1
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// parseArray parses an array literal such as {1,2,NULL}, {"a b","c\"d"}
// or {{1,2},{3,4}} (nested []any), optionally prefixed with bounds
// ("[0:1]={...}"), decoding each element by elem.
func parseArray(s string, elem uint32) (any, error) {
	bad := errors.New("malformed array")
	if strings.HasPrefix(s, "[") {
		i := strings.Index(s, "=")
		if i < 0 {
			return nil, bad
		}
		s = s[i+1:]
	}
	p := &arrayParser{s: s, elem: elem}
	v, err := p.array()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, bad
	}
	return v, nil
}

type arrayParser struct {
	s    string
	i    int
	elem uint32
}

func (p *arrayParser) array() ([]any, error) {
	bad := errors.New("malformed array")
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, bad
	}
	p.i++
	out := []any{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return out, nil
	}
	for {
		if p.i >= len(p.s) {
			return nil, bad
		}
		switch c := p.s[p.i]; {
		case c == '{':
			sub, err := p.array()
			if err != nil {
				return nil, err
			}
			out = append(out, sub)
		case c == '"':
			var b strings.Builder
			p.i++
			for {
				if p.i >= len(p.s) {
					return nil, bad
				}
				ch := p.s[p.i]
				if ch == '\\' && p.i+1 < len(p.s) {
					b.WriteByte(p.s[p.i+1])
					p.i += 2
					continue
				}
				p.i++
				if ch == '"' {
					break
				}
				b.WriteByte(ch)
			}
			v, err := decodeText(p.elem, []byte(b.String()))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '}' {
				p.i++
			}
			tok := p.s[start:p.i]
			if tok == "NULL" {
				out = append(out, nil)
				break
			}
			v, err := decodeText(p.elem, []byte(tok))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if p.i >= len(p.s) {
			return nil, bad
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return out, nil
		default:
			return nil, bad
		}
	}
}

// columnError names the table and column of a value that could not be
// decoded, never the value.
func columnError(table, column string, oid uint32, err error) error {
	return fmt.Errorf("decode %s.%s (type oid %d): %w", table, column, oid, err)
}
