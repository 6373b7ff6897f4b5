package mysql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/leadtail/leadtail/sources"
)

// Decoding rules (binlog rows and lookup results alike), to the closed set
// of sources.Row types:
//
//	TINYINT..BIGINT, YEAR, BIT       int64 (tinyint(1) too: no bool guessing)
//	BIGINT UNSIGNED                  uint64; smaller unsigned types are int64 (they fit)
//	FLOAT, DOUBLE                    float64 (FLOAT via its shortest decimal form)
//	DECIMAL                          string, exact, with the column's scale
//	DATETIME                         time.Time UTC, read in Config.DatetimeZone
//	TIMESTAMP                        time.Time UTC
//	DATE                             time.Time UTC midnight
//	zero or partly zero dates        nil ('0000-00-00', '2024-00-10': no instant to give)
//	TIME                             string ("-838:59:59".."838:59:59" is no time of day)
//	CHAR/VARCHAR/TEXT, ENUM, SET     string (ENUM and SET as their labels)
//	BINARY/VARBINARY/BLOB, GEOMETRY  []byte
//	JSON                             json.RawMessage (MySQL's binary JSON rendered as text;
//	                                 MariaDB's JSON is LONGTEXT CHECK (json_valid(..)))
//	a column the row image lacks     sources.Unknown{} (binlog_row_image other than FULL)

// column is what decoding needs to know about one column.
type column struct {
	name     string
	typ      byte // binlog type, ENUM and SET resolved from MYSQL_TYPE_STRING
	meta     uint16
	unsigned bool
	binary   bool // binary charset: []byte, not string
	json     bool
	labels   []string // ENUM / SET values in definition order
	// skip: no mapping reads the column; rows leave it out.
	skip bool
}

// tableDef is a mapped table as one TABLE_MAP event describes it.
type tableDef struct {
	name string // "database.table"
	cols []column
	// event (the TABLE_MAP event past its header) and schema are what the
	// definition was built from: the same again needs no new build.
	event  []byte
	schema []schemaCol
}

// schemaCol is a column as information_schema describes it now.
type schemaCol struct {
	name     string
	dataType string // lower case DATA_TYPE
	unsigned bool
	binary   bool
	json     bool
	labels   []string
}

// realType resolves ENUM and SET, which the table map records as
// MYSQL_TYPE_STRING with the real type in the metadata's high byte.
func realType(typ byte, meta uint16) byte {
	if typ == gomysql.MYSQL_TYPE_STRING {
		if rt := byte(meta >> 8); rt == gomysql.MYSQL_TYPE_ENUM || rt == gomysql.MYSQL_TYPE_SET {
			return rt
		}
	}
	return typ
}

