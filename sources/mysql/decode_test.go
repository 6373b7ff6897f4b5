package mysql

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/leadtail/leadtail/sources"
)

// fixedDec stands in for shopspring's Decimal (go-mysql's UseDecimal).
type fixedDec string

func (d fixedDec) StringFixed(places int32) string { return string(d) + "@" + string(rune('0'+places)) }

func TestColumnDecode(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	col := func(typ byte, mod func(*column)) column {
		c := column{name: "c", typ: typ}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	unsigned := func(c *column) { c.unsigned = true }
	binary := func(c *column) { c.binary = true }
	jsonCol := func(c *column) { c.json = true }
	cases := []struct {
		name string
		c    column
		in   any
		want any
	}{
		{"null", col(gomysql.MYSQL_TYPE_LONG, nil), nil, nil},
		{"tinyint", col(gomysql.MYSQL_TYPE_TINY, nil), int8(-128), int64(-128)},
		// Without signedness metadata go-mysql decodes unsigned columns as
		// signed: the schema's "unsigned" turns them back.
		{"tinyint unsigned seen as signed", col(gomysql.MYSQL_TYPE_TINY, unsigned), int8(-1), int64(255)},
		{"smallint unsigned seen as signed", col(gomysql.MYSQL_TYPE_SHORT, unsigned), int16(-1), int64(65535)},
		{"mediumint unsigned seen as signed", col(gomysql.MYSQL_TYPE_INT24, unsigned), int32(-1), int64(16777215)},
		{"int unsigned seen as signed", col(gomysql.MYSQL_TYPE_LONG, unsigned), int32(-1), int64(4294967295)},
		{"bigint unsigned seen as signed", col(gomysql.MYSQL_TYPE_LONGLONG, unsigned), int64(-1), uint64(18446744073709551615)},
		{"bigint unsigned from metadata", col(gomysql.MYSQL_TYPE_LONGLONG, unsigned), uint64(18446744073709551615), uint64(18446744073709551615)},
		{"int unsigned from metadata", col(gomysql.MYSQL_TYPE_LONG, unsigned), uint32(4294967295), int64(4294967295)},
		{"tinyint(1) stays a number", col(gomysql.MYSQL_TYPE_TINY, nil), int8(1), int64(1)},
		{"year", col(gomysql.MYSQL_TYPE_YEAR, nil), 2024, int64(2024)},
		{"float", col(gomysql.MYSQL_TYPE_FLOAT, nil), float32(0.1), 0.1},
		{"double", col(gomysql.MYSQL_TYPE_DOUBLE, nil), 1.5e300, 1.5e300},
		{"decimal keeps the scale", column{typ: gomysql.MYSQL_TYPE_NEWDECIMAL, meta: 12<<8 | 4}, fixedDec("1.5"), "1.5@4"},
		{"datetime in the configured zone", col(gomysql.MYSQL_TYPE_DATETIME2, nil),
			time.Date(2024, 3, 1, 12, 34, 56, 789e6, time.UTC), time.Date(2024, 3, 1, 11, 34, 56, 789e6, time.UTC)},
		{"datetime before 1970 (a string from go-mysql)", col(gomysql.MYSQL_TYPE_DATETIME2, nil),
			"1969-07-20 20:17:40.5", time.Date(1969, 7, 20, 19, 17, 40, 5e8, time.UTC)},
		{"zero datetime", col(gomysql.MYSQL_TYPE_DATETIME2, nil), "0000-00-00 00:00:00", nil},
		{"partly zero datetime", col(gomysql.MYSQL_TYPE_DATETIME2, nil), "2024-00-10 00:00:00", nil},
		{"timestamp is UTC", col(gomysql.MYSQL_TYPE_TIMESTAMP2, nil), time.Unix(1700000000, 0).In(berlin), time.Unix(1700000000, 0).UTC()},
		{"zero timestamp", col(gomysql.MYSQL_TYPE_TIMESTAMP2, nil), "0000-00-00 00:00:00.000", nil},
		{"date", col(gomysql.MYSQL_TYPE_DATE, nil), "2024-02-29", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"zero date", col(gomysql.MYSQL_TYPE_DATE, nil), "0000-00-00", nil},
		{"time", col(gomysql.MYSQL_TYPE_TIME2, nil), "-12:30:00", "-12:30:00"},
		{"varchar", col(gomysql.MYSQL_TYPE_VARCHAR, nil), "Zoë 🚀", "Zoë 🚀"},
		{"varbinary", col(gomysql.MYSQL_TYPE_VARCHAR, binary), "\x00\xff", []byte{0, 0xff}},
		{"text", col(gomysql.MYSQL_TYPE_BLOB, nil), []byte("long text"), "long text"},
		{"blob", col(gomysql.MYSQL_TYPE_BLOB, binary), []byte{0, 1, 2}, []byte{0, 1, 2}},
		{"mysql json", col(gomysql.MYSQL_TYPE_JSON, jsonCol), `{"k":[1,2]}`, json.RawMessage(`{"k":[1,2]}`)},
		{"mysql empty json", col(gomysql.MYSQL_TYPE_JSON, jsonCol), []byte{}, json.RawMessage("null")},
		{"mariadb json (longtext)", col(gomysql.MYSQL_TYPE_BLOB, jsonCol), []byte(`{"k": 1}`), json.RawMessage(`{"k": 1}`)},
		{"enum label", column{typ: gomysql.MYSQL_TYPE_ENUM, labels: []string{"new", "won"}}, int64(2), "won"},
		{"enum invalid value", column{typ: gomysql.MYSQL_TYPE_ENUM, labels: []string{"new", "won"}}, int64(0), ""},
		{"set labels", column{typ: gomysql.MYSQL_TYPE_SET, labels: []string{"a", "b", "c"}}, int64(5), "a,c"},
		{"empty set", column{typ: gomysql.MYSQL_TYPE_SET, labels: []string{"a"}}, int64(0), ""},
		{"bit", col(gomysql.MYSQL_TYPE_BIT, nil), int64(165), int64(165)},
		{"partial json diff is unknown", col(gomysql.MYSQL_TYPE_JSON, jsonCol), &replication.JsonDiff{}, sources.Unknown{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.c.decode(c.in, berlin)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %T(%v), want %T(%v)", got, got, c.want, c.want)
			}
		})
	}
	if _, err := (&column{typ: gomysql.MYSQL_TYPE_ENUM, labels: []string{"a"}}).decode(int64(3), time.UTC); err == nil {
		t.Error("enum index out of range: no error")
	}
}

