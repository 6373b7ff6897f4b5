package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/leadtail/leadtail/sources"
)

func TestDecodeText(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	for _, tc := range []struct {
		oid  uint32
		in   string
		want any
	}{
		{pgtype.Int2OID, "-32768", int64(-32768)},
		{pgtype.Int4OID, "2147483647", int64(2147483647)},
		{pgtype.Int8OID, "-9223372036854775808", int64(-9223372036854775808)},
		{pgtype.NumericOID, "123456789012345678901234567890.000000001", "123456789012345678901234567890.000000001"},
		{pgtype.NumericOID, "NaN", "NaN"},
		{pgtype.Float4OID, "1.5", 1.5},
		{pgtype.Float8OID, "-1.2345678901234567e+300", -1.2345678901234567e+300},
		{pgtype.BoolOID, "t", true},
		{pgtype.BoolOID, "f", false},
		{pgtype.TextOID, "x", "x"},
		{pgtype.VarcharOID, "", ""},
		{pgtype.BPCharOID, "ab ", "ab "},
		{pgtype.NameOID, "n", "n"},
		{pgtype.UUIDOID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{pgtype.TimestampOID, "2026-01-02 03:04:05", utc(2026, 1, 2, 3, 4, 5, 0)},
		{pgtype.TimestampOID, "2026-01-02 03:04:05.1", utc(2026, 1, 2, 3, 4, 5, 100000000)},
		{pgtype.TimestampOID, "12026-01-02 03:04:05.000001", utc(12026, 1, 2, 3, 4, 5, 1000)},
		{pgtype.TimestampOID, "0044-03-15 12:00:00 BC", utc(-43, 3, 15, 12, 0, 0, 0)},
		{pgtype.TimestampOID, "infinity", "infinity"},
		{pgtype.TimestamptzOID, "2026-01-02 03:04:05.5+00", utc(2026, 1, 2, 3, 4, 5, 500000000)},
		{pgtype.TimestamptzOID, "2026-01-02 03:04:05-05", utc(2026, 1, 2, 8, 4, 5, 0)},
		{pgtype.TimestamptzOID, "2026-01-02 03:04:05+05:30", utc(2026, 1, 1, 21, 34, 5, 0)},
		{pgtype.TimestamptzOID, "1900-01-01 00:00:00+00:09:21", utc(1899, 12, 31, 23, 50, 39, 0)},
		{pgtype.TimestamptzOID, "-infinity", "-infinity"},
		{pgtype.DateOID, "2026-02-28", utc(2026, 2, 28, 0, 0, 0, 0)},
		{pgtype.JSONOID, `{"a":1}`, json.RawMessage(`{"a":1}`)},
		{pgtype.JSONBOID, `[1, "x"]`, json.RawMessage(`[1, "x"]`)},
		{pgtype.ByteaOID, `\x00ff10`, []byte{0, 0xff, 0x10}},
		{pgtype.ByteaOID, `\x`, []byte{}},
		{pgtype.Int4ArrayOID, "{1,2,NULL,-4}", []any{int64(1), int64(2), nil, int64(-4)}},
		{pgtype.Int4ArrayOID, "{}", []any{}},
		{pgtype.Int4ArrayOID, "{{1,2},{3,4}}", []any{[]any{int64(1), int64(2)}, []any{int64(3), int64(4)}}},
		{pgtype.Int4ArrayOID, "[0:1]={7,8}", []any{int64(7), int64(8)}},
		{pgtype.TextArrayOID, `{plain,"with space","q\"uote","back\\slash",NULL,"NULL",""}`, []any{"plain", "with space", `q"uote`, `back\slash`, nil, "NULL", ""}},
		{pgtype.BoolArrayOID, "{t,f}", []any{true, false}},
		{pgtype.TimestamptzArrayOID, `{"2026-01-02 03:04:05+00"}`, []any{utc(2026, 1, 2, 3, 4, 5, 0)}},
		{pgtype.JSONBArrayOID, `{"{\"a\": 1}"}`, []any{json.RawMessage(`{"a": 1}`)}},
		{99999, "enum_label", "enum_label"},    // enums, unknown types
		{pgtype.IntervalOID, "1 day", "1 day"}, // known to pgx, text to us
	} {
		got, err := decodeText(tc.oid, []byte(tc.in))
		if err != nil {
			t.Errorf("decode(%d, %q): %v", tc.oid, tc.in, err)
			continue
		}
		if tw, ok := tc.want.(time.Time); ok {
			if tg, ok := got.(time.Time); !ok || !tg.Equal(tw) || tg.Location() != time.UTC {
				t.Errorf("decode(%d, %q) = %v, want %v UTC", tc.oid, tc.in, got, tw)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("decode(%d, %q) = %#v (%T), want %#v (%T)", tc.oid, tc.in, got, got, tc.want, tc.want)
		}
	}
}

func TestDecodeTextErrorsHideValues(t *testing.T) {
	for _, tc := range []struct {
		oid uint32
		in  string
	}{
		{pgtype.Int4OID, "secret@example.com"},
		{pgtype.BoolOID, "secret@example.com"},
		{pgtype.TimestampOID, "secret@example.com"},
		{pgtype.TimestamptzOID, "2026-01-02 03:04:05"}, // zone missing
		{pgtype.ByteaOID, "secret@example.com"},
		{pgtype.Int4ArrayOID, "{1,secret@example.com}"},
		{pgtype.TextArrayOID, `{"secret@example.com`},
	} {
		_, err := decodeText(tc.oid, []byte(tc.in))
		if err == nil {
			t.Errorf("decode(%d, %q) succeeded", tc.oid, tc.in)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the value: %v", err)
		}
	}
}

func TestRowToast(t *testing.T) {
	rel := &relation{table: "public.leads", cols: []relColumn{{name: "id", oid: pgtype.Int4OID}, {name: "notes", oid: pgtype.TextOID}, {name: "gone", oid: pgtype.TextOID}}}
	tuple := &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{
		{DataType: 't', Data: []byte("7")},
		{DataType: 'u'},
		{DataType: 'n'},
	}}
	row, err := rel.row(tuple, sources.Row{"id": int64(7), "notes": "long text", "gone": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (sources.Row{"id": int64(7), "notes": "long text", "gone": nil}); !reflect.DeepEqual(row, want) {
		t.Errorf("with before image: %v, want %v", row, want)
	}
	row, err = rel.row(tuple, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := row["notes"]; !ok || v != (sources.Unknown{}) {
		t.Errorf("without before image notes = %#v, want sources.Unknown{}", v)
	}
	if _, err := rel.row(&pglogrepl.TupleData{Columns: tuple.Columns[:2]}, nil); err == nil {
		t.Error("tuple with fewer columns than the relation decoded")
	}
}

// pglogrepl indexes past the end of short frames; parseLogical must turn
// that into an error (and so a reconnect), never a crash.
func TestParseLogicalTruncated(t *testing.T) {
	insert := []byte{'I', 0, 0, 0x40, 0x01, 'N', 0, 2, 't', 0, 0, 0, 1, '7', 't', 0, 0, 0, 3, 'a', 'b', 'c'}
	msg, err := parseLogical(insert)
	if err != nil {
		t.Fatalf("whole insert: %v", err)
	}
	if m, ok := msg.(*pglogrepl.InsertMessage); !ok || len(m.Tuple.Columns) != 2 || string(m.Tuple.Columns[1].Data) != "abc" {
		t.Fatalf("whole insert parsed as %#v", msg)
	}
	panicked := 0
	for n := 1; n < len(insert); n++ {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("parseLogical panicked on %d bytes: %v", n, p)
				}
			}()
			if _, err := parseLogical(insert[:n]); err != nil && strings.Contains(err.Error(), "malformed") {
				panicked++
			}
		}()
	}
	if panicked == 0 {
		t.Error("no truncation made pglogrepl panic; the recovery is untested")
	}
	if _, err := parseLogical(nil); err == nil {
		t.Error("empty message parsed")
	}
}

func TestBackoff(t *testing.T) {
	b := sources.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var last time.Duration
	for i := 0; i < 20; i++ {
		d := b.Next()
		if d < 50*time.Millisecond || d > time.Second {
			t.Fatalf("attempt %d: %s outside [min/2, max]", i, d)
		}
		last = d
	}
	if last < 500*time.Millisecond {
		t.Errorf("backoff did not grow to the cap: %s", last)
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %s", d)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err   error
		fatal bool
	}{
		{errors.New("unexpected EOF"), false},
		{&pgconn.PgError{Code: "57P01"}, false},                     // admin shutdown
		{&pgconn.PgError{Code: "08006"}, false},                     // connection failure
		{&pgconn.PgError{Code: "53300"}, false},                     // too many connections
		{&pgconn.PgError{Code: "55006"}, false},                     // slot active
		{&pgconn.PgError{Code: "55000"}, true},                      // wal_level, slot invalidated
		{&pgconn.PgError{Code: "42501"}, true},                      // permission denied
		{&pgconn.PgError{Code: "42704"}, true},                      // publication missing
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "28P01"}), true}, // auth, wrapped
		{fatalf("slot lost"), true},
	} {
		if got := isFatal(classify(tc.err)); got != tc.fatal {
			t.Errorf("classify(%v) fatal = %v, want %v", tc.err, got, tc.fatal)
		}
	}
}

