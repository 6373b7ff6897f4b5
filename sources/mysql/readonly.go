package mysql

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// ReadOnlyConn is a plain connection whose session refuses writes, for
// tools that only look at a database (`leadtail init`). It is not safe for
// concurrent use.
type ReadOnlyConn struct {
	conn *client.Conn
	db   string
}

// OpenReadOnly connects with a go-sql-driver style DSN and makes the
// session read-only (SET SESSION TRANSACTION READ ONLY), so that no
// statement sent on it can change data, whatever the user's privileges.
func OpenReadOnly(ctx context.Context, dsnText string) (*ReadOnlyConn, error) {
	d, err := parseDSN(dsnText)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	conn, err := dial(ctx, d, d.db)
	if err != nil {
		return nil, err
	}
	c := &ReadOnlyConn{conn: conn, db: d.db}
	if err := withConn(ctx, conn, func() error {
		_, err := conn.Execute("SET SESSION TRANSACTION READ ONLY")
		return err
	}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("make the session read-only: %w", err)
	}
	return c, nil
}

// Database is the DSN's database ("" when it names none).
func (c *ReadOnlyConn) Database() string { return c.db }

// Query runs query and returns every row as text, nil for NULL, with the
// column names.
func (c *ReadOnlyConn) Query(ctx context.Context, query string, args ...any) (cols []string, rows [][]*string, err error) {
	err = withConn(ctx, c.conn, func() error {
		res, err := c.conn.Execute(query, args...)
		if err != nil {
			return err
		}
		defer res.Close()
		if res.Resultset == nil {
			return errors.New("the statement returned no result set")
		}
		for _, f := range res.Fields {
			cols = append(cols, string(f.Name))
		}
		for _, vals := range res.Values {
			row := make([]*string, len(vals))
			for i := range vals {
				switch vals[i].Type {
				case gomysql.FieldValueTypeNull:
				case gomysql.FieldValueTypeString:
					s := string(vals[i].AsString())
					row[i] = &s
				default:
					s := vals[i].String()
					row[i] = &s
				}
			}
			rows = append(rows, row)
		}
		return nil
	})
	return cols, rows, err
}

// Close ends the connection.
func (c *ReadOnlyConn) Close() { quit(c.conn) }
