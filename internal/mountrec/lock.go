package mountrec

import (
	"context"
	"fmt"
	"os"

	"github.com/runc-shared/runc-shared/internal/filelock"
)

// Lock takes the exclusive lock of key across processes (filelock.Lock),
// waiting for it until ctx ends, and returns the function that releases it.
// Its file lies among the records: the records directory is one directory
// for every process that writes records (a server in its mounter container
// reaches the host's state dir through a bind mount of it), and the file's
// name is none a listing of records takes (filelock.Path).
func (d Records[T, P]) Lock(ctx context.Context, key string) (func(), error) {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the %s: %w", P(nil).words().dir, err)
	}
	return filelock.Lock(ctx, d.Dir, key)
}
