package mysql

import (
	"context"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// lockIdleTimeout is the wait_timeout of the connection holding the active
// lock. The holder pings it every lockPing and a standby keeps it busy in
// GET_LOCK, so only a connection whose client is gone without closing it
// stays silent this long: the host died, or a firewall, NAT or proxy
// dropped the connection half-open. The server then ends it and releases
// the lock, so that this instance after reconnecting, or a standby, can
// take it. With the server's default wait_timeout (8 hours) the lock stayed
// with the dead connection: after a half-open cut leadtail waited as a
// standby on its own previous connection (found by the fault-injection
// suite; TestLockReleasedAfterHalfOpen).
const lockIdleTimeout = 20 * time.Second

// setLockIdleTimeout sets lockIdleTimeout on the lock connection.
func setLockIdleTimeout(ctx context.Context, conn *client.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return withConn(qctx, conn, func() error {
		if _, err := conn.Execute(fmt.Sprintf("SET SESSION wait_timeout = %d", int(lockIdleTimeout/time.Second))); err != nil {
			return fmt.Errorf("mysql: set wait_timeout on the lock connection: %w", err)
		}
		return nil
	})
}
