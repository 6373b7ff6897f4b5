package mysql

import (
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/leadtail/leadtail/sources"
)

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "c6f4ba2d-1c2f-11ee-a8c4-0242ac120002"
)

func TestPositionRoundTrip(t *testing.T) {
	cases := []struct {
		name, in, want string // want "" = same as in
		kind           posKind
	}{
		{"file", "file:mariadb-bin.000003:1234", "", posFile},
		{"file with dots in the base", "file:/var/lib/my.sql/bin.log.000012:4", "", posFile},
		{"mariadb one domain", "gtid:mariadb:0-1-42", "", posMariaGTID},
		{"mariadb domains sorted", "gtid:mariadb:10-2-7,0-1-42,2-1-1", "gtid:mariadb:0-1-42,2-1-1,10-2-7", posMariaGTID},
		{"mariadb empty", "gtid:mariadb:", "", posMariaGTID},
		{"mysql one uuid", "gtid:mysql:" + uuidA + ":1-42", "", posMySQLGTID},
		{"mysql upper case, gaps merged", "gtid:mysql:" + strings.ToUpper(uuidA) + ":1-5:6-9:12", "gtid:mysql:" + uuidA + ":1-9:12", posMySQLGTID},
		{"mysql two uuids as SHOW MASTER STATUS prints them", "gtid:mysql:" + uuidB + ":1-3,\n" + uuidA + ":1-42",
			"gtid:mysql:" + uuidA + ":1-42," + uuidB + ":1-3", posMySQLGTID},
		{"mysql tagged (8.4)", "gtid:mysql:" + uuidA + ":1-10:leadtail:1-2", "", posMySQLGTID},
		{"mysql empty set", "gtid:mysql:", "", posMySQLGTID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := parsePosition(sources.Position(c.in))
			if err != nil {
				t.Fatal(err)
			}
			want := c.want
			if want == "" {
				want = c.in
			}
			if p.kind != c.kind || p.String() != want {
				t.Errorf("got %s %q, want %s %q", p.kind, p.String(), c.kind, want)
			}
			again, err := parsePosition(p.pos())
			if err != nil || again.String() != p.String() {
				t.Errorf("re-parse: %q, %v", again.String(), err)
			}
		})
	}
}

func TestPositionParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "0/16B3748", "file:", "file:binlog:12", "file:binlog.000001", "file:binlog.000001:x",
		"file:binlog.000001:99999999999", "gtid:mariadb:0-1", "gtid:mariadb:0-1-2,0-2-3",
		"gtid:mysql:not-a-uuid:1-2", "gtid:mysql:" + uuidA, "gtid:postgres:1",
	} {
		if p, err := parsePosition(sources.Position(in)); err == nil {
			t.Errorf("parsePosition(%q) = %q, want an error", in, p.String())
		}
	}
}