func TestParseLabels(t *testing.T) {
	cases := map[string][]string{
		"enum('new','won','lost')": {"new", "won", "lost"},
		"set('a','b,c','it''s')":   {"a", "b,c", "it's"},
		"enum('')":                 {""},
		"int(11)":                  nil,
	}
	for in, want := range cases {
		if got := parseLabels(in); !reflect.DeepEqual(got, want) {
			t.Errorf("parseLabels(%q) = %q, want %q", in, got, want)
		}
	}
}

func tableMap(names []string, types []byte) *replication.TableMapEvent {
	tm := &replication.TableMapEvent{
		Schema: []byte("crm"), Table: []byte("leads"),
		ColumnCount: uint64(len(types)), ColumnType: types, ColumnMeta: make([]uint16, len(types)),
	}
	for _, n := range names {
		tm.ColumnName = append(tm.ColumnName, []byte(n))
	}
	return tm
}

func TestBuildTable(t *testing.T) {
	types := []byte{gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_BLOB}
	now := []schemaCol{{name: "id", unsigned: true}, {name: "status"}, {name: "note"}, {name: "payload", json: true}}

	// Names in the event (binlog_row_metadata=FULL) describe the row as it
	// was written, even though the table has a fourth column by now.
	def, err := buildTable("crm.leads", tableMap([]string{"id", "status", "payload"}, types), now)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{def.cols[0].name, def.cols[1].name, def.cols[2].name}
	if !reflect.DeepEqual(got, []string{"id", "status", "payload"}) || !def.cols[0].unsigned || !def.cols[2].json {
		t.Errorf("columns %q, unsigned %v, json %v", got, def.cols[0].unsigned, def.cols[2].json)
	}

	// Without names, a count mismatch is an error naming the table.
	_, err = buildTable("crm.leads", tableMap(nil, types), now)
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "crm.leads") || !strings.Contains(err.Error(), "binlog_row_metadata=FULL") {
		t.Errorf("mismatch: %v, want a fatal error naming crm.leads and the fix", err)
	}
	typed := []schemaCol{{name: "id", dataType: "int"}, {name: "status", dataType: "varchar"}, {name: "note", dataType: "text"}}
	def, err = buildTable("crm.leads", tableMap(nil, types), typed)
	if err != nil || def.cols[2].name != "note" {
		t.Errorf("names from the schema: %v %v", def, err)
	}
	// Same count, another type: a DDL in between all the same.
	retyped := []schemaCol{{name: "id", dataType: "int"}, {name: "status", dataType: "datetime"}, {name: "note", dataType: "text"}}
	if _, err := buildTable("crm.leads", tableMap(nil, types), retyped); !isFatal(err) || !strings.Contains(err.Error(), "datetime") {
		t.Errorf("type mismatch: %v, want a fatal error", err)
	}

	// A row image that lacks a column (binlog_row_image=MINIMAL) gives
	// Unknown, never NULL.
	row, err := def.row([]any{int32(1), "new", nil}, []int{2}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := row["note"].(sources.Unknown); !ok || row["status"] != "new" || row["id"] != int64(1) {
		t.Errorf("row %v", row)
	}
	if _, err := def.row([]any{int32(1)}, nil, time.UTC); err == nil {
		t.Error("short row: no error")
	}
}