// buildTable combines a TABLE_MAP event with the schema read from
// information_schema. Column names come from the event when the server
// logs them (binlog_row_metadata=FULL): they describe the row as it was
// written, whatever DDL ran since. Otherwise they come from the schema,
// which must have exactly as many columns as the event: anything else
// means the table changed since the event was written, and guessing would
// shift values into the wrong columns.
func buildTable(name string, tm *replication.TableMapEvent, schema []schemaCol) (*tableDef, error) {
	n := int(tm.ColumnCount)
	names := tm.ColumnNameString()
	byName := map[string]*schemaCol{}
	for i := range schema {
		byName[schema[i].name] = &schema[i]
	}
	fromSchema := len(names) != n
	if fromSchema {
		mismatch := ""
		if len(schema) != n {
			mismatch = fmt.Sprintf("the binlog row has %d columns but information_schema lists %d", n, len(schema))
		} else {
			// Same count: a changed type still shows a DDL in between
			// (a rename does not; that needs the names in the binlog).
			for i := range schema {
				bf, sf := binlogFamily(realType(tm.ColumnType[i], tm.ColumnMeta[i])), schemaFamily(schema[i].dataType)
				if bf != "" && sf != "" && bf != sf {
					mismatch = fmt.Sprintf("binlog column %d is %s but information_schema has %s %s", i+1, bf, schema[i].name, schema[i].dataType)
					break
				}
			}
		}
		if mismatch != "" {
			return nil, fatalf("mysql: table %s: %s: the table was altered after this event was written and the binlog "+
				"does not carry column names; set binlog_row_metadata=FULL on the server so that it does (events written "+
				"before that still need the old table definition: start from the current end of the binlog and backfill)", name, mismatch)
		}
	}
	unsigned := tm.UnsignedMap()    // nil without signedness metadata
	collations := tm.CollationMap() // nil without charset metadata
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	t := &tableDef{name: name, cols: make([]column, n)}
	for i := 0; i < n; i++ {
		c := column{typ: realType(tm.ColumnType[i], tm.ColumnMeta[i]), meta: tm.ColumnMeta[i]}
		var sc *schemaCol
		if fromSchema {
			sc = &schema[i]
			c.name = sc.name
		} else {
			c.name = names[i]
			sc = byName[c.name]
		}
		if u, ok := unsigned[i]; ok {
			c.unsigned = u
		} else if sc != nil {
			c.unsigned = sc.unsigned
		}
		if coll, ok := collations[i]; ok {
			c.binary = coll == binaryCollation
		} else if sc != nil {
			c.binary = sc.binary
		} else if c.typ == gomysql.MYSQL_TYPE_BLOB {
			// No charset to go by: bytes are the lossless choice.
			c.binary = true
		}
		c.json = c.typ == gomysql.MYSQL_TYPE_JSON || (sc != nil && sc.json)
		switch c.typ {
		case gomysql.MYSQL_TYPE_ENUM:
			c.labels = enums[i]
		case gomysql.MYSQL_TYPE_SET:
			c.labels = sets[i]
		}
		if c.labels == nil && sc != nil {
			c.labels = sc.labels
		}
		t.cols[i] = c
	}
	return t, nil
}

// fixedDecimal is shopspring/decimal.Decimal as go-mysql's UseDecimal
// returns it, matched by method so that leadtail does not depend on it.
type fixedDecimal interface{ StringFixed(places int32) string }

// binlogFamily and schemaFamily group binlog column types and
// information_schema DATA_TYPEs into comparable families ("" = unknown).
func binlogFamily(typ byte) string {
	switch typ {
	case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24, gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_LONGLONG:
		return "integer"
	case gomysql.MYSQL_TYPE_DECIMAL, gomysql.MYSQL_TYPE_NEWDECIMAL:
		return "decimal"
	case gomysql.MYSQL_TYPE_FLOAT, gomysql.MYSQL_TYPE_DOUBLE:
		return "floating point"
	case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
		return "timestamp"
	case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
		return "datetime"
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		return "date"
	case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		return "time"
	case gomysql.MYSQL_TYPE_YEAR:
		return "year"
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING, gomysql.MYSQL_TYPE_STRING:
		return "string"
	case gomysql.MYSQL_TYPE_BLOB:
		return "blob"
	case gomysql.MYSQL_TYPE_ENUM:
		return "enum"
	case gomysql.MYSQL_TYPE_SET:
		return "set"
	case gomysql.MYSQL_TYPE_BIT:
		return "bit"
	case gomysql.MYSQL_TYPE_JSON:
		return "json"
	}
	return ""
}

func schemaFamily(dataType string) string {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		return "integer"
	case "decimal", "numeric":
		return "decimal"
	case "float", "double", "real", "double precision":
		return "floating point"
	case "timestamp", "datetime", "date", "time", "year", "enum", "set", "bit":
		return dataType
	case "char", "varchar", "binary", "varbinary":
		return "string"
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		return "blob"
	case "json":
		return "json" // MySQL; MariaDB's JSON is longtext
	}
	return ""
}

// binaryCollation is the id of the "binary" collation (charset binary).
const binaryCollation = 63

