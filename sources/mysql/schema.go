package mysql

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
)

// readSchema reads a table's columns from information_schema, in
// definition order. It returns nil, nil when the table does not exist.
func readSchema(ctx context.Context, pool *connPool, db, table string) ([]schemaCol, error) {
	var cols []schemaCol
	err := pool.do(ctx, func(conn *client.Conn) error {
		cols = nil
		rows, err := queryStrings(conn, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
			ORDER BY ORDINAL_POSITION`, db, table)
		if err != nil {
			return err
		}
		for _, r := range rows {
			c := schemaCol{
				name:     str(r, "COLUMN_NAME"),
				dataType: strings.ToLower(str(r, "DATA_TYPE")),
			}
			colType := strings.ToLower(str(r, "COLUMN_TYPE"))
			c.unsigned = strings.Contains(colType, " unsigned")
			switch c.dataType {
			case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
				c.binary = true
			case "json":
				c.json = true
			case "enum", "set":
				c.labels = parseLabels(str(r, "COLUMN_TYPE"))
			}
			cols = append(cols, c)
		}
		if len(cols) == 0 {
			return nil
		}
		// MariaDB's JSON is LONGTEXT with a CHECK (json_valid(col))
		// constraint named after the column; that is the only trace of it.
		checks, err := queryStrings(conn, `SELECT CONSTRAINT_NAME, CHECK_CLAUSE
			FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, db, table)
		if err != nil {
			if code := serverCode(err); code == erBadField || code == erUnknownTable {
				return nil // MySQL (no TABLE_NAME there, real JSON type) or an old MariaDB
			}
			return err
		}
		for _, r := range checks {
			m := jsonValidRE.FindStringSubmatch(str(r, "CHECK_CLAUSE"))
			if m == nil {
				continue
			}
			name := strings.ReplaceAll(m[1], "``", "`")
			for i := range cols {
				if cols[i].name == name {
					cols[i].json = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mysql: read columns of %s.%s: %w", db, table, err)
	}
	return cols, nil
}

const erUnknownTable = 1109

var jsonValidRE = regexp.MustCompile("^\\s*json_valid\\(`((?:[^`]|``)+)`\\)\\s*$")

// parseLabels parses the values of "enum('a','b”c')" / "set(...)".
func parseLabels(colType string) []string {
	open := strings.IndexByte(colType, '(')
	if open < 0 {
		return nil
	}
	s := colType[open+1:]
	var out []string
	for {
		s = strings.TrimLeft(s, " ,")
		if s == "" || s[0] != '\'' {
			return out
		}
		var b strings.Builder
		i := 1
		for i < len(s) {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i += 2
					continue
				}
				break
			}
			b.WriteByte(s[i])
			i++
		}
		out = append(out, b.String())
		if i >= len(s) {
			return out
		}
		s = s[i+1:]
	}
}