func TestDecodeField(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	fv := func(typ gomysql.FieldValueType, v uint64, s string) gomysql.FieldValue {
		var b []byte
		if s != "" {
			b = []byte(s)
		}
		return gomysql.NewFieldValue(typ, v, b)
	}
	str := func(s string) gomysql.FieldValue { return fv(gomysql.FieldValueTypeString, 0, s) }
	cases := []struct {
		name string
		f    gomysql.Field
		v    gomysql.FieldValue
		want any
	}{
		{"null", gomysql.Field{Type: gomysql.MYSQL_TYPE_LONG}, fv(gomysql.FieldValueTypeNull, 0, ""), nil},
		{"signed", gomysql.Field{Type: gomysql.MYSQL_TYPE_LONG}, fv(gomysql.FieldValueTypeSigned, uint64(1<<64-5), ""), int64(-5)},
		{"int unsigned", gomysql.Field{Type: gomysql.MYSQL_TYPE_LONG, Flag: gomysql.UNSIGNED_FLAG}, fv(gomysql.FieldValueTypeUnsigned, 4294967295, ""), int64(4294967295)},
		{"bigint unsigned", gomysql.Field{Type: gomysql.MYSQL_TYPE_LONGLONG, Flag: gomysql.UNSIGNED_FLAG}, fv(gomysql.FieldValueTypeUnsigned, 1<<64-1, ""), uint64(1<<64 - 1)},
		{"decimal", gomysql.Field{Type: gomysql.MYSQL_TYPE_NEWDECIMAL}, str("-1.2300"), "-1.2300"},
		{"datetime", gomysql.Field{Type: gomysql.MYSQL_TYPE_DATETIME}, str("2024-07-01 12:00:00.5"), time.Date(2024, 7, 1, 10, 0, 0, 5e8, time.UTC)},
		{"timestamp", gomysql.Field{Type: gomysql.MYSQL_TYPE_TIMESTAMP}, str("2024-07-01 12:00:00"), time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)},
		{"zero date", gomysql.Field{Type: gomysql.MYSQL_TYPE_DATE}, str("0000-00-00"), nil},
		{"bit", gomysql.Field{Type: gomysql.MYSQL_TYPE_BIT}, str("\x01\x02"), int64(258)},
		{"text protocol int", gomysql.Field{Type: gomysql.MYSQL_TYPE_LONG}, str("42"), int64(42)},
		{"binary charset", gomysql.Field{Type: gomysql.MYSQL_TYPE_BLOB, Charset: 63}, str("\x00\x01"), []byte{0, 1}},
		{"text", gomysql.Field{Type: gomysql.MYSQL_TYPE_BLOB, Charset: 45}, str("hi"), "hi"},
		{"mysql json", gomysql.Field{Type: gomysql.MYSQL_TYPE_JSON}, str(`{"a":1}`), json.RawMessage(`{"a":1}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeField(&c.f, &c.v, berlin)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %T(%v), want %T(%v)", got, got, c.want, c.want)
			}
		})
	}
}

func TestVersionAtLeast(t *testing.T) {
	cases := map[string]bool{"11.4.2-MariaDB": true, "10.11.19-MariaDB-0+deb12u1-log": false, "12.0.1-MariaDB": true, "8.0.36": false, "junk": false}
	for v, want := range cases {
		if got := versionAtLeast(v, 11, 4); got != want {
			t.Errorf("versionAtLeast(%q, 11, 4) = %v", v, got)
		}
	}
}

func TestMentions(t *testing.T) {
	cases := []struct {
		q    string
		want bool
	}{
		{"INSERT INTO leads VALUES (1)", true},
		{"insert into `crm`.`LEADS` values (1)", true},
		{"ALTER TABLE leads_archive ADD x int", false},
		{"UPDATE old_leads SET a = 1", false},
		{"DELETE FROM crm.leads", true},
		{"UPDATE t SET note = 'leads'", false},
		{`UPDATE t SET note = 'it\'s leads', b = "leads"`, false},
		{"UPDATE leads SET note = 'x'", true},
	}
	for _, c := range cases {
		if got := mentions(stripLiterals(c.q), "leads"); got != c.want {
			t.Errorf("mentions(%q) = %v", c.q, got)
		}
	}
}
