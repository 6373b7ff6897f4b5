package mysql

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/leadtail/leadtail/sources"
)

// Check is the preflight of `leadtail check`: it connects with cfg and
// reports everything that would stop or endanger streaming, each with a
// one-line fix. tables maps each mapped "database.table" to the columns
// the mapping reads. The error is for failures of the check itself (ctx
// cancelled, a query that should not fail); an unreachable server is a
// Problem.
func Check(ctx context.Context, cfg Config, tables map[string][]string) ([]sources.Problem, error) {
	d, err := parseDSN(cfg.DSN)
	if err != nil {
		return []sources.Problem{{Check: "dsn", Problem: fmt.Sprintf("source.mysql.dsn does not parse: %v", err),
			Fix: "fix source.mysql.dsn, e.g. leadtail:secret@tcp(db:3306)/crm"}}, nil
	}
	conn, err := dial(ctx, d, "")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p := sources.Problem{Check: "connection", Problem: fmt.Sprintf("cannot connect to %s: %v", RedactedDSN(cfg.DSN), err),
			Fix: "check source.mysql.dsn (host, port, user, password) and that the server accepts connections from here"}
		if c := serverCode(err); c == erAccessDenied || c == erDBAccessDenied {
			p.Fix = "check the user and password in source.mysql.dsn, and that the user may connect from this host"
		}
		return []sources.Problem{p}, nil
	}
	defer quit(conn)
	var f checkFacts
	err = withConn(ctx, conn, func() error { return gatherFacts(conn, cfg, tables, &f) })
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("mysql: check: %w", err)
	}
	return evaluate(cfg, d.user, tables, &f), nil
}

// checkFacts is what Check reads from the server; evaluate judges it.
type checkFacts struct {
	version  string
	flavor   string
	serverID uint32
	vars     map[string]string // lower-case names; absent = this server has no such variable

	replicas    []replicaHost
	replicasErr error // listing replicas failed (privileges)

	grants    []string // SHOW GRANTS lines
	grantsErr error
	// statusErr is the error of SHOW MASTER STATUS, which needs
	// REPLICATION CLIENT (MySQL) / BINLOG MONITOR (MariaDB).
	statusErr error

	tables map[string]*tableFacts
}

type tableFacts struct {
	columns []string // visible columns; nil when selectErr is set
	// selectErr is the error of SELECT * FROM table LIMIT 0: no such
	// table, or no SELECT privilege.
	selectErr error
}

func gatherFacts(conn *client.Conn, cfg Config, tables map[string][]string, f *checkFacts) error {
	rows, err := queryStrings(conn, "SELECT VERSION() AS v, @@GLOBAL.server_id AS id")
	if err != nil {
		return err
	}
	f.version = str(rows[0], "v")
	id, _ := strconv.ParseUint(str(rows[0], "id"), 10, 32)
	f.serverID = uint32(id)
	f.flavor = gomysql.MySQLFlavor
	if strings.Contains(strings.ToLower(f.version), "mariadb") {
		f.flavor = gomysql.MariaDBFlavor
	}
	if cfg.Flavor != "" {
		f.flavor = cfg.Flavor
	}
	if f.vars, err = variables(conn, "log_bin", "binlog_format", "binlog_row_image", "binlog_row_value_options",
		"binlog_row_metadata", "expire_logs_days", "binlog_expire_logs_seconds", "binlog_expire_logs_auto_purge",
		"gtid_mode", "gtid_strict_mode"); err != nil {
		return err
	}
	f.replicas, f.replicasErr = replicaHosts(conn)
	if f.replicasErr != nil && serverCode(f.replicasErr) == 0 {
		return f.replicasErr
	}
	grants, err := queryStrings(conn, "SHOW GRANTS")
	if err != nil && serverCode(err) == 0 {
		return err
	}
	f.grantsErr = err
	for _, g := range grants {
		for _, v := range g {
			if v != nil {
				f.grants = append(f.grants, *v)
			}
		}
	}
	if _, err := masterStatus(conn); err != nil {
		if serverCode(err) == 0 {
			return err
		}
		f.statusErr = err
	}
	f.tables = map[string]*tableFacts{}
	for t := range tables {
		db, table, ok := splitTable(t)
		if !ok {
			continue
		}
		tf := &tableFacts{}
		f.tables[t] = tf
		res, err := conn.Execute("SELECT * FROM " + quoteIdent(db) + "." + quoteIdent(table) + " LIMIT 0")
		if err != nil {
			if serverCode(err) == 0 {
				return err
			}
			tf.selectErr = err
			continue
		}
		for _, fld := range res.Fields {
			tf.columns = append(tf.columns, string(fld.Name))
		}
		res.Close()
	}
	return nil
}

