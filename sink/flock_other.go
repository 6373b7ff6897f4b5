//go:build !unix

package sink

import "os"

// lockFile is a no-op where flock(2) does not exist; the in-process mutex
// still serialises writers of one process.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) error { return nil }