func TestAckAndPositions(t *testing.T) {
	src, err := New(Config{DSN: "postgres://u@127.0.0.1:1/db", Slot: "s", Publication: "p", StatusInterval: time.Second}, []string{"leads"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.mapped["public.leads"] {
		t.Errorf("bare table name not qualified: %v", src.tables)
	}
	for _, p := range []sources.Position{"0/16B3748", "0/16B3700", "1/0"} {
		if err := src.Ack(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := pglogrepl.LSN(src.acked.Load()).String(); got != "1/0" {
		t.Errorf("acked %s, want the highest, 1/0", got)
	}
	if err := src.Ack("garbage"); err == nil {
		t.Error("Ack accepted a non-LSN position")
	}
	if p := position(0x16B3748); p != "0/16B3748" {
		t.Errorf("position = %s", p)
	}
	if _, err := New(Config{DSN: "postgres://x", Slot: "s", Publication: "p", StatusInterval: time.Second}, nil, nil); err == nil {
		t.Error("New without tables succeeded")
	}
	if _, err := New(Config{DSN: "postgres://x", Slot: "Bad-Slot", Publication: "p", StatusInterval: time.Second}, []string{"a.b"}, nil); err == nil {
		t.Error("New with an invalid config succeeded")
	}
}

func TestLSNText(t *testing.T) {
	for _, l := range []pglogrepl.LSN{0, 1, 0x16B374D848, 0xFFFFFFFFFFFFFFFF, 0x100000000, 0xABCDEF} {
		if got, want := lsnText(l), l.String(); got != want {
			t.Errorf("lsnText(%#x) = %q, want %q", uint64(l), got, want)
		}
	}
}