// evaluate turns facts into problems. It is pure, so that the MySQL-only
// branches are tested without a MySQL server.
func evaluate(cfg Config, user string, tables map[string][]string, f *checkFacts) []sources.Problem {
	var probs []sources.Problem
	add := func(warning bool, check, problem, fix string) {
		probs = append(probs, sources.Problem{Check: check, Problem: problem, Fix: fix, Warning: warning})
	}
	v := func(name string) (string, bool) { s, ok := f.vars[name]; return s, ok }
	mariadb := f.flavor == gomysql.MariaDBFlavor

	if lb, _ := v("log_bin"); !isOn(lb) {
		add(false, "log_bin", "the binary log is off (log_bin=OFF): there is nothing to stream",
			"start the server with log_bin (e.g. log-bin=mysql-bin in my.cnf) and binlog_format=ROW, then restart it")
	}
	if bf, _ := v("binlog_format"); !strings.EqualFold(bf, "ROW") {
		add(false, "binlog_format", fmt.Sprintf("binlog_format is %s: only ROW logs the rows that changed", orUnknown(bf)),
			"SET GLOBAL binlog_format = 'ROW'; and binlog_format=ROW in my.cnf (open sessions keep theirs until they reconnect)")
	}
	if ri, _ := v("binlog_row_image"); !strings.EqualFold(ri, "FULL") {
		add(false, "binlog_row_image", fmt.Sprintf("binlog_row_image is %s: updates would lack the old stage and unchanged columns", orUnknown(ri)),
			"SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image=FULL in my.cnf")
	}
	if rvo, ok := v("binlog_row_value_options"); ok && rvo != "" {
		add(false, "binlog_row_value_options", fmt.Sprintf("binlog_row_value_options is %s: JSON updates would be logged as partial diffs", rvo),
			"SET GLOBAL binlog_row_value_options = ''; and remove it from my.cnf")
	}
	if rm, ok := v("binlog_row_metadata"); !ok || !strings.EqualFold(rm, "FULL") {
		add(true, "binlog_row_metadata", fmt.Sprintf("binlog_row_metadata is %s: column names come from information_schema, "+
			"which misreads events written before an ALTER TABLE (leadtail stops with an error then)", orUnknown(rm)),
			"SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata=FULL in my.cnf (MySQL >= 8.0.1, MariaDB >= 10.5)")
	}

	// server_id
	if cfg.ServerID != 0 && cfg.ServerID == f.serverID {
		add(false, "server_id", fmt.Sprintf("source.mysql.server_id %d is the server's own @@server_id", cfg.ServerID),
			"choose another source.mysql.server_id, unique among the server and all its replicas")
	}
	switch {
	case f.replicasErr != nil:
		priv := "REPLICATION SLAVE"
		if mariadb {
			priv = "REPLICATION MASTER ADMIN"
		}
		add(true, "server_id", fmt.Sprintf("cannot list replicas to check that server_id %d is free: %v", cfg.ServerID, f.replicasErr),
			fmt.Sprintf("GRANT %s ON *.* TO the leadtail user, or make sure no replica uses server_id %d (SHOW SLAVE HOSTS)", priv, cfg.ServerID))
	default:
		for _, r := range f.replicas {
			if r.serverID != cfg.ServerID {
				continue
			}
			if strings.HasPrefix(r.host, replicaHostPrefix) {
				add(true, "server_id", fmt.Sprintf("server_id %d is in use by a leadtail stream (%s)", cfg.ServerID, r.host),
					"fine if that is this daemon running; two leadtail instances must not share a server_id")
				continue
			}
			add(false, "server_id", fmt.Sprintf("server_id %d is in use by replica %q: streaming would cut that replica off", cfg.ServerID, r.host),
				"choose a source.mysql.server_id no replica uses (SHOW SLAVE HOSTS lists them)")
		}
	}

	// Retention.
	if secs, ok := retentionSeconds(f.vars); ok && secs > 0 && secs < 86400 {
		add(false, "binlog retention", fmt.Sprintf("binlogs expire after %s: a leadtail outage longer than that loses changes", humanSeconds(secs)),
			"SET GLOBAL binlog_expire_logs_seconds = 604800; (or expire_logs_days = 7) and the same in my.cnf")
	}

	// Privileges.
	global, roles := globalPrivileges(f.grants)
	has := func(p ...string) bool {
		return global["ALL PRIVILEGES"] || global["ALL"] || slices.ContainsFunc(p, func(s string) bool { return global[s] })
	}
	who := "the leadtail user"
	if user != "" {
		who = "'" + user + "'"
	}
	switch {
	case f.grantsErr != nil:
		add(true, "privileges", fmt.Sprintf("cannot read the user's grants: %v", f.grantsErr),
			fmt.Sprintf("make sure %s has REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the mapped tables", who))
	case !has("REPLICATION SLAVE"):
		add(roles, "privileges", "the user lacks REPLICATION SLAVE (needed to read the binlog)"+rolesNote(roles),
			fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO %s;", who))
	}
	if f.statusErr != nil {
		priv := "REPLICATION CLIENT"
		if mariadb {
			priv = "BINLOG MONITOR"
		}
		add(false, "privileges", fmt.Sprintf("SHOW MASTER STATUS fails (%v): the user lacks %s", f.statusErr, priv),
			fmt.Sprintf("GRANT %s ON *.* TO %s;", priv, who))
	}

	// Tables and columns, in a stable order.
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		db, _, ok := splitTable(t)
		if !ok {
			add(false, "tables", fmt.Sprintf("mapped table %q is not database.table", t), "write the mapping's table as database.table, e.g. crm.leads")
			continue
		}
		tf := f.tables[t]
		if tf == nil {
			continue
		}
		if tf.selectErr != nil {
			switch serverCode(tf.selectErr) {
			case erNoSuchTable, erBadDB:
				add(false, "tables", fmt.Sprintf("mapped table %s does not exist", t), "create it, or fix the table name in the mapping")
			case erTableAccessDenied, erColumnAccessDenied, erDBAccessDenied:
				add(false, "tables", fmt.Sprintf("no SELECT privilege on %s (lookups and schema reads need it)", t),
					fmt.Sprintf("GRANT SELECT ON %s.* TO %s;", quoteIdent(db), who))
			default:
				add(false, "tables", fmt.Sprintf("cannot read %s: %v", t, tf.selectErr), "check the table and the user's privileges")
			}
			continue
		}
		for _, c := range tables[t] {
			if !slices.ContainsFunc(tf.columns, func(s string) bool { return strings.EqualFold(s, c) }) {
				add(false, "columns", fmt.Sprintf("mapped column %s.%s does not exist", t, c), "add the column, or fix its name in the mapping")
			}
		}
	}
	return probs
}