// row decodes one row image. skipped lists the columns the image lacks.
func (t *tableDef) row(vals []any, skipped []int, loc *time.Location) (sources.Row, error) {
	if len(vals) != len(t.cols) {
		return nil, fmt.Errorf("mysql: table %s: row has %d values, table map %d columns", t.name, len(vals), len(t.cols))
	}
	row := make(sources.Row, len(vals))
	for i, v := range vals {
		c := &t.cols[i]
		if c.skip {
			continue
		}
		dv, err := c.decode(v, loc)
		if err != nil {
			return nil, fmt.Errorf("mysql: %s.%s: %w", t.name, c.name, err)
		}
		row[c.name] = dv
	}
	for _, i := range skipped {
		if i >= 0 && i < len(t.cols) && !t.cols[i].skip {
			row[t.cols[i].name] = sources.Unknown{}
		}
	}
	return row, nil
}

// decode converts a value as go-mysql's row decoder returns it (with
// ParseTime and UseDecimal) to a sources.Row type.
func (c *column) decode(v any, loc *time.Location) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case int8:
		if c.unsigned {
			return int64(uint8(x)), nil
		}
		return int64(x), nil
	case int16:
		if c.unsigned {
			return int64(uint16(x)), nil
		}
		return int64(x), nil
	case int32:
		if c.unsigned {
			if c.typ == gomysql.MYSQL_TYPE_INT24 {
				return int64(uint32(x) & 0xFFFFFF), nil
			}
			return int64(uint32(x)), nil
		}
		return int64(x), nil
	case int64:
		switch c.typ {
		case gomysql.MYSQL_TYPE_ENUM:
			return c.enumLabel(x)
		case gomysql.MYSQL_TYPE_SET:
			return c.setLabels(x)
		case gomysql.MYSQL_TYPE_LONGLONG:
			if c.unsigned {
				return uint64(x), nil
			}
		}
		return x, nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if c.typ == gomysql.MYSQL_TYPE_LONGLONG {
			return x, nil
		}
		if x > math.MaxInt64 {
			return x, nil
		}
		return int64(x), nil
	case int:
		return int64(x), nil // YEAR
	case float32:
		return shortFloat(x), nil
	case float64:
		return x, nil
	case fixedDecimal:
		return x.StringFixed(int32(c.meta & 0xFF)), nil
	case time.Time:
		switch c.typ {
		case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
			// go-mysql builds DATETIME values in UTC from the wall clock;
			// the wall clock belongs to the configured zone.
			return time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), loc).UTC(), nil
		}
		return x.UTC(), nil
	case string:
		switch c.typ {
		case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
			return parseDateTime(x, loc)
		case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
			return parseDateTime(x, time.UTC)
		case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
			return parseDateTime(x, time.UTC)
		case gomysql.MYSQL_TYPE_JSON:
			if x == "" {
				return json.RawMessage("null"), nil
			}
			return json.RawMessage(x), nil
		}
		if c.binary {
			return []byte(x), nil
		}
		return strings.Clone(x), nil
	case []byte:
		if c.json {
			if len(x) == 0 {
				return json.RawMessage("null"), nil
			}
			return json.RawMessage(bytes.Clone(x)), nil
		}
		if c.binary || c.typ == gomysql.MYSQL_TYPE_GEOMETRY {
			return bytes.Clone(x), nil
		}
		return string(x), nil
	case *replication.JsonDiff:
		// Only with binlog_row_value_options=PARTIAL_JSON, which Check
		// rejects: the full document is not in the event.
		return sources.Unknown{}, nil
	}
	return nil, fmt.Errorf("unexpected value type %T", v)
}

func (c *column) enumLabel(i int64) (any, error) {
	if c.labels == nil {
		return i, nil // no labels known: the index is all there is
	}
	if i == 0 {
		return "", nil // the "invalid value" index of non-strict SQL modes
	}
	if i < 1 || int(i) > len(c.labels) {
		return nil, fmt.Errorf("enum index %d out of range (%d labels)", i, len(c.labels))
	}
	return c.labels[i-1], nil
}

