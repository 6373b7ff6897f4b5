package mysql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/leadtail/leadtail/sources"
)

// Position encoding
//
// A sources.Position is text with a prefix naming its kind:
//
//	file:mariadb-bin.000003:1234          binlog file and offset (the end of a transaction's last event)
//	gtid:mariadb:0-1-42,1-2-7             MariaDB GTID position, one domain-server-seq per domain,
//	                                       as @@gtid_binlog_pos prints it
//	gtid:mysql:3E11FA47-...:1-42,...:1-7  MySQL executed GTID set, the whole set
//
// Resuming from a Position streams every transaction after it. A MySQL
// position is the whole executed set (never one GTID): the server sends
// exactly the transactions whose GTIDs are missing from it.

type posKind int

const (
	posFile posKind = iota + 1
	posMariaGTID
	posMySQLGTID
)

func (k posKind) String() string {
	switch k {
	case posFile:
		return "file"
	case posMariaGTID:
		return "gtid:mariadb"
	case posMySQLGTID:
		return "gtid:mysql"
	}
	return "none"
}

// position is a decoded Position. Values are immutable once built: the
// with* methods return copies.
type position struct {
	kind posKind
	// posFile
	file   string
	offset uint32
	// posMariaGTID: one GTID per domain, sorted by domain.
	maria []gomysql.MariadbGTID
	// posMySQLGTID
	mysqlSet *gomysql.MysqlGTIDSet
}

const (
	prefixFile  = "file:"
	prefixMaria = "gtid:mariadb:"
	prefixMySQL = "gtid:mysql:"
)

// parsePosition decodes a non-empty Position.
func parsePosition(p sources.Position) (position, error) {
	s := string(p)
	switch {
	case strings.HasPrefix(s, prefixFile):
		rest := s[len(prefixFile):]
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return position{}, fmt.Errorf("mysql: position %q: want file:NAME:OFFSET", s)
		}
		off, err := strconv.ParseUint(rest[i+1:], 10, 32)
		if err != nil {
			return position{}, fmt.Errorf("mysql: position %q: bad offset: %w", s, err)
		}
		name := rest[:i]
		if !validBinlogName(name) {
			return position{}, fmt.Errorf("mysql: position %q: binlog file name must end in .NUMBER", s)
		}
		return position{kind: posFile, file: name, offset: uint32(off)}, nil
	case strings.HasPrefix(s, prefixMaria):
		gtids, err := parseMariaPos(s[len(prefixMaria):])
		if err != nil {
			return position{}, fmt.Errorf("mysql: position %q: %w", s, err)
		}
		return position{kind: posMariaGTID, maria: gtids}, nil
	case strings.HasPrefix(s, prefixMySQL):
		set, err := parseMySQLSet(s[len(prefixMySQL):])
		if err != nil {
			return position{}, fmt.Errorf("mysql: position %q: %w", s, err)
		}
		return position{kind: posMySQLGTID, mysqlSet: set}, nil
	}
	return position{}, fmt.Errorf("mysql: position %q: want a file:, gtid:mariadb: or gtid:mysql: prefix", s)
}

// validBinlogName guards CompareBinlogFileName, which panics on a name
// without a numeric extension.
func validBinlogName(name string) bool {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return false
	}
	_, err := strconv.ParseUint(name[i+1:], 10, 32)
	return err == nil
}

func parseMariaPos(s string) ([]gomysql.MariadbGTID, error) {
	var out []gomysql.MariadbGTID
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		g, err := gomysql.ParseMariadbGTID(part)
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(out, func(o gomysql.MariadbGTID) bool { return o.DomainID == g.DomainID }); i >= 0 {
			// A position holds one GTID per domain (what @@gtid_binlog_pos
			// prints); two would make the start point ambiguous.
			return nil, fmt.Errorf("domain %d appears twice", g.DomainID)
		}
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b gomysql.MariadbGTID) int { return int(a.DomainID) - int(b.DomainID) })
	return out, nil
}

func parseMySQLSet(s string) (*gomysql.MysqlGTIDSet, error) {
	// SHOW MASTER STATUS prints the set with newlines after the commas.
	s = strings.Join(strings.Fields(s), "")
	set, err := gomysql.ParseMysqlGTIDSet(s)
	if err != nil {
		return nil, err
	}
	return set.(*gomysql.MysqlGTIDSet), nil
}