func orUnknown(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

// retentionSeconds is how long binlogs are kept, 0 for "never purged".
// binlog_expire_logs_seconds (MySQL 8, MariaDB >= 10.6) wins over
// expire_logs_days when set.
func retentionSeconds(vars map[string]string) (float64, bool) {
	if ap, ok := vars["binlog_expire_logs_auto_purge"]; ok && !isOn(ap) {
		return 0, true
	}
	if s, ok := vars["binlog_expire_logs_seconds"]; ok {
		if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 {
			return n, true
		}
	}
	if d, ok := vars["expire_logs_days"]; ok {
		if n, err := strconv.ParseFloat(d, 64); err == nil {
			return n * 86400, true
		}
	}
	if _, ok := vars["binlog_expire_logs_seconds"]; ok {
		return 0, true
	}
	return 0, false
}

func humanSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

func rolesNote(roles bool) string {
	if roles {
		return " (it has roles, whose grants SHOW GRANTS may not list: verify by hand)"
	}
	return ""
}

// globalPrivileges collects the privileges granted ON *.* from SHOW
// GRANTS lines, upper case, and whether any role is granted.
func globalPrivileges(grants []string) (map[string]bool, bool) {
	out := map[string]bool{}
	roles := false
	for _, g := range grants {
		rest, ok := strings.CutPrefix(strings.TrimSpace(g), "GRANT ")
		if !ok {
			continue
		}
		privs, obj, ok := strings.Cut(rest, " ON ")
		if !ok {
			roles = true // GRANT `role` TO `user`
			continue
		}
		if !strings.HasPrefix(strings.TrimSpace(obj), "*.*") {
			continue
		}
		for _, p := range strings.Split(privs, ",") {
			out[strings.ToUpper(strings.TrimSpace(p))] = true
		}
	}
	return out, roles
}

// Lag describes how far pos is behind the server's current binlog end,
// for `leadtail status`: binlog files and bytes for file positions,
// transactions for GTID positions. A position whose binlog is gone is an
// error wrapping ErrPositionLost.
func Lag(ctx context.Context, cfg Config, pos sources.Position) (string, error) {
	if pos == "" {
		return "no checkpoint yet (streaming starts at the current end of the binlog)", nil
	}
	p, err := parsePosition(pos)
	if err != nil {
		return "", err
	}
	d, err := parseDSN(cfg.DSN)
	if err != nil {
		return "", fmt.Errorf("mysql: dsn %s: %w", RedactedDSN(cfg.DSN), err)
	}
	conn, err := dial(ctx, d, "")
	if err != nil {
		return "", fmt.Errorf("mysql: %w", err)
	}
	defer quit(conn)
	var out string
	err = withConn(ctx, conn, func() error {
		var err error
		out, err = lag(conn, p)
		return err
	})
	return out, err
}

func lag(conn *client.Conn, p position) (string, error) {
	l, err := lagOf(conn, p)
	if err != nil {
		return "", err
	}
	if p.kind == posFile {
		return fmt.Sprintf("%d binlog files / %d bytes behind (current file %s)", l.files, l.bytes, l.current), nil
	}
	return fmt.Sprintf("%d transactions behind (%s %s)", l.transactions, l.source, l.current), nil
}

// binlogLag is how far a position is behind the server's binlog: files
// and bytes for file positions, transactions for GTID positions; the
// other counts are -1.
type binlogLag struct {
	files, transactions, bytes int64
	// current is the server's current binlog file or GTID position,
	// source the variable it was read from.
	current, source string
}

func lagOf(conn *client.Conn, p position) (binlogLag, error) {
	l := binlogLag{files: -1, transactions: -1, bytes: -1}
	switch p.kind {
	case posMariaGTID:
		rows, err := queryStrings(conn, "SELECT @@GLOBAL.gtid_binlog_pos AS p")
		if err != nil {
			return l, fmt.Errorf("mysql: gtid_binlog_pos: %w", err)
		}
		cur, err := parseMariaPos(str(rows[0], "p"))
		if err != nil {
			return l, fmt.Errorf("mysql: gtid_binlog_pos: %w", err)
		}
		var behind uint64
		for _, g := range cur {
			i := slices.IndexFunc(p.maria, func(o gomysql.MariadbGTID) bool { return o.DomainID == g.DomainID })
			switch {
			case i < 0:
				behind += g.SequenceNumber
			case g.SequenceNumber > p.maria[i].SequenceNumber:
				behind += g.SequenceNumber - p.maria[i].SequenceNumber
			}
		}
		l.transactions, l.current, l.source = int64(behind), mariaString(cur), "gtid_binlog_pos"
		return l, nil
	case posMySQLGTID:
		rows, err := queryStrings(conn, "SELECT @@GLOBAL.gtid_executed AS p")
		if err != nil {
			return l, fmt.Errorf("mysql: gtid_executed: %w", err)
		}
		cur, err := parseMySQLSet(str(rows[0], "p"))
		if err != nil {
			return l, fmt.Errorf("mysql: gtid_executed: %w", err)
		}
		l.transactions, l.current, l.source = mysqlMissing(cur, p.mysqlSet), cur.String(), "gtid_executed"
		return l, nil
	}
	rows, err := queryStrings(conn, "SHOW BINARY LOGS")
	if err != nil {
		return l, fmt.Errorf("mysql: SHOW BINARY LOGS: %w", err)
	}
	files, bytes, found := int64(0), uint64(0), false
	last := ""
	for _, r := range rows {
		name := str(r, "Log_name")
		size, _ := strconv.ParseUint(str(r, "File_size"), 10, 64)
		last = name
		switch {
		case name == p.file:
			found = true
			if size > uint64(p.offset) {
				bytes += size - uint64(p.offset)
			}
		case found:
			files++
			bytes += size
		}
	}
	if !found {
		return l, fmt.Errorf("mysql: checkpoint %s: %w (binlog file %s was purged)", p, ErrPositionLost, p.file)
	}
	l.files, l.bytes, l.current, l.source = files, int64(bytes), last, "SHOW BINARY LOGS"
	return l, nil
}

// mysqlMissing counts the GTIDs of cur that have lacks, by interval
// arithmetic (executed sets span millions of transactions).
func mysqlMissing(cur, have *gomysql.MysqlGTIDSet) int64 {
	var n int64
	for sid, tags := range *cur {
		for tag, ivs := range tags {
			var got gomysql.IntervalSlice
			if have != nil {
				if ht, ok := (*have)[sid]; ok {
					got = ht[tag].Normalize()
				}
			}
			for _, iv := range ivs {
				n += iv.Stop - iv.Start
				for _, g := range got {
					if o := min(iv.Stop, g.Stop) - max(iv.Start, g.Start); o > 0 {
						n -= o
					}
				}
			}
		}
	}
	return n
}