func (c *column) setLabels(bits int64) (any, error) {
	if c.labels == nil {
		return bits, nil
	}
	var out []string
	for i, l := range c.labels {
		if bits&(1<<uint(i)) != 0 {
			out = append(out, l)
		}
	}
	return strings.Join(out, ","), nil
}

// shortFloat widens a FLOAT through its shortest decimal form, so that a
// stored 0.1 reads as 0.1 rather than 0.10000000149011612.
func shortFloat(f float32) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

// parseDateTime parses "YYYY-MM-DD[ HH:MM:SS[.ffffff]]" in loc. Zero and
// partly zero dates ('0000-00-00', '2024-00-10') have no instant: nil.
func parseDateTime(s string, loc *time.Location) (any, error) {
	if len(s) < 10 {
		return nil, fmt.Errorf("malformed date value (%d bytes)", len(s))
	}
	if s[0:4] == "0000" || s[5:7] == "00" || s[8:10] == "00" {
		return nil, nil
	}
	layout := "2006-01-02"
	if len(s) > 10 {
		layout = "2006-01-02 15:04:05.999999999"
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		// Not the value itself: errors end up in logs.
		return nil, fmt.Errorf("malformed date/time value (%d bytes)", len(s))
	}
	return t.UTC(), nil
}

// decodeField converts one lookup result value. Text and binary protocol
// results arrive as typed FieldValues; their text forms use the session's
// time zone (UTC, see sessionInit) for TIMESTAMP.
func decodeField(f *gomysql.Field, v *gomysql.FieldValue, loc *time.Location) (any, error) {
	unsigned := f.Flag&gomysql.UNSIGNED_FLAG != 0
	switch v.Type {
	case gomysql.FieldValueTypeNull:
		return nil, nil
	case gomysql.FieldValueTypeUnsigned:
		if f.Type == gomysql.MYSQL_TYPE_LONGLONG || v.AsUint64() > math.MaxInt64 {
			return v.AsUint64(), nil
		}
		return int64(v.AsUint64()), nil
	case gomysql.FieldValueTypeSigned:
		if unsigned && f.Type == gomysql.MYSQL_TYPE_LONGLONG {
			return v.AsUint64(), nil
		}
		return v.AsInt64(), nil
	case gomysql.FieldValueTypeFloat:
		if f.Type == gomysql.MYSQL_TYPE_FLOAT {
			return shortFloat(float32(v.AsFloat64())), nil
		}
		return v.AsFloat64(), nil
	}
	b := v.AsString()
	s := string(b)
	// strconv errors quote the value: errors end up in logs.
	numErr := func(v any, err error) (any, error) {
		if err != nil {
			return nil, fmt.Errorf("malformed numeric value (%d bytes)", len(s))
		}
		return v, nil
	}
	switch f.Type {
	case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24,
		gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_YEAR:
		return numErr(strconv.ParseInt(s, 10, 64))
	case gomysql.MYSQL_TYPE_LONGLONG:
		if unsigned {
			return numErr(strconv.ParseUint(s, 10, 64))
		}
		return numErr(strconv.ParseInt(s, 10, 64))
	case gomysql.MYSQL_TYPE_FLOAT, gomysql.MYSQL_TYPE_DOUBLE:
		return numErr(strconv.ParseFloat(s, 64))
	case gomysql.MYSQL_TYPE_DECIMAL, gomysql.MYSQL_TYPE_NEWDECIMAL:
		return s, nil
	case gomysql.MYSQL_TYPE_DATETIME:
		return parseDateTime(s, loc)
	case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		return parseDateTime(s, time.UTC)
	case gomysql.MYSQL_TYPE_TIME:
		return s, nil
	case gomysql.MYSQL_TYPE_BIT:
		var n int64
		for _, c := range b {
			n = n<<8 | int64(c)
		}
		return n, nil
	case gomysql.MYSQL_TYPE_JSON:
		return json.RawMessage(b), nil
	case gomysql.MYSQL_TYPE_GEOMETRY:
		return []byte(s), nil
	}
	if f.Charset == binaryCollation {
		return []byte(s), nil
	}
	return s, nil
}