// String encodes p as a Position.
func (p position) String() string {
	switch p.kind {
	case posFile:
		return prefixFile + p.file + ":" + strconv.FormatUint(uint64(p.offset), 10)
	case posMariaGTID:
		return prefixMaria + mariaString(p.maria)
	case posMySQLGTID:
		s := ""
		if p.mysqlSet != nil {
			s = p.mysqlSet.String()
		}
		return prefixMySQL + s
	}
	return ""
}

func (p position) pos() sources.Position { return sources.Position(p.String()) }

func (p position) isZero() bool { return p.kind == 0 }

func mariaString(gs []gomysql.MariadbGTID) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = fmt.Sprintf("%d-%d-%d", g.DomainID, g.ServerID, g.SequenceNumber)
	}
	return strings.Join(parts, ",")
}

// withMaria returns p with g as its domain's GTID.
func (p position) withMaria(g gomysql.MariadbGTID) position {
	out := make([]gomysql.MariadbGTID, 0, len(p.maria)+1)
	replaced := false
	for _, o := range p.maria {
		if o.DomainID == g.DomainID {
			out = append(out, g)
			replaced = true
			continue
		}
		out = append(out, o)
	}
	if !replaced {
		out = append(out, g)
		slices.SortFunc(out, func(a, b gomysql.MariadbGTID) int { return int(a.DomainID) - int(b.DomainID) })
	}
	return position{kind: posMariaGTID, maria: out}
}

// withMySQL returns p with one more GTID in its set.
func (p position) withMySQL(sid [16]byte, tag gomysql.Tag, gno int64) position {
	var set *gomysql.MysqlGTIDSet
	if p.mysqlSet != nil {
		set = p.mysqlSet.Clone().(*gomysql.MysqlGTIDSet)
	} else {
		s := gomysql.NewMysqlGTIDSet()
		set = &s
	}
	set.AddGTIDWithTag(sid, tag, gno)
	return position{kind: posMySQLGTID, mysqlSet: set}
}

// gtidSet returns the go-mysql set to start a GTID dump from.
func (p position) gtidSet() (gomysql.GTIDSet, error) {
	switch p.kind {
	case posMariaGTID:
		return gomysql.ParseMariadbGTIDSet(mariaString(p.maria))
	case posMySQLGTID:
		if p.mysqlSet == nil {
			s := gomysql.NewMysqlGTIDSet()
			return &s, nil
		}
		return p.mysqlSet.Clone(), nil
	}
	return nil, fmt.Errorf("mysql: %s position is not a GTID position", p.kind)
}

// seen reports whether p, a position the stream has passed, includes the
// transaction q identifies: for file positions q is where the transaction
// starts (seen when it starts before p, which is a transaction end); for
// GTID positions q holds the transaction's GTID (seen when p contains it).
// ok is false when the two are of different kinds.
func (p position) seen(q position) (seen, ok bool) {
	if p.kind != q.kind {
		return false, false
	}
	switch p.kind {
	case posFile:
		return gomysql.Position{Name: q.file, Pos: q.offset}.Compare(gomysql.Position{Name: p.file, Pos: p.offset}) < 0, true
	case posMariaGTID:
		// Sequence numbers grow per domain (gtid_strict_mode), whatever the
		// server id.
		for _, g := range q.maria {
			i := slices.IndexFunc(p.maria, func(o gomysql.MariadbGTID) bool { return o.DomainID == g.DomainID })
			if i < 0 || p.maria[i].SequenceNumber < g.SequenceNumber {
				return false, true
			}
		}
		return true, true
	case posMySQLGTID:
		if q.mysqlSet == nil || q.mysqlSet.IsEmpty() {
			return true, true
		}
		if p.mysqlSet == nil {
			return false, true
		}
		return p.mysqlSet.Contain(q.mysqlSet), true
	}
	return false, false
}

// notAfter reports whether q is p or older: acking it again changes
// nothing. Positions of different kinds are never "not after".
func (p position) notAfter(q position) bool {
	if p.kind != q.kind {
		return false
	}
	if p.kind == posFile {
		return gomysql.Position{Name: q.file, Pos: q.offset}.Compare(gomysql.Position{Name: p.file, Pos: p.offset}) <= 0
	}
	seen, _ := p.seen(q)
	return seen
}