func mustPos(t *testing.T, s string) position {
	t.Helper()
	p, err := parsePosition(sources.Position(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPositionSeen(t *testing.T) {
	cases := []struct {
		last, txn string
		seen      bool
	}{
		// File positions: txn is where a transaction starts, last the
		// end of the last emitted one.
		{"file:b.000002:500", "file:b.000002:400", true},
		{"file:b.000002:500", "file:b.000002:500", false}, // starts where the last ended: new
		{"file:b.000002:500", "file:b.000003:4", false},
		{"file:b.000010:4", "file:b.000009:900", true}, // numeric, not lexical
		// MariaDB: by sequence number per domain, whatever the server.
		{"gtid:mariadb:0-1-42", "gtid:mariadb:0-1-42", true},
		{"gtid:mariadb:0-1-42", "gtid:mariadb:0-2-41", true},
		{"gtid:mariadb:0-1-42", "gtid:mariadb:0-1-43", false},
		{"gtid:mariadb:0-1-42", "gtid:mariadb:1-1-1", false},
		// MySQL: set containment.
		{"gtid:mysql:" + uuidA + ":1-42", "gtid:mysql:" + uuidA + ":42", true},
		{"gtid:mysql:" + uuidA + ":1-42", "gtid:mysql:" + uuidA + ":43", false},
		{"gtid:mysql:" + uuidA + ":1-42", "gtid:mysql:" + uuidB + ":1", false},
	}
	for _, c := range cases {
		seen, ok := mustPos(t, c.last).seen(mustPos(t, c.txn))
		if !ok || seen != c.seen {
			t.Errorf("%s seen %s = %v (ok %v), want %v", c.last, c.txn, seen, ok, c.seen)
		}
	}
	if _, ok := mustPos(t, "file:b.000001:4").seen(mustPos(t, "gtid:mariadb:0-1-1")); ok {
		t.Error("positions of different kinds compare")
	}
}

func TestPositionAdvance(t *testing.T) {
	p := mustPos(t, "gtid:mariadb:0-1-42,2-1-7")
	if got := p.withMaria(gomysql.MariadbGTID{DomainID: 0, ServerID: 3, SequenceNumber: 43}).String(); got != "gtid:mariadb:0-3-43,2-1-7" {
		t.Errorf("replace domain 0: %s", got)
	}
	if got := p.withMaria(gomysql.MariadbGTID{DomainID: 1, ServerID: 1, SequenceNumber: 1}).String(); got != "gtid:mariadb:0-1-42,1-1-1,2-1-7" {
		t.Errorf("add domain 1: %s", got)
	}
	if p.String() != "gtid:mariadb:0-1-42,2-1-7" {
		t.Errorf("withMaria changed its receiver: %s", p)
	}

	// The whole executed set is carried forward, never one GTID.
	m := mustPos(t, "gtid:mysql:"+uuidA+":1-41,"+uuidB+":1-3")
	sid := sidOf(t, uuidA)
	next := m.withMySQL(sid, gomysql.Tag{}, 42)
	if got, want := next.String(), "gtid:mysql:"+uuidA+":1-42,"+uuidB+":1-3"; got != want {
		t.Errorf("add %s:42: %s, want %s", uuidA, got, want)
	}
	if m.String() != "gtid:mysql:"+uuidA+":1-41,"+uuidB+":1-3" {
		t.Errorf("withMySQL changed its receiver: %s", m)
	}
	gap := m.withMySQL(sid, gomysql.Tag{}, 50)
	if got, want := gap.String(), "gtid:mysql:"+uuidA+":1-41:50,"+uuidB+":1-3"; got != want {
		t.Errorf("add with a gap: %s, want %s", got, want)
	}
	empty := position{kind: posMySQLGTID}
	if got, want := empty.withMySQL(sid, gomysql.Tag{}, 1).String(), "gtid:mysql:"+uuidA+":1"; got != want {
		t.Errorf("first GTID: %s, want %s", got, want)
	}
}

func TestPositionNotAfter(t *testing.T) {
	cases := []struct {
		acked, p string
		want     bool
	}{
		{"file:b.000002:500", "file:b.000002:500", true},
		{"file:b.000002:500", "file:b.000002:400", true},
		{"file:b.000002:500", "file:b.000003:4", false},
		{"gtid:mariadb:0-1-42", "gtid:mariadb:0-1-40", true},
		{"gtid:mariadb:0-1-42", "gtid:mariadb:0-1-43", false},
		{"gtid:mysql:" + uuidA + ":1-42", "gtid:mysql:" + uuidA + ":1-40", true},
		{"gtid:mysql:" + uuidA + ":1-42", "gtid:mysql:" + uuidA + ":1-43", false},
		{"file:b.000002:500", "gtid:mariadb:0-1-1", false},
	}
	for _, c := range cases {
		if got := mustPos(t, c.acked).notAfter(mustPos(t, c.p)); got != c.want {
			t.Errorf("%s notAfter %s = %v, want %v", c.acked, c.p, got, c.want)
		}
	}
}

// The GTID set sent in COM_BINLOG_DUMP_GTID is the whole position, in
// MySQL's binary encoding.
func TestMySQLGTIDSetEncoding(t *testing.T) {
	p := mustPos(t, "gtid:mysql:"+uuidA+":1-42:50")
	set, err := p.gtidSet()
	if err != nil {
		t.Fatal(err)
	}
	b := set.Encode()
	// n_sids (8) + sid (16) + n_intervals (8) + 2 × (start, end) (16 each).
	if len(b) != 8+16+8+2*16 {
		t.Fatalf("encoded %d bytes", len(b))
	}
	back, err := gomysql.DecodeMysqlGTIDSet(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != uuidA+":1-42:50" {
		t.Errorf("decoded %s", back.String())
	}
	maria, err := mustPos(t, "gtid:mariadb:0-1-42,1-2-3").gtidSet()
	if err != nil || maria.String() != "0-1-42,1-2-3" {
		t.Errorf("MariaDB slave_connect_state %q, %v", maria.String(), err)
	}
	if _, err := mustPos(t, "file:b.000001:4").gtidSet(); err == nil {
		t.Error("file position has a GTID set")
	}
}

func sidOf(t *testing.T, u string) [16]byte {
	t.Helper()
	set, err := gomysql.ParseMysqlGTIDSet(u + ":1")
	if err != nil {
		t.Fatal(err)
	}
	for sid := range *set.(*gomysql.MysqlGTIDSet) {
		return sid
	}
	t.Fatal("no sid")
	return [16]byte{}
}

func TestAckKeepsNewest(t *testing.T) {
	src, err := New(Config{DSN: "u:p@tcp(127.0.0.1:1)/db", ServerID: 7, DatetimeZone: "UTC"}, []string{"db.t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"file:b.000002:500", "file:b.000002:400", "file:b.000001:900"} {
		if err := src.Ack(sources.Position(p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := src.ackedPos().String(); got != "file:b.000002:500" {
		t.Errorf("acked %s, want the newest", got)
	}
	if err := src.Ack("nonsense"); err == nil {
		t.Error("Ack of a malformed position succeeded")
	}
}
